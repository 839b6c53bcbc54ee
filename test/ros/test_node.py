"""The janusvln node in its own process, driven over ROS from the test process (issue 6)."""

import time

from action_msgs.msg import GoalStatus
from janus_ros_testutil import Driver, NodeProcess, wait_until
from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus as NS
from lifecycle_msgs.msg import Transition as T
import numpy as np
import pytest
from std_srvs.srv import Trigger

from janusvln_ros.ros.conversions import rgb_to_image

pytestmark = pytest.mark.timeout(120)

FAST = {'engine': 'scripted', 'autostart': True, 'control_rate_hz': 20.0,
        'linear_speed_mps': 1.25, 'angular_speed_radps': 2.5}     # 0.2 s and 0.1 s primitives


@pytest.fixture
def node_factory(tmp_path):
    nodes = []

    def start(params, **kw):
        n = NodeProcess(tmp_path, params, name=f'node{len(nodes)}', **kw)
        nodes.append(n)
        return n
    yield start
    for n in nodes:
        rc = n.sigint()
        assert rc == 0, n.log()[-3000:]


@pytest.fixture
def ns_driver(ros_context):
    """Drivers in their own namespace: a node of an earlier test can never answer them."""
    made = []

    def make(ns):
        made.append(Driver(namespace=ns, name=f'driver_{ns}'))
        return made[-1]
    yield make
    for d in made:
        d.close()


def is_zero(m):
    """A full stop: every linear and angular component is zero."""
    return (m.linear.x, m.linear.y, m.linear.z,
            m.angular.x, m.angular.y, m.angular.z) == (0.0,) * 6


def nonzero(cmds):
    return [m for _, m in cmds if not is_zero(m)]


def outside_zero(driver, timeout=3.0):
    """The last Twist the driver received becomes zero, linear and angular."""
    return wait_until(lambda: bool(driver.cmds) and is_zero(driver.cmds[-1][1]), timeout)


def test_instruction_navigates_moves_forward_and_stops(driver, node_factory):
    node_factory(dict(FAST, script='MOVE_FORWARD,TURN_LEFT,STOP'))
    driver.start_camera(30)
    resp = driver.instruct('walk to the kitchen and stop at the fridge')
    assert resp.accepted and resp.episode_id == 1, resp.message
    assert driver.wait_status(lambda s: s.state == NS.NAVIGATING and s.episode_id == 1, 10)
    done = driver.wait_status(lambda s: s.state == NS.SUCCEEDED, 10)
    assert done and done.step == 3 and done.last_action == NS.ACTION_STOP
    moving = nonzero(driver.cmds)
    assert moving[0].linear.x == pytest.approx(1.25) and moving[0].angular.z == 0.0
    assert any(m.angular.z == pytest.approx(2.5) for m in moving)     # TURN_LEFT
    assert outside_zero(driver, 2.0)
    steps = {s.step: s for s in driver.status if s.episode_id == 1 and s.step > 0}
    steps = [steps[k] for k in sorted(steps)]          # status also repeats at 1 Hz
    assert [s.last_action for s in steps] == [NS.ACTION_MOVE_FORWARD, NS.ACTION_TURN_LEFT,
                                              NS.ACTION_STOP]
    assert steps[0].step_latency_ms >= 0.0 and steps[0].spatial_memory_frames == 1


def test_camera_stop_gives_zero_twist_within_timeout(driver, node_factory):
    # a 10 s MOVE_FORWARD: only the camera watchdog can stop it early
    node_factory(dict(FAST, script='MOVE_FORWARD', forward_distance_m=2.0,
                      linear_speed_mps=0.2, camera_timeout_s=0.5))
    driver.start_camera(30)
    assert driver.instruct('go').accepted
    assert wait_until(lambda: nonzero(driver.cmds), 10)
    time.sleep(0.3)
    driver.stop_camera()
    t_stop = time.monotonic()
    assert outside_zero(driver, 3.0)
    zero_t = next(t for t, m in driver.cmds if t > t_stop and is_zero(m))
    # camera_timeout_s + one control period (+ transport slack on a loaded machine)
    assert zero_t - t_stop <= 0.5 + 0.05 + 0.25, zero_t - t_stop
    assert driver.wait_status(lambda s: 'camera timeout' in s.message, 3)
    n = len(driver.cmds)
    time.sleep(0.5)
    assert not nonzero(driver.cmds[n:])                       # stays stopped
    driver.start_camera(30)                                   # frames resume: steps resume
    step = driver.last_status().step
    assert driver.wait_status(lambda s: s.step > step and s.state == NS.NAVIGATING, 10)


def test_instruction_before_any_frame_reports_camera_timeout(driver, node_factory):
    """An instruction taken before the camera ever delivered: the watchdog still speaks up."""
    node_factory(dict(FAST, script='MOVE_FORWARD,STOP', camera_timeout_s=0.5))
    # The node is active and the two processes know each other (a request sent before the
    # server has matched the client's response reader can go unanswered).
    assert driver.wait_status(lambda s: s.state == NS.IDLE, 30)
    resp = driver.instruct('go')
    assert resp.accepted, resp.message
    timed_out = driver.wait_status(lambda s: 'camera timeout' in s.message, 5)
    assert timed_out and 'none received since activation' in timed_out.message
    assert timed_out.state == NS.NAVIGATING and not nonzero(driver.cmds)
    driver.start_camera(30)                                   # frames come: the episode runs
    done = driver.wait_status(lambda s: s.state == NS.SUCCEEDED, 10)
    assert done and done.step == 2


def _image(encoding='rgb8', h=8, w=10, **over):
    msg = rgb_to_image(np.full((h, w, 3), 7, np.uint8), encoding if encoding in (
        'rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8') else 'rgb8')
    msg.encoding = encoding
    for k, v in over.items():
        setattr(msg, k, v)
    return msg


def test_bad_inputs_leave_node_alive_and_robot_stopped(driver, node_factory):
    node = node_factory(dict(FAST, script='MOVE_FORWARD', max_instruction_chars=50,
                             script_step_delay_s=0.05))
    assert wait_until(lambda: driver.set_instruction.service_is_ready(), 15)
    # 1. bad instructions, no episode yet: refused with a reason
    for text, reason in [('', 'empty'), ('  \t\n ', 'empty'), ('x' * 51, 'too long'),
                         ('go \ufffd there', 'UTF-8')]:
        resp = driver.instruct(text)
        assert not resp.accepted and reason in resp.message, (text, resp.message)
    # 2. bad images while idle: rejected, status says why, the robot never moves
    bad = [_image('yuv422'), _image('16UC1'), _image(h=0, w=0, step=0, data=b''),
           _image(data=b'\x00' * 100), _image(step=20), _image(data=b'\x00' * 1000)]
    for msg in bad:
        driver.status.clear()
        driver.image_pub.publish(msg)
        assert driver.wait_status(lambda s: 'image rejected' in s.message, 5), msg.encoding
    assert not nonzero(driver.cmds)
    # 3. a running episode is untouched by bad instructions
    driver.start_camera(30)
    assert driver.instruct('go ahead').accepted
    assert driver.wait_status(lambda s: s.step >= 2, 10)
    for text in ['', 'y' * 51, '\ufffd\ufffd']:
        assert not driver.instruct(text).accepted
    assert driver.wait_status(lambda s: s.step >= 4 and s.episode_id == 1, 10)
    assert all(s.episode_id == 1 for s in driver.status if s.episode_id)
    # 4. bad frames during an episode stop the robot; the node keeps running
    driver.stop_camera()
    for _ in range(20):
        driver.image_pub.publish(_image('yuv422'))
        time.sleep(0.03)
    assert outside_zero(driver, 3.0)
    n = len(driver.cmds)
    time.sleep(0.4)
    assert not nonzero(driver.cmds[n:])
    assert node.alive() and driver.call(driver.cancel, Trigger.Request()).success
    # 5. every accepted encoding (and padded rows) drives steps
    assert driver.instruct('again').accepted
    for encoding in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'):
        step = driver.last_status().step
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and driver.last_status().step <= step:
            driver.image_pub.publish(rgb_to_image(np.zeros((8, 10, 3), np.uint8), encoding,
                                                  step_padding=3))
            time.sleep(0.03)
        assert driver.last_status().step > step, encoding
    assert 'image rejected' not in node.log().split('episode 2 started')[-1]


def test_invalid_utf8_on_the_wire_arrives_as_replacement_characters(driver):
    """What the node's validator relies on: rclpy decodes invalid UTF-8 strings with U+FFFD."""
    from rclpy.serialization import serialize_message
    got = []
    driver.node.create_subscription(NS, 'wire_check', got.append, 10)
    pub = driver.node.create_publisher(NS, 'wire_check', 10)
    raw = bytearray(serialize_message(NS(instruction='go XX there')))
    i = raw.index(b'XX')
    raw[i:i + 2] = b'\xff\xfe'
    assert wait_until(lambda: pub.get_subscription_count() > 0, 5)
    pub.publish(bytes(raw))
    assert wait_until(lambda: got, 5)
    assert got[0].instruction == 'go \ufffd\ufffd there'


def test_preemption_between_steps(driver, node_factory):
    node_factory(dict(FAST, script='MOVE_FORWARD', script_step_delay_s=0.3))
    driver.start_camera(30)
    assert driver.instruct('first').episode_id == 1
    assert driver.wait_status(lambda s: s.episode_id == 1 and s.step >= 1, 10)
    resp = driver.instruct('second')
    assert resp.accepted and resp.episode_id == 2
    ended = driver.wait_status(lambda s: s.episode_id == 1 and s.state == NS.STOPPED, 5)
    assert ended and 'preempted' in ended.message
    assert driver.wait_status(lambda s: s.episode_id == 2 and s.step >= 2, 10)
    ep2 = [s for s in driver.status if s.episode_id == 2]
    assert ep2[0].state == NS.NAVIGATING and ep2[0].step == 0 and ep2[0].instruction == 'second'
    assert [s.step for s in ep2 if s.step] == sorted(s.step for s in ep2 if s.step)


def test_engine_error_stops_and_next_instruction_recovers(driver, node_factory):
    node = node_factory(dict(FAST, script='MOVE_FORWARD,RAISE'))
    driver.start_camera(30)
    assert driver.instruct('one').accepted
    err = driver.wait_status(lambda s: s.state == NS.ERROR, 10)
    assert err and 'fault' in err.message and err.episode_id == 1
    assert outside_zero(driver, 2.0)
    assert node.alive()
    assert driver.instruct('two').accepted
    assert driver.wait_status(lambda s: s.episode_id == 2 and s.step == 1
                              and s.last_action == NS.ACTION_MOVE_FORWARD, 10)


def test_navigate_action_feedback_result_and_cancel(driver, node_factory):
    node_factory(dict(FAST, script='MOVE_FORWARD,TURN_RIGHT,MOVE_FORWARD,STOP'))
    driver.start_camera(30)
    assert driver.navigate.wait_for_server(timeout_sec=15)
    # wait_for_server sees the server's readers; give the server time to discover the client's
    # reply readers too, or the first goal response can be dropped (a DDS discovery race).
    time.sleep(1.0)
    feedback = []

    def send(text):
        fut = driver.navigate.send_goal_async(Navigate.Goal(instruction=text),
                                              feedback_callback=lambda f: feedback.append(
                                                  f.feedback))
        assert wait_until(fut.done, 30)
        return fut.result()

    handle = send('go round the table')
    assert handle.accepted
    res_fut = handle.get_result_async()
    assert wait_until(res_fut.done, 20)
    res = res_fut.result()
    assert res.status == GoalStatus.STATUS_SUCCEEDED
    assert res.result.final_state == NS.SUCCEEDED and res.result.steps == 4
    assert wait_until(lambda: len(feedback) == 4, 2)
    assert [f.step for f in feedback] == [1, 2, 3, 4]
    assert [f.last_action for f in feedback] == [1, 3, 1, 0]
    # an invalid instruction is rejected
    assert not send('   ').accepted
    # cancel a long-running goal: a slow script that never stops
    feedback.clear()
    handle = send('circle forever')
    assert handle.accepted
    assert wait_until(lambda: len(feedback) >= 2, 10)
    cancel = handle.cancel_goal_async()
    assert wait_until(cancel.done, 10)
    res_fut = handle.get_result_async()
    assert wait_until(res_fut.done, 10)
    assert res_fut.result().status == GoalStatus.STATUS_CANCELED
    assert res_fut.result().result.final_state == NS.STOPPED
    assert driver.wait_status(lambda s: s.state == NS.STOPPED and 'cancel' in s.message, 5)
    assert outside_zero(driver, 2.0)


def test_lifecycle_transitions(driver, node_factory):
    node = node_factory({'engine': 'scripted', 'script': 'MOVE_FORWARD',
                         'forward_distance_m': 5.0, 'linear_speed_mps': 0.5})
    assert wait_until(lambda: driver.get_state.service_is_ready(), 15)
    assert driver.state() == 'unconfigured'
    refused = driver.instruct('go')
    assert not refused.accepted and 'not active' in refused.message
    assert driver.transition(T.TRANSITION_CONFIGURE) and driver.state() == 'inactive'
    assert driver.transition(T.TRANSITION_ACTIVATE) and driver.state() == 'active'
    driver.start_camera(30)
    assert driver.instruct('go').accepted
    assert wait_until(lambda: nonzero(driver.cmds), 10)
    assert driver.transition(T.TRANSITION_DEACTIVATE) and driver.state() == 'inactive'
    assert outside_zero(driver, 2.0)                       # zero on deactivate
    assert driver.wait_status(lambda s: s.state == NS.STOPPED and 'deactivated' in s.message, 3)
    n = len(driver.cmds)
    time.sleep(0.3)
    assert not nonzero(driver.cmds[n:])
    assert not driver.instruct('go').accepted
    assert driver.transition(T.TRANSITION_ACTIVATE)
    assert driver.instruct('go again').episode_id == 2      # same engine, episode ids go on
    assert driver.transition(T.TRANSITION_DEACTIVATE)
    assert driver.transition(T.TRANSITION_CLEANUP) and driver.state() == 'unconfigured'
    assert 'Cleaned up' in node.log()
    assert driver.transition(T.TRANSITION_CONFIGURE) and driver.state() == 'inactive'
    assert driver.transition(T.TRANSITION_ACTIVATE) and driver.state() == 'active'
    assert driver.transition(T.TRANSITION_ACTIVE_SHUTDOWN)
    assert driver.state() == 'finalized'
    assert node.alive()


def test_configure_failure_is_reported_and_retryable(driver, node_factory, tmp_path):
    # a read-only model_path that does not hold a checkpoint yet: FAILURE, then retry
    ckpt = tmp_path / 'ckpt'
    node = node_factory({'engine': 'tiny_engines_for_tests:NeedsFileEngine',
                         'model_path': str(ckpt)})
    assert wait_until(lambda: driver.get_state.service_is_ready(), 15)
    assert not driver.transition(T.TRANSITION_CONFIGURE)
    assert driver.state() == 'unconfigured'
    assert 'Configure failed' in node.log() and 'no checkpoint' in node.log()
    ckpt.mkdir()
    (ckpt / 'ready').write_text('ok')
    assert driver.transition(T.TRANSITION_CONFIGURE) and driver.state() == 'inactive'


def test_real_tiny_engine_instruction_to_cmd_vel(driver, node_factory, tiny_checkpoint):
    """End to end with the real JanusVLN engine on a tiny random checkpoint."""
    node = node_factory({'engine': 'janusvln', 'model_path': str(tiny_checkpoint),
                         'autostart': True, 'linear_speed_mps': 2.5, 'angular_speed_radps': 5.0,
                         'max_steps': 6})
    assert wait_until(lambda: driver.set_instruction.service_is_ready(), 60), node.log()
    assert wait_until(lambda: 'Configured' in node.log(), 120), node.log()[-3000:]
    driver.start_camera(15)
    assert driver.instruct('walk past the sofa and stop at the door').accepted
    end = driver.wait_status(lambda s: s.state in (NS.SUCCEEDED, NS.STOPPED), 120)
    assert end is not None, node.log()[-3000:]
    steps = {s.step: s for s in driver.status if s.episode_id == 1 and s.step}
    assert steps and all(s.step_latency_ms > 0 for s in steps.values())
    assert all(s.spatial_memory_frames >= 1 for s in steps.values())
    # an executed (non-final) non-STOP step gives a non-zero command, and only such a step does
    moves = [s for s in steps.values()
             if s.last_action != NS.ACTION_STOP and s.state == NS.NAVIGATING]
    assert bool(moves) == bool(nonzero(driver.cmds)), (len(moves), len(driver.cmds))
    assert outside_zero(driver)         # the episode's end publishes a zero Twist


def _vm_mib(pid, key):
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024


def test_extreme_aspect_ratio_image_is_rejected_before_any_resize(ns_driver, node_factory):
    """Issue 15 item 8: a 3.2 kB image of 8x400 px would become 644x32200 px in the resize."""
    node = node_factory(dict(FAST, engine='tiny_engines_for_tests:ResizingEngine',
                             script='MOVE_FORWARD'), extra=['-r', '__ns:=/aspect'])
    driver = ns_driver('aspect')
    driver.start_camera(30)
    assert driver.instruct('go').accepted
    assert driver.wait_status(lambda s: s.step >= 3, 20)      # frames go through the resize
    driver.stop_camera()
    timed_out = driver.wait_status(lambda s: 'camera timeout' in s.message, 10)
    assert timed_out is not None                              # the worker now waits for a frame
    assert outside_zero(driver)
    base = _vm_mib(node.proc.pid, 'VmHWM')
    driver.status.clear()
    thin = rgb_to_image(np.full((400, 8, 3), 9, np.uint8), 'mono8')
    assert len(thin.data) == 3200
    seen = None
    for _ in range(5):                       # best-effort image QoS: resend until it is seen
        driver.image_pub.publish(thin)
        seen = driver.wait_status(lambda s: 'image rejected' in s.message
                                  or s.step > timed_out.step, 3)
        if seen is not None:
            break
    peak = _vm_mib(node.proc.pid, 'VmHWM')
    assert peak - base < 100, f'peak memory grew {base:.0f} -> {peak:.0f} MiB'
    assert seen is not None and 'aspect ratio' in seen.message, seen
    assert seen.step == timed_out.step                        # no step ran on it
    assert outside_zero(driver) and node.alive()


LONG_FORWARD = dict(FAST, script='MOVE_FORWARD', forward_distance_m=5.0, linear_speed_mps=0.5,
                    control_rate_hz=100.0)                  # a 10 s primitive, 100 Hz ticks


def _stays_zero(driver, settle=0.3):
    """The last Twist is zero and nothing non-zero follows within ``settle`` seconds."""
    assert outside_zero(driver, 5.0), [m for _, m in driver.cmds[-3:]]
    n = len(driver.cmds)
    time.sleep(settle)                  # a negative check: nothing may move the robot now
    assert not nonzero(driver.cmds[n:])
    assert is_zero(driver.cmds[-1][1])


@pytest.mark.timeout(240)
def test_last_twist_is_zero_after_cancel_deactivate_and_active_shutdown(ns_driver,
                                                                        node_factory):
    """Issue 15 items 2 and 14: stop while moving, three ways, several times each."""
    node_factory(LONG_FORWARD, extra=['-r', '__ns:=/hammer'])
    driver = ns_driver('hammer')
    assert wait_until(lambda: driver.set_instruction.service_is_ready(), 15)
    driver.start_camera(30)
    for i in range(3):
        assert driver.instruct(f'go {i}').accepted
        assert wait_until(lambda: nonzero(driver.cmds[-1:]), 10)
        assert driver.call(driver.cancel, Trigger.Request()).success
        _stays_zero(driver)
        assert driver.instruct(f'again {i}').accepted
        assert wait_until(lambda: nonzero(driver.cmds[-1:]), 10)
        assert driver.transition(T.TRANSITION_DEACTIVATE)
        _stays_zero(driver)
        assert driver.transition(T.TRANSITION_ACTIVATE)
    assert driver.instruct('last').accepted
    assert wait_until(lambda: nonzero(driver.cmds[-1:]), 10)
    assert driver.transition(T.TRANSITION_ACTIVE_SHUTDOWN)
    assert driver.state() == 'finalized'
    _stays_zero(driver)


@pytest.mark.timeout(240)
def test_last_twist_is_zero_after_sigint_while_moving(ns_driver, tmp_path):
    """Issue 15 items 2 and 14: SIGINT while a primitive runs, three times."""
    for i in range(3):
        node = NodeProcess(tmp_path, LONG_FORWARD, extra=['-r', f'__ns:=/sigint{i}'],
                           name=f'sigint{i}')
        driver = ns_driver(f'sigint{i}')
        try:
            assert wait_until(lambda: driver.set_instruction.service_is_ready(), 15)
            driver.start_camera(30)
            assert driver.instruct('go').accepted
            assert wait_until(lambda: nonzero(driver.cmds[-1:]), 10), node.log()[-2000:]
            assert node.sigint() == 0, node.log()[-3000:]
            driver.stop_camera()
            _stays_zero(driver)
            assert 'node shutting down' in node.log()
        finally:
            node.kill()
