"""The installed package: data files found through ament_index, console scripts, a clean pip."""

import os
import pathlib
import subprocess
import sys

import pytest

ament = pytest.importorskip('ament_index_python.packages')

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_launch_and_config_found_through_ament_index():
    share = pathlib.Path(ament.get_package_share_directory('janusvln_ros'))
    for rel in ('package.xml', 'config/fastdds_shm.xml'):
        assert (share / rel).is_file(), rel
    repo_launch = sorted(p.name for p in (REPO / 'launch').glob('*.launch.py'))
    repo_config = sorted(p.name for p in (REPO / 'config').iterdir() if p.is_file())
    assert repo_launch, 'the repository has no launch files'
    assert sorted(p.name for p in (share / 'launch').glob('*.launch.py')) == repo_launch
    installed = {p.name for p in (share / 'config').iterdir()}
    assert set(repo_config) <= installed, set(repo_config) - installed
    index = pathlib.Path(sys.prefix) / 'share/ament_index/resource_index/packages'
    assert (index / 'janusvln_ros').is_file() and (index / 'janusvln_interfaces').is_file()


def test_interface_package_is_installed():
    share = pathlib.Path(ament.get_package_share_directory('janusvln_interfaces'))
    for rel in ('msg/NavigationStatus.msg', 'srv/SetInstruction.srv', 'action/Navigate.action'):
        assert (share / rel).read_text() == (REPO / 'msg' / rel).read_text(), rel


def test_console_scripts_exist_next_to_the_interpreter():
    bindir = pathlib.Path(sys.executable).parent
    for name in ('janusvln_node', 'sim_bridge_node', 'janusvln'):
        assert os.access(bindir / name, os.X_OK), name


def test_pip_check_is_clean():
    out = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_single_ros_distribution():
    out = subprocess.run([sys.executable, '-m', 'pip', 'list', '--format=freeze'],
                         capture_output=True, text=True, check=True).stdout
    names = [line.split('==')[0].lower() for line in out.splitlines()]
    assert any(n.startswith('ros-jazzy-') for n in names)
    assert not [n for n in names if n.startswith(('ros-kilted-', 'ros-rolling-', 'ros-humble-'))]
