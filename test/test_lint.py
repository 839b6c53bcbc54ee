"""Lint with the ament conventions: flake8 at 99 columns, single quotes, pep257 docstrings."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_flake8_clean():
    targets = [str(REPO / p) for p in ('janusvln_ros', 'test', 'bench', 'launch', 'setup.py')
               if (REPO / p).exists()]
    out = subprocess.run([sys.executable, '-m', 'flake8', '--config', str(REPO / 'setup.cfg'),
                          *targets], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, f'flake8 found problems:\n{out.stdout}{out.stderr}'
