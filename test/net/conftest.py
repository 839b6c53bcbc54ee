"""The two-host tests need root and iproute2 (``ip netns``); skip the whole folder otherwise.

pytest puts this folder on ``sys.path`` (rootdir-relative prepend import mode), so the test
modules import the harness (``netlab``, ``loop``) directly.
"""

import subprocess

import pytest

_NETNS_OK = subprocess.run(['ip', 'netns', 'list'], capture_output=True).returncode == 0


def pytest_collection_modifyitems(config, items):
    if _NETNS_OK:
        return
    skip = pytest.mark.skipif(True, reason='needs root and iproute2 (ip netns)')
    for item in items:
        if 'test/net/' in str(item.fspath).replace('\\', '/'):
            item.add_marker(skip)
