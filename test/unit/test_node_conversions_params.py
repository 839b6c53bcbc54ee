"""Image conversion (numpy level), YAML defaults in sync with the dataclasses, pure core."""

import dataclasses
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import yaml

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import InputError
from janusvln_ros.core.node_config import MotionConfig, NodeConfig, TUNABLE_FIELDS
from janusvln_ros.ros import conversions
from janusvln_ros.ros.conversions import image_to_rgb, rgb_to_image

REPO = pathlib.Path(__file__).resolve().parents[2]


def fake(encoding, h, w, step, data):
    return types.SimpleNamespace(encoding=encoding, height=h, width=w, step=step, data=data,
                                 is_bigendian=0)


@pytest.mark.skipif(conversions._BRIDGE is not None, reason='cv_bridge in use')
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
@pytest.mark.parametrize('padding', [0, 5])
def test_colour_encodings_round_trip(encoding, padding):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    msg = rgb_to_image(rgb, encoding, step_padding=padding)
    assert msg.step == 9 * (4 if 'a' in encoding else 3) + padding
    out = image_to_rgb(msg)
    assert out.shape == (7, 9, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, rgb)
    assert out.flags.writeable and not np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_manual_layouts_and_mono():
    # bgr8 with a padded step written by hand: pixel (0, 1) = B,G,R = 1,2,3
    row = bytes([0, 0, 0, 1, 2, 3, 99, 99])
    out = image_to_rgb(fake('bgr8', 2, 2, 8, row * 2))
    assert out[0, 1].tolist() == [3, 2, 1] and out[1, 0].tolist() == [0, 0, 0]
    mono = image_to_rgb(fake('mono8', 2, 3, 4, bytes([10, 20, 30, 0, 40, 50, 60, 0])))
    assert mono[:, :, 0].tolist() == [[10, 20, 30], [40, 50, 60]]
    assert np.array_equal(mono[:, :, 0], mono[:, :, 2])
    # works on numpy buffers too (rosbags messages)
    arr = np.frombuffer(bytes(range(12)), np.uint8)
    assert image_to_rgb(fake('rgb8', 2, 2, 6, arr))[1, 1].tolist() == [9, 10, 11]


@pytest.mark.parametrize('msg, reason', [
    (fake('yuv422', 2, 2, 4, b'\0' * 8), 'not supported'),
    (fake('16UC1', 2, 2, 4, b'\0' * 8), 'not supported'),
    (fake('rgb8', 0, 0, 0, b''), 'zero size'),
    (fake('rgb8', 2, 2, 5, b'\0' * 10), 'smaller than width'),
    (fake('rgb8', 2, 2, 6, b'\0' * 11), 'truncated'),
    (fake('rgb8', 2, 2, 6, b'\0' * 13), 'size mismatch'),
    (fake('mono8', 400, 8, 8, b'\0' * 3200), 'aspect ratio'),      # 3.2 kB, 50:1
    (fake('mono8', 1, 5, 5, b'\0' * 5), 'aspect ratio'),           # 1:5, too wide
])
def test_rejections(msg, reason):
    with pytest.raises(InputError, match=reason):
        image_to_rgb(msg)


def test_aspect_ratio_bound_and_its_edge():
    """Issue 15 item 8: the bound is checked on the header, before the data is touched."""
    limit = conversions.MAX_ASPECT_RATIO
    assert limit == 4.0
    ok = image_to_rgb(fake('mono8', 4, 1, 1, b'\0' * 4))          # exactly 4:1 passes
    assert ok.shape == (4, 1, 3)

    class Untouchable(bytes):
        def __len__(self):
            raise AssertionError('the data was read before the aspect check')
    with pytest.raises(InputError, match='aspect ratio'):
        image_to_rgb(fake('rgb8', 100000, 1, 3, Untouchable()))


def test_stamp_seconds():
    assert conversions.stamp_seconds(types.SimpleNamespace(sec=0, nanosec=0)) is None
    assert conversions.stamp_seconds(types.SimpleNamespace(sec=3, nanosec=500000000)) == 3.5


def test_cv_bridge_branch_when_a_bridge_is_present(monkeypatch):
    """Issue 15 item 14: the cv_bridge branch runs after the same checks, output contiguous."""
    calls = []

    class FakeBridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            calls.append(desired_encoding)
            return np.asfortranarray(np.zeros((msg.height, msg.width, 3), np.uint8))
    monkeypatch.setattr(conversions, '_BRIDGE', FakeBridge())
    out = image_to_rgb(rgb_to_image(np.ones((3, 5, 3), np.uint8), 'bgr8'))
    assert calls == ['rgb8'] and out.shape == (3, 5, 3) and out.flags.c_contiguous
    with pytest.raises(InputError, match='not supported'):       # checks still come first
        image_to_rgb(fake('yuv422', 2, 2, 4, b'\0' * 8))
    assert calls == ['rgb8']


def test_real_cv_bridge_or_the_fallback_converts_bgr():
    """With cv_bridge importable the real bridge converts; without it, the fallback does."""
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = image_to_rgb(rgb_to_image(rgb, 'bgr8', step_padding=2))
    assert np.array_equal(out, rgb)
    try:
        import cv_bridge  # noqa: F401
    except Exception:  # noqa: BLE001 - absent from the PyPI install
        assert conversions._BRIDGE is None          # the project's converter was used
    else:
        assert conversions._BRIDGE is not None      # the real bridge was used


def test_status_and_cmd_vel_conversions():
    from janusvln_ros.core.types import Action
    from janusvln_ros.core.worker import EpisodeSnapshot, EpisodeState
    snap = EpisodeSnapshot(episode_id=3, instruction='go', state=EpisodeState.NAVIGATING,
                           step=5, last_action=Action.TURN_RIGHT, raw_output='turn right',
                           step_latency_ms=12.5, spatial_memory_frames=5,
                           spatial_memory_capacity=56, message='m')
    msg = conversions.snapshot_to_status(snap)
    assert (msg.episode_id, msg.state, msg.step, msg.last_action) == (3, 1, 5, 3)
    assert msg.spatial_memory_capacity == 56 and msg.message == 'm'
    tw = conversions.make_cmd_vel(0.25, -0.5, stamped=True, frame_id='base')
    assert tw.twist.linear.x == 0.25 and tw.twist.angular.z == -0.5
    assert tw.header.frame_id == 'base'
    assert conversions.make_cmd_vel(0.1, 0.0, stamped=False).linear.x == 0.1


def test_yaml_defaults_match_the_dataclasses():
    doc = yaml.safe_load((REPO / 'config' / 'janusvln.yaml').read_text())
    params = doc['/**/janusvln']['ros__parameters']
    expected = {f.name: f.default for cls in (EngineConfig, NodeConfig, MotionConfig)
                for f in dataclasses.fields(cls)}
    assert params == expected
    assert TUNABLE_FIELDS <= set(expected)
    assert not TUNABLE_FIELDS & {'model_path', 'device', 'dtype', 'engine'}


def test_field_descriptions_cover_every_field():
    from janusvln_ros.ros.params import field_descriptions
    for cls in (EngineConfig, NodeConfig, MotionConfig):
        docs = field_descriptions(cls)
        assert set(docs) == {f.name for f in dataclasses.fields(cls)}, cls
        assert all(len(text) > 10 for text in docs.values())


def test_core_and_model_import_without_ros():
    """Every janusvln_ros.core and janusvln_ros.model module imports with rclpy blocked."""
    code = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        root = name.split('.')[0]
        if root in ('rclpy', 'rosidl_runtime_py', 'launch', 'launch_ros') or \\
                root.endswith('_msgs') or root.endswith('_srvs') or root.endswith('_interfaces'):
            raise ImportError('blocked in this test: ' + name)
sys.meta_path.insert(0, Block())
import janusvln_ros.core, janusvln_ros.model
names = []
for pkg in (janusvln_ros.core, janusvln_ros.model):
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):
        importlib.import_module(info.name)
        names.append(info.name)
assert not [m for m in sys.modules if m.split('.')[0] == 'rclpy']
print(len(names))
"""
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) >= 8


def test_package_xml_declares_every_ros_package_the_code_imports():
    """Issue 15: package.xml lists each ROS package imported under janusvln_ros/."""
    import ast
    import xml.etree.ElementTree as ET
    declared = {e.text for e in ET.parse(REPO / 'package.xml').getroot()
                if e.tag in ('depend', 'exec_depend', 'build_depend')}
    ros_names = {'rclpy', 'builtin_interfaces', 'rcl_interfaces', 'ament_index_python',
                 'launch', 'launch_ros', 'rosidl_runtime_py'}
    imported = set()
    for path in (REPO / 'janusvln_ros').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else [])
            for name in names:
                root = name.split('.')[0]
                if root in ros_names or root.endswith(('_msgs', '_srvs', '_interfaces')):
                    imported.add(root)
    assert {'rclpy', 'diagnostic_msgs', 'rcl_interfaces', 'builtin_interfaces'} <= imported
    assert imported <= declared, sorted(imported - declared)
    assert 'action_msgs' in declared       # rclpy.action's goal status and cancel types
    assert {'python3-numpy', 'python3-torch', 'python3-yaml'} <= declared
    reqs = (REPO / 'requirements.txt').read_text()
    assert 'ros-jazzy-diagnostic-msgs==' in reqs


def test_diagnostics_levels_and_values():
    from diagnostic_msgs.msg import DiagnosticStatus as DS
    from janusvln_ros.core.episodes import EpisodeSnapshot, EpisodeState
    from janusvln_ros.ros.diagnostics import health_to_diagnostics, NodeHealth
    base = NodeHealth(lifecycle_state='active', snapshot=EpisodeSnapshot(
        episode_id=2, state=EpisodeState.NAVIGATING, step=3, spatial_memory_frames=3,
        spatial_memory_capacity=56), step_p50_ms=80.0, step_p95_ms=120.0,
        step_budget_ms=1000.0, steps_total=9, frames_received=40, frames_dropped=30,
        frames_rejected=1, frames_stale=2, camera_age_s=0.03, camera_timed_out=False,
        unparseable_outputs=0, callback_errors=0, clock_jumps=0)

    def level(**change):
        st = health_to_diagnostics(dataclasses.replace(base, **change), '/janusvln').status[0]
        return st.level, st.message, {kv.key: kv.value for kv in st.values}
    lv, _, values = level()
    assert lv == DS.OK and values['spatial_memory_fill'] == '3/56'
    assert values['frames_dropped'] == '30' and values['camera_age_s'] == '0.03'
    assert level(step_p95_ms=1500.0)[0] == DS.WARN
    assert level(step_p95_ms=float('nan'), camera_age_s=None)[2]['camera_age_s'] == 'never'
    assert level(step_p95_ms=float('nan'))[0] == DS.OK
    assert level(camera_timed_out=True)[:2] == (DS.WARN, 'camera timeout: robot stopped')
    assert level(unparseable_outputs=2)[0] == DS.WARN
    assert level(callback_errors=1)[0] == DS.ERROR
    assert level(worker_stuck_s=12.0)[0] == DS.ERROR
    err = EpisodeSnapshot(episode_id=2, state=EpisodeState.ERROR, message='engine error: x')
    assert level(snapshot=err)[:2] == (DS.ERROR, 'episode 2 error: engine error: x')
