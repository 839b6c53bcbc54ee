"""The README stays current: its parameter table lists every parameter the node declares."""

import dataclasses
import pathlib
import re

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.node_config import MotionConfig, NodeConfig

README = pathlib.Path(__file__).resolve().parents[2] / 'README.md'


def _table_rows() -> dict[str, str]:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r'^\| `([a-z_]+)` \| `([^`]*)` \|', line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def test_parameter_table_lists_every_parameter_with_its_default():
    rows = _table_rows()
    for cls in (EngineConfig, NodeConfig, MotionConfig):
        for field in dataclasses.fields(cls):
            assert field.name in rows, f'README parameter table lacks {field.name}'
            default = field.default
            shown = repr(default) if isinstance(default, str) else str(default)
            assert rows[field.name] == shown, (field.name, rows[field.name], shown)


def test_the_two_commands_are_the_scripts_that_exist():
    text = README.read_text()
    for script in ('scripts/demo.sh', 'scripts/test.sh'):
        assert f'bash {script}' in text
        assert (README.parent / script).is_file()
    ci = (README.parent / '.ci' / 'run').read_text()
    assert 'scripts/test.sh' in ci
