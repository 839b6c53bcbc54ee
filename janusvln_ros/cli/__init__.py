"""The ``janusvln`` command: one entry point, one module per group of subcommands.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``register(subparsers)``, which adds its
subcommands and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMAND_MODULES = (
    'janusvln_ros.cli.checkpoint',   # checkpoint init-tiny / inspect
    'janusvln_ros.cli.replay',       # replay BAG --instruction ...
    'janusvln_ros.cli.operator',     # instruct / status / cancel
    'janusvln_ros.cli.sim',          # eval / demo
    'janusvln_ros.cli.train',        # dataset / train / dagger
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog='janusvln', description='JanusVLN navigation: checkpoints, simulation, operation.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``janusvln`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='[%(levelname)s] %(name)s: %(message)s')
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
