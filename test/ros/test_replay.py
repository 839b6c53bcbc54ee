"""``janusvln replay``: a generated rosbag2 (sqlite3 and mcap) through the engine offline."""

from cli_runner import run_cli
import numpy as np
import pytest
from rclpy.serialization import serialize_message

from janusvln_ros.ros.conversions import rgb_to_image


def write_bag(path, storage, n=8, topic='/camera/image_raw', bad_at=None):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    typestore = get_typestore(Stores.ROS2_JAZZY)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection(topic, 'sensor_msgs/msg/Image', typestore=typestore)
        for i in range(n):
            encoding = 'yuv422' if i == bad_at else ('bgr8' if i % 2 else 'rgb8')
            msg = rgb_to_image(np.full((24, 32, 3), i, np.uint8), 'rgb8' if encoding == 'yuv422'
                               else encoding, step_padding=2)
            msg.encoding = encoding
            writer.write(conn, i * 100_000_000, serialize_message(msg))
    return path


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_replay_scripted_prints_actions_until_stop(tmp_path, storage):
    bag = write_bag(tmp_path / 'cam', storage, bad_at=1)
    out = run_cli('janusvln_ros.cli.replay', 'replay', bag, '--instruction', 'go',
                  '--engine', 'scripted', '--script', 'MOVE_FORWARD,TURN_LEFT,TURN_RIGHT,STOP')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [ln.split()[7] for ln in lines] == ['MOVE_FORWARD', 'TURN_LEFT', 'TURN_RIGHT', 'STOP']
    assert [int(ln.split()[3]) for ln in lines] == [0, 2, 3, 4]      # frame 1 was rejected
    assert 'frame 1: skipped' in out.stderr and 'yuv422' in out.stderr


def test_replay_json_stride_and_errors(tmp_path):
    bag = write_bag(tmp_path / 'cam', 'mcap', n=10)
    out = run_cli('janusvln_ros.cli.replay', 'replay', bag, '--instruction', 'go', '--json',
                  '--engine', 'scripted', '--script', 'MOVE_FORWARD', '--stride', '3')
    assert out.returncode == 0, out.stderr
    import json
    recs = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert [r['frame'] for r in recs] == [0, 3, 6, 9]
    assert [r['t_s'] for r in recs] == [0.0, 0.3, 0.6, 0.9]
    out = run_cli('janusvln_ros.cli.replay', 'replay', bag, '--instruction', 'go',
                  '--engine', 'scripted', '--topic', '/nope')
    assert out.returncode == 1 and 'no sensor_msgs/Image topic' in out.stderr
    out = run_cli('janusvln_ros.cli.replay', 'replay', bag, '--instruction', 'go',
                  '--engine', 'janusvln', '--model-path', tmp_path / 'missing')
    assert out.returncode == 1 and 'cannot build the engine' in out.stderr


def test_replay_with_the_real_tiny_engine(tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / 'cam', 'mcap', n=4)
    out = run_cli('janusvln_ros.cli.replay', 'replay', bag, '--instruction',
                  'walk past the sofa', '--model-path', tiny_checkpoint, '--no-stop', '--json',
                  timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json
    recs = [json.loads(ln) for ln in out.stdout.splitlines()]
    assert [r['step'] for r in recs] == [1, 2, 3, 4]
    assert all(r['action'] in ('STOP', 'MOVE_FORWARD', 'TURN_LEFT', 'TURN_RIGHT') for r in recs)
    assert all(r['latency_ms'] > 0 for r in recs)
