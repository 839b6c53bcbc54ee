"""Issue 15 safety: the node in this process, its races and faults provoked on purpose.

Each test drives a real :class:`JanusVLNNode` spun by a multi-threaded executor on a thread of
the test process, with the driver node of ``conftest.py`` as the outside client. Waits are on
events or generous deadlines; a fixed wait appears only where the test checks that something
does *not* happen.
"""

import threading
import time
import types

from action_msgs.msg import GoalStatus
from builtin_interfaces.msg import Time as TimeMsg
from janus_ros_testutil import wait_until
from janusvln_interfaces.action import Navigate
from janusvln_interfaces.msg import NavigationStatus as NS
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock

from janusvln_ros.ros.janusvln_node import JanusVLNNode, lifecycle_state

pytestmark = pytest.mark.timeout(120)

SLOW_FORWARD = {'engine': 'tiny_engines_for_tests:GateEngine', 'script': 'MOVE_FORWARD',
                'control_rate_hz': 50.0, 'forward_distance_m': 5.0,
                'linear_speed_mps': 0.5}                         # one 10 s primitive


def is_zero(msg):
    return msg.linear.x == 0.0 and msg.angular.z == 0.0 and msg.linear.y == 0.0 \
        and msg.angular.x == 0.0 and msg.angular.y == 0.0 and msg.linear.z == 0.0


def nonzero(msgs):
    return [m for m in msgs if not is_zero(m)]


@pytest.fixture
def make_node(ros_context):
    """Start a JanusVLNNode in this process; returns a namespace with node, published, errors."""
    made = []

    def make(params):
        node = JanusVLNNode(parameter_overrides=[Parameter(k, value=v)
                                                 for k, v in params.items()])
        live = types.SimpleNamespace(node=node, published=[], errors=[],
                                     stop=threading.Event())
        real_publish = node._cmd_pub.publish

        def record(msg):                    # every cmd_vel the node publishes, in order
            live.published.append(msg)
            real_publish(msg)
        node._cmd_pub.publish = record
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)

        def spin():
            try:
                while not live.stop.is_set():
                    executor.spin_once(timeout_sec=0.05)
            except BaseException as exc:  # noqa: BLE001 - what the test wants to see
                live.errors.append(exc)
        live.thread = threading.Thread(target=spin, daemon=True)
        live.thread.start()
        made.append((live, executor))
        return live
    yield make
    for live, executor in made:
        live.node.shutdown_safely()
        live.stop.set()
        live.thread.join(10)
        executor.shutdown(timeout_sec=5)
        live.node.destroy_node()


def activate(node):
    node.trigger_configure()
    assert lifecycle_state(node) == 'inactive', node.configure_error
    node.trigger_activate()
    assert lifecycle_state(node) == 'active'


def start_moving(driver, live, text='go'):
    resp = driver.instruct(text)
    assert resp.accepted, resp.message
    assert wait_until(lambda: nonzero(live.published), 20), 'the robot never moved'
    return resp.episode_id


def outside_last_is_zero(driver, timeout=5.0):
    """The outside subscriber's last Twist becomes zero (the node publishes nothing after)."""
    return wait_until(lambda: driver.cmds and is_zero(driver.cmds[-1][1]), timeout)


# ------------------------------------------------------------------ item 2
def test_deactivate_racing_the_control_timer_leaves_zero_as_the_last_twist(driver, make_node):
    """The control tick computes a non-zero command, deactivation runs before it publishes."""
    live = make_node(SLOW_FORWARD)
    node = live.node
    activate(node)
    driver.start_camera(30)
    start_moving(driver, live)
    motion = node._motion
    real_command = motion.command
    paused, release, armed = threading.Event(), threading.Event(), [True]

    def paused_command(now):
        command = real_command(now)
        if command.active and armed[0]:
            armed[0] = False
            paused.set()
            release.wait(20)            # preempted between "compute" and "publish"
        return command
    motion.command = paused_command
    assert paused.wait(10)
    n = len(live.published)
    deactivation = threading.Thread(target=node.trigger_deactivate)
    deactivation.start()
    # without the lock the whole deactivation (both of its zeros) completes while the tick is
    # paused, and the tick's stale command is published after it; with it, this times out
    deactivation.join(1.0)
    release.set()
    deactivation.join(30)
    assert wait_until(lambda: nonzero(live.published[n:]), 5), 'the paused tick published?'
    assert lifecycle_state(node) == 'inactive'
    assert is_zero(live.published[-1]), live.published[-3:]
    assert outside_last_is_zero(driver)
    assert not live.errors


def test_cancel_service_racing_the_control_timer_leaves_zero_as_the_last_twist(
        driver, make_node):
    from std_srvs.srv import Trigger
    live = make_node(SLOW_FORWARD)
    node = live.node
    activate(node)
    driver.start_camera(30)
    start_moving(driver, live)
    motion = node._motion
    real_command = motion.command
    paused, release, armed = threading.Event(), threading.Event(), [True]

    def paused_command(now):
        command = real_command(now)
        if command.active and armed[0]:
            armed[0] = False
            paused.set()
            release.wait(20)
        return command
    motion.command = paused_command
    assert paused.wait(10)
    n = len(live.published)
    answer = []
    caller = threading.Thread(target=lambda: answer.append(
        driver.call(driver.cancel, Trigger.Request(), timeout=30)))
    caller.start()
    wait_until(lambda: any(is_zero(m) for m in live.published[n:]), 1.0)
    release.set()
    caller.join(40)
    assert answer and answer[0].success
    assert wait_until(lambda: node.worker.snapshot().state == NS.STOPPED, 5)
    assert wait_until(lambda: is_zero(live.published[-1]), 5)
    after = live.published[n:]
    first_zero = next(i for i, m in enumerate(after) if is_zero(m))
    # nothing moves the robot once the cancel's zero is out (not even for one tick)
    assert not nonzero(after[first_zero:]), [(m.linear.x, m.angular.z) for m in after]
    assert outside_last_is_zero(driver)


# ------------------------------------------------------------------ item 4
def test_exception_in_a_callback_stops_the_robot_reports_error_and_keeps_the_node(
        driver, make_node):
    live = make_node(SLOW_FORWARD)
    node = live.node
    activate(node)
    driver.start_camera(30)
    start_moving(driver, live)
    motion = node._motion
    real_command = motion.command
    armed = [True]

    def faulty_command(now):
        if armed[0]:
            armed[0] = False
            raise RuntimeError('injected fault')
        return real_command(now)
    motion.command = faulty_command
    err = driver.wait_status(lambda s: s.state == NS.ERROR
                             and 'internal error in the control callback' in s.message, 10)
    assert err is not None and 'injected fault' in err.message
    assert node.callback_errors == 1
    assert wait_until(lambda: is_zero(live.published[-1]), 5)
    assert not motion.busy
    assert node.worker.final(1).state == NS.ERROR
    # the executor survived: services and timers still work, the next instruction drives
    assert live.thread.is_alive() and not live.errors
    n = len(live.published)
    assert driver.instruct('again').accepted
    assert wait_until(lambda: nonzero(live.published[n:]), 20)


# ------------------------------------------------------------------ item 1
def test_navigate_cancel_right_after_accept_of_a_queued_episode(driver, make_node):
    """The goal's episode is queued behind a step in progress when the cancel arrives."""
    live = make_node(SLOW_FORWARD)
    node = live.node
    activate(node)
    engine = node.worker.engine
    driver.start_camera(30)
    start_moving(driver, live, 'first')           # episode 1 executes its 10 s primitive
    engine.entered.clear()
    engine.gate.clear()                           # the next step will block
    node._motion.stop('test: end the primitive so that the worker steps')
    assert engine.entered.wait(10)                # the worker is inside step 2 of episode 1
    assert driver.navigate.wait_for_server(timeout_sec=15)
    goal = driver.navigate.send_goal_async(Navigate.Goal(instruction='second'))
    assert wait_until(goal.done, 30)
    handle = goal.result()
    assert handle.accepted
    cancel = handle.cancel_goal_async()           # right after the accept
    assert wait_until(cancel.done, 10)
    result = handle.get_result_async()
    assert wait_until(result.done, 10)
    assert result.result().status == GoalStatus.STATUS_CANCELED
    assert result.result().result.final_state == NS.STOPPED
    episode = node.worker.final(2)
    assert episode is not None and episode.state == NS.STOPPED     # ended while queued
    n = len(live.published)
    engine.gate.set()                             # step 2 of episode 1 returns
    assert wait_until(lambda: node.worker.final(1) is not None, 10)
    # the cancelled episode must not start now that the worker is free
    assert not wait_until(lambda: node.worker.snapshot().episode_id == 2, 2.0)
    assert list(engine.instructions) == ['first']
    assert not nonzero(live.published[n:])
    assert outside_last_is_zero(driver)


# ------------------------------------------------------------------ item 6
def test_stuck_step_the_engine_is_never_freed_under_the_worker(driver, make_node):
    live = make_node(dict(SLOW_FORWARD, worker_join_timeout_s=0.3))
    node = live.node
    activate(node)
    engine = node.worker.engine
    driver.start_camera(30)
    start_moving(driver, live)
    engine.entered.clear()
    engine.gate.clear()
    node._motion.stop('test: end the primitive so that the worker steps')
    assert engine.entered.wait(10)                 # a step that will not return
    node.trigger_deactivate()                      # the join times out after 0.3 s
    assert lifecycle_state(node) == 'inactive'
    stuck = driver.wait_status(lambda s: 'stuck inside engine.step' in s.message, 5)
    assert stuck is not None                       # reported clearly, not only in the log
    assert is_zero(live.published[-1])
    node.trigger_cleanup()                         # refused: the step still uses the engine
    assert lifecycle_state(node) == 'inactive'
    assert not engine.closed_during_step and not engine._closed
    node.trigger_activate()                        # refused too, clearly, not an exception
    assert lifecycle_state(node) == 'inactive' and not live.errors
    engine.gate.set()
    assert wait_until(lambda: not node.worker.alive, 10)
    node.trigger_activate()                        # the step returned: back in service
    assert lifecycle_state(node) == 'active'
    assert driver.instruct('again').accepted
    node.trigger_deactivate()
    node.trigger_cleanup()
    assert lifecycle_state(node) == 'unconfigured'
    assert engine._closed and not engine.closed_during_step


# ------------------------------------------------------------------ item 3
def test_ros_clock_jumping_back_stops_the_robot_and_restarts_the_watchdog(driver, make_node):
    # A 2 s camera timeout: long enough that, even on a loaded machine, the jump (published
    # right after the camera stops) is handled before the watchdog could end the primitive.
    live = make_node(dict(SLOW_FORWARD, engine='scripted', use_sim_time=True,
                          camera_timeout_s=2.0))
    node = live.node
    clock_pub = driver.node.create_publisher(Clock, '/clock', 10)
    base = [1000.0]
    t0 = time.monotonic()
    stop = threading.Event()

    def run_clock():
        while not stop.is_set():
            t = base[0] + (time.monotonic() - t0)
            clock_pub.publish(Clock(clock=TimeMsg(sec=int(t), nanosec=int((t % 1) * 1e9))))
            time.sleep(0.01)
    clocker = threading.Thread(target=run_clock, daemon=True)
    clocker.start()
    try:
        assert wait_until(lambda: node.get_clock().now().nanoseconds > 900e9, 20)
        activate(node)
        driver.start_camera(30)
        start_moving(driver, live)
        assert node._motion.busy
        driver.stop_camera()
        base[0] = 500.0                   # a simulator reset / a looping bag: 500 s back
        assert wait_until(lambda: not node._motion.busy, 5), 'the primitive kept going'
        assert 'clock jump' in node._motion.last_outcome.reason
        assert node._clock_jumps >= 1             # the jump callback ran
        assert wait_until(lambda: is_zero(live.published[-1]), 5)
        # the camera watchdog restarted on the new time base: it fires 2 s after the jump
        assert driver.wait_status(lambda s: 'camera timeout' in s.message, 8)
        n = len(live.published)
        time.sleep(1.0)                   # no frames: nothing may move the robot now
        assert not nonzero(live.published[n:])
        assert outside_last_is_zero(driver)
    finally:
        stop.set()
        clocker.join(5)


# ------------------------------------------------------------------ diagnostics
def test_diagnostics_report_state_latency_frames_camera_and_memory(driver, make_node):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    got = []
    driver.node.create_subscription(DiagnosticArray, '/diagnostics', got.append, 50)
    live = make_node(dict(SLOW_FORWARD, engine='scripted', status_rate_hz=10.0,
                          camera_timeout_s=0.5, forward_distance_m=0.05))

    def find(pred, timeout=15):
        found = []

        def check():
            for array in list(got):
                for st in array.status:
                    values = {kv.key: kv.value for kv in st.values}
                    if st.name == 'janusvln: navigation' and pred(st, values):
                        found.append((st, values))
                        return True
            return False
        wait_until(check, timeout)
        return found[0] if found else (None, None)
    activate(live.node)
    driver.start_camera(30)
    assert driver.instruct('go').accepted
    st, values = find(lambda st, v: v['episode_state'] == 'NAVIGATING'
                      and int(v['steps_total']) >= 2 and int(v['frames_received']) > 0)
    assert st is not None, got[-1:] if got else 'no /diagnostics'
    assert st.level == DiagnosticStatus.OK and st.hardware_id == '/janusvln'
    assert values['lifecycle_state'] == 'active'
    assert float(values['step_latency_p95_ms']) >= 0.0
    assert values['step_latency_budget_ms'] == '1000.0'
    assert float(values['camera_age_s']) < 5.0
    assert values['spatial_memory_fill'].endswith('/56')
    assert 'device_memory' in values or 'device_memory_allocated_mib' in values
    for key in ('frames_dropped', 'frames_rejected', 'frames_captured_mid_motion',
                'unparseable_outputs', 'callback_errors', 'clock_jumps'):
        assert int(values[key]) >= 0
    driver.stop_camera()
    st, values = find(lambda st, v: st.level == DiagnosticStatus.WARN
                      and 'camera timeout' in st.message)
    assert st is not None
    assert float(values['camera_age_s']) >= 0.5


# ------------------------------------------------------------------ item 9
def test_unparseable_output_aborts_the_goal_as_stopped_not_succeeded(driver, make_node):
    live = make_node(dict(SLOW_FORWARD, engine='tiny_engines_for_tests:UnparseableEngine',
                          forward_distance_m=0.05))
    activate(live.node)
    driver.start_camera(30)
    assert driver.navigate.wait_for_server(timeout_sec=15)
    goal = driver.navigate.send_goal_async(Navigate.Goal(instruction='go'))
    assert wait_until(goal.done, 30) and goal.result().accepted
    result = goal.result().get_result_async()
    assert wait_until(result.done, 20)
    assert result.result().status == GoalStatus.STATUS_ABORTED
    res = result.result().result
    assert res.final_state == NS.STOPPED and res.steps == 2
    assert res.message.startswith('unparseable output') and "'MOVE_FORWARD.'" in res.message
    st = driver.wait_status(lambda s: s.state == NS.STOPPED and 'unparseable' in s.message, 5)
    assert st is not None and '1 unparseable so far' in st.message
    assert live.node.worker.unparseable_total == 1
    assert outside_last_is_zero(driver)
