"""Run one ``janusvln`` subcommand module in a subprocess (only the modules under test).

The ``janusvln`` umbrella imports every subcommand module; this runs the one under test with the
same ``register``/``func`` protocol, so these tests do not depend on the other modules.
"""

import subprocess
import sys

CODE = """
import argparse, sys, importlib
p = argparse.ArgumentParser(prog='janusvln')
sub = p.add_subparsers(dest='command', required=True)
importlib.import_module(sys.argv[1]).register(sub)
a = p.parse_args(sys.argv[2:])
sys.exit(int(a.func(a) or 0))
"""


def run_cli(module, *args, timeout=60):
    return subprocess.run([sys.executable, '-c', CODE, module, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
