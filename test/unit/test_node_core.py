"""Unit tests of the node's pure core: configs, scripted engine, motion, worker, timing."""

import math
import threading
import time

import numpy as np
import pytest

from janusvln_ros.core.config import EngineConfig
from janusvln_ros.core.errors import ConfigError, InferenceError, InputError
from janusvln_ros.core.motion import ActionExecutor, wrap_angle
from janusvln_ros.core.node_config import MotionConfig, NodeConfig
from janusvln_ros.core.scripted import parse_script, ScriptedEngine
from janusvln_ros.core.timing import RollingStats
from janusvln_ros.core.types import Action, StepResult
from janusvln_ros.core.worker import (EpisodeState, InferenceWorker, LatestSlot,
                                      validate_instruction)


def wait_until(predicate, timeout, poll_s=0.01):
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def frame(mark=0, h=4, w=6):
    f = np.zeros((h, w, 3), np.uint8)
    f[0, 0, 0] = mark
    return f


# ------------------------------------------------------------------ configs
def test_node_config_defaults_and_validation():
    cfg = NodeConfig()
    assert cfg.max_steps == 400 and cfg.max_instruction_chars == 2000
    m = MotionConfig()
    assert m.forward_distance_m == 0.25 and m.turn_angle_deg == 15.0
    assert m.turn_angle_rad == pytest.approx(math.pi / 12)
    for bad in ({'image_reliability': 'sometimes'}, {'camera_timeout_s': 0.0},
                {'max_steps': 0}, {'max_steps': 1.5}, {'autostart': 'yes'},
                {'camera_timeout_s': float('nan')}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            NodeConfig(**bad)
    for bad in ({'motion_mode': 'teleport'}, {'linear_speed_mps': -1.0},
                {'turn_angle_deg': 200.0}, {'control_rate_hz': 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            MotionConfig(**bad)


# ------------------------------------------------------------------ scripted engine
def test_parse_script():
    assert parse_script('move_forward, TURN_LEFT,STOP') == [Action.MOVE_FORWARD,
                                                            Action.TURN_LEFT, Action.STOP]
    assert parse_script('RAISE') == [None]
    with pytest.raises(ConfigError, match='JUMP'):
        parse_script('MOVE_FORWARD,JUMP')
    with pytest.raises(ConfigError):
        parse_script(' , ')


def test_scripted_engine_cyclic_and_terminal():
    eng = ScriptedEngine(EngineConfig(engine='scripted', script='MOVE_FORWARD,TURN_LEFT'))
    with pytest.raises(InferenceError, match='reset'):
        eng.step(frame())
    eng.reset('go')
    acts = [eng.step(frame(i)).action for i in range(5)]
    assert acts == [Action.MOVE_FORWARD, Action.TURN_LEFT] * 2 + [Action.MOVE_FORWARD]
    assert list(eng.frame_marks) == [0, 1, 2, 3, 4]
    eng2 = ScriptedEngine(EngineConfig(engine='scripted', script='TURN_RIGHT,STOP'))
    eng2.reset('x')
    res = [eng2.step(frame()) for _ in range(4)]
    assert [r.action for r in res] == [Action.TURN_RIGHT, Action.STOP, Action.STOP, Action.STOP]
    assert [r.step for r in res] == [0, 1, 2, 3]
    assert res[1].spatial_memory_frames == 2 and res[0].latencies_ms['total'] >= 0
    eng2.reset('again')
    assert eng2.step(frame()).action == Action.TURN_RIGHT


def test_scripted_engine_faults_and_bad_frames():
    eng = ScriptedEngine(EngineConfig(engine='scripted', script='MOVE_FORWARD,RAISE',
                                      script_step_delay_s=0.02))
    eng.reset('go')
    t0 = time.perf_counter()
    assert eng.step(frame()).action == Action.MOVE_FORWARD
    assert time.perf_counter() - t0 >= 0.02
    with pytest.raises(InferenceError, match='fault'):
        eng.step(frame())
    with pytest.raises(InputError):
        eng.step(np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError):
        eng.step(np.zeros((4, 4, 3), np.float32))
    eng.close()
    with pytest.raises(InferenceError, match='closed'):
        eng.reset('x')


# ------------------------------------------------------------------ instructions
def test_validate_instruction():
    assert validate_instruction('go to the kitchen', 100) == 'go to the kitchen'
    assert validate_instruction('geh zur Küche'.encode(), 100) == 'geh zur Küche'
    cases = [('', 'empty'), ('   \n\t', 'empty'), ('x' * 101, 'too long'),
             (b'go \xff\xfe there', 'UTF-8'), ('go \ufffd there', 'UTF-8'),
             ('go \udcff', 'UTF-8'), ('go\x00there', 'control'), (5, 'expected text')]
    for text, reason in cases:
        with pytest.raises(InputError, match=reason):
            validate_instruction(text, 100)


# ------------------------------------------------------------------ motion
def test_timed_motion_forward_and_turn():
    ex = ActionExecutor(MotionConfig(forward_distance_m=0.25, linear_speed_mps=0.5,
                                     turn_angle_deg=15.0, angular_speed_radps=0.5))
    assert ex.command(0.0).active is False
    ex.execute(Action.MOVE_FORWARD)
    assert ex.busy
    c = ex.command(10.0)           # time origin = first control tick
    assert c.active and c.linear == 0.5 and c.angular == 0.0
    assert ex.command(10.4).linear == 0.5
    c = ex.command(10.5)           # 0.25 m / 0.5 m/s = 0.5 s
    assert not c.active and c.linear == 0.0 and not ex.busy
    assert ex.last_outcome.completed and ex.last_outcome.action == Action.MOVE_FORWARD
    ex.execute(Action.TURN_RIGHT)
    assert ex.command(0.0).angular == -0.5
    dur = math.radians(15) / 0.5
    assert ex.command(dur - 0.01).active
    assert not ex.command(dur + 0.01).active
    ex.execute(Action.TURN_LEFT)
    assert ex.command(0.0).angular == 0.5
    assert ex.stop('camera timeout') and not ex.busy
    assert ex.last_outcome.reason == 'camera timeout' and not ex.last_outcome.completed
    assert ex.command(0.1).active is False
    ex.execute(Action.STOP)
    assert not ex.busy


def test_odometry_motion_closed_loop_and_watchdogs():
    cfg = MotionConfig(motion_mode='odometry', forward_distance_m=0.25, odometry_timeout_s=2.0,
                       odometry_stale_s=0.3, turn_angle_deg=15.0)
    ex = ActionExecutor(cfg)
    ex.execute(Action.MOVE_FORWARD)
    assert not ex.command(0.0).active          # no odometry at all -> aborted, zero
    assert ex.last_outcome.reason == 'no fresh odometry'
    ex.update_odometry(1.0, 1.0, 0.0, 0.0)
    ex.execute(Action.MOVE_FORWARD)
    assert ex.command(0.05).linear > 0
    ex.update_odometry(1.1, 1.1, 0.0, 0.1)     # 0.141 m travelled
    assert ex.command(0.1).active
    ex.update_odometry(1.2, 1.2, 0.0, 0.2)     # 0.283 m >= 0.25
    assert not ex.busy and ex.last_outcome.completed
    # turn across the +-pi wrap
    ex.update_odometry(0, 0, math.pi - 0.1, 0.3)
    ex.execute(Action.TURN_LEFT)
    assert ex.command(0.3).angular > 0
    ex.update_odometry(0, 0, -math.pi + 0.05, 0.35)   # turned 0.15 rad < 0.2618
    assert ex.command(0.35).active
    ex.update_odometry(0, 0, -math.pi + 0.2, 0.4)     # 0.3 rad
    assert not ex.busy and ex.last_outcome.completed
    # stale odometry -> zero
    ex.execute(Action.MOVE_FORWARD)
    assert ex.command(0.45).active
    assert not ex.command(0.8).active and ex.last_outcome.reason == 'odometry stale'
    # timeout while odometry keeps coming but the robot does not move
    ex.update_odometry(0, 0, 0, 1.0)
    ex.execute(Action.MOVE_FORWARD)
    t = 1.0
    assert ex.command(t).active
    while t < 3.2:
        t += 0.1
        ex.update_odometry(0, 0, 0, t)
        ex.command(t)
    assert not ex.busy and ex.last_outcome.reason == 'odometry timeout'
    assert wrap_angle(3 * math.pi) == pytest.approx(-math.pi)


def test_wait_idle_wakes_on_completion():
    ex = ActionExecutor(MotionConfig(linear_speed_mps=2.5))   # 0.1 s primitive
    ex.execute(Action.MOVE_FORWARD)
    assert not ex.wait_idle(0.01)

    def tick():
        t0 = time.monotonic()
        while ex.busy:
            ex.command(time.monotonic() - t0)
            time.sleep(0.01)
    th = threading.Thread(target=tick)
    th.start()
    assert ex.wait_idle(2.0)
    th.join()


# ------------------------------------------------------------------ slot, stats
def test_latest_slot_latest_wins():
    slot = LatestSlot()
    assert slot.wait_newer(0, 0.01) is None and len(slot) == 0
    for i in range(10):
        slot.put(i, stamp=f's{i}')
    assert len(slot) == 1 and slot.seq == 10 and slot.overwritten == 9
    assert slot.wait_newer(0, 0.01) == (10, 9, 's9')
    assert slot.wait_newer(10, 0.01) is None
    got = []
    th = threading.Thread(target=lambda: got.append(slot.wait_newer(10, 2.0)))
    th.start()
    time.sleep(0.05)
    slot.put('new')
    th.join()
    assert got == [(11, 'new', None)]


def test_rolling_stats():
    st = RollingStats(window=10)
    assert math.isnan(st.percentile(50))
    for v in range(100):
        st.add(v)
    s = st.summary()
    assert s['n'] == 10 and s['max'] == 99 and st.count == 100
    assert s['p50'] == pytest.approx(94.5) and 98 <= s['p95'] <= 99


# ------------------------------------------------------------------ worker
class Harness:
    """Worker + scripted engine + executor with a control-tick thread and a camera thread."""

    def __init__(self, script, delay=0.0, max_steps=400, primitive_s=0.05, camera_hz=100.0):
        self.engine = ScriptedEngine(EngineConfig(engine='scripted', script=script,
                                                  script_step_delay_s=delay))
        self.motion = ActionExecutor(MotionConfig(linear_speed_mps=0.25 / primitive_s,
                                                  angular_speed_radps=math.radians(15)
                                                  / primitive_s, control_rate_hz=100.0))
        self.slot = LatestSlot()
        self.events = []
        self.worker = InferenceWorker(self.engine, self.slot, self.motion, max_steps=max_steps,
                                      on_event=self.events.append, poll_s=0.01)
        self.commands = []
        self._stop = threading.Event()
        self.camera_on = threading.Event()
        self.camera_on.set()
        self.frames_put = 0
        self._threads = [threading.Thread(target=self._ticks), threading.Thread(
            target=self._camera, args=(camera_hz,))]

    def _ticks(self):
        while not self._stop.is_set():
            c = self.motion.command(time.monotonic())
            self.commands.append(c)
            time.sleep(0.01)

    def _camera(self, hz):
        while not self._stop.is_set():
            if self.camera_on.is_set():
                self.frames_put += 1
                self.slot.put(frame(self.frames_put % 256), stamp=self.frames_put)
            time.sleep(1.0 / hz)

    def __enter__(self):
        for t in self._threads:
            t.start()
        self.worker.start()
        return self

    def __exit__(self, *exc):
        self.worker.stop()
        assert self.worker.join(5.0)
        self._stop.set()
        for t in self._threads:
            t.join()


def test_worker_runs_episode_to_stop():
    with Harness('MOVE_FORWARD,TURN_LEFT,TURN_RIGHT,STOP') as h:
        ep = h.worker.submit('go')
        assert ep == 1
        assert wait_until(lambda: h.worker.snapshot().state == EpisodeState.SUCCEEDED, 5.0)
        snap = h.worker.snapshot()
        assert snap.step == 4 and snap.last_action == Action.STOP and snap.episode_id == 1
        assert [r.action for r in h.worker.history(1)] == [
            Action.MOVE_FORWARD, Action.TURN_LEFT, Action.TURN_RIGHT, Action.STOP]
        assert h.worker.final(1).state == EpisodeState.SUCCEEDED
        assert h.motion.ended_count == 3
        assert any(c.linear > 0 for c in h.commands) and any(c.angular < 0 for c in h.commands)
        # the final event is delivered right after the state changes: wait for it
        assert wait_until(lambda: h.events and h.events[-1].state == EpisodeState.SUCCEEDED, 5.0)
        states = [e.state for e in h.events]
        assert states[0] == EpisodeState.NAVIGATING and states[-1] == EpisodeState.SUCCEEDED
        # each frame used by a step arrived after the previous primitive ended
        stamps = [e.frame_stamp for e in h.events if e.step > 0]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_worker_takes_fresh_frame_after_motion_not_during_it():
    with Harness('MOVE_FORWARD', primitive_s=0.3, camera_hz=100.0) as h:
        h.worker.submit('go')
        assert wait_until(lambda: h.worker.snapshot().step >= 3, 5.0)
        h.worker.cancel()
        assert wait_until(lambda: h.worker.snapshot().state == EpisodeState.STOPPED, 2.0)
    # one engine frame per executed primitive: ~30 camera frames per step went unused
    assert h.engine.frames_seen <= h.worker.snapshot().step + 1
    assert h.frames_put > 5 * h.engine.frames_seen


def test_worker_max_steps_cancel_preempt_error_recovery():
    with Harness('MOVE_FORWARD', max_steps=3) as h:
        h.worker.submit('a')
        assert wait_until(lambda: h.worker.snapshot().state == EpisodeState.STOPPED, 5.0)
        snap = h.worker.snapshot()
        assert snap.step == 3 and 'max_steps' in snap.message
    with Harness('MOVE_FORWARD', delay=0.1, primitive_s=0.05) as h:
        e1 = h.worker.submit('first')
        assert wait_until(lambda: h.worker.snapshot().step >= 1, 5.0)
        assert wait_until(lambda: h.worker.in_step, 5.0)   # preempt during a step
        e2 = h.worker.submit('second')
        assert wait_until(lambda: h.worker.snapshot().episode_id == e2, 5.0)
        first = h.worker.final(e1)
        assert first.state == EpisodeState.STOPPED and 'preempted' in first.message
        assert list(h.engine.instructions) == ['first', 'second']
        assert wait_until(lambda: h.worker.snapshot().step >= 1, 5.0)
        assert h.worker.cancel('operator cancel')
        assert wait_until(lambda: h.worker.snapshot().state == EpisodeState.STOPPED, 5.0)
        assert h.worker.snapshot().message == 'operator cancel'
        assert not h.worker.cancel()
    with Harness('MOVE_FORWARD,RAISE') as h:
        h.worker.submit('boom')
        assert wait_until(lambda: h.worker.snapshot().state == EpisodeState.ERROR, 5.0)
        assert 'fault' in h.worker.snapshot().message and not h.motion.busy
        assert h.worker.alive
        h.worker.submit('recover')             # the next instruction recovers
        assert wait_until(lambda: h.worker.snapshot().step >= 1
                          and h.worker.snapshot().episode_id == 2, 5.0)


def test_worker_keep_memory_and_camera_stall():
    with Harness('MOVE_FORWARD') as h:
        h.worker.submit('a', reset_memory=False)     # nothing to keep yet: a plain reset
        assert wait_until(lambda: h.worker.snapshot().step >= 2, 5.0)
        assert list(h.engine.instructions) == ['a']
        h.worker.submit('b', reset_memory=False)
        assert wait_until(lambda: h.worker.snapshot().episode_id == 2
                          and h.worker.snapshot().step >= 1, 5.0)
        assert h.engine.frames_seen >= 3       # memory kept (no reset)

        class NoKeep:
            def reset(self, instruction):
                pass
        w = InferenceWorker(NoKeep(), LatestSlot(), ActionExecutor(MotionConfig()))
        with pytest.raises(InputError, match='cannot keep'):
            w.submit('x', reset_memory=False)
        h.camera_on.clear()
        time.sleep(0.2)
        steps = h.worker.snapshot().step
        time.sleep(0.3)
        assert h.worker.snapshot().step == steps   # no frames -> no steps, no motion
        assert not h.motion.busy
        h.camera_on.set()
        assert wait_until(lambda: h.worker.snapshot().step > steps, 5.0)


# ------------------------------------------------------------------ issue 15: safety
class GateEngine(ScriptedEngine):
    """A scripted engine whose step blocks until ``gate`` is set."""

    def __init__(self, script='MOVE_FORWARD'):
        super().__init__(EngineConfig(engine='scripted', script=script))
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def step(self, frame):
        self.entered.set()
        assert self.gate.wait(30.0)
        return super().step(frame)


def test_cancel_by_id_covers_a_queued_episode_which_then_never_starts():
    """Item 1: a cancel sent while the episode is still queued ends it before it starts."""
    with Harness('MOVE_FORWARD') as h:
        eng = GateEngine()
        h.worker._engine = eng                      # noqa: SLF001 - before any episode
        eng.gate.clear()
        assert h.worker.submit('first') == 1
        assert eng.entered.wait(5.0)                # the worker is inside step 1 of episode 1
        assert h.worker.submit('second') == 2       # queued behind that step
        assert h.worker.cancel('goal cancelled', episode_id=2)
        final = h.worker.final(2)
        assert final is not None and final.state == EpisodeState.STOPPED
        assert final.message == 'goal cancelled'
        assert not h.worker.cancel('again', episode_id=2)       # already over
        eng.gate.set()
        assert wait_until(lambda: h.worker.final(1) is not None, 5.0)
        assert 'preempted' in h.worker.final(1).message          # it was stopped for episode 2
        assert h.worker.snapshot().episode_id == 1
        assert list(eng.instructions) == ['first']               # episode 2 never started
        assert not h.motion.busy


def test_cancel_by_id_of_the_running_episode_and_of_an_unknown_one():
    with Harness('MOVE_FORWARD') as h:
        assert h.worker.submit('go') == 1
        assert wait_until(lambda: h.worker.snapshot().step >= 1, 5.0)
        assert not h.worker.cancel('wrong id', episode_id=7)
        assert h.worker.snapshot().state == EpisodeState.NAVIGATING
        assert h.worker.cancel('by id', episode_id=1)
        assert wait_until(lambda: h.worker.final(1) is not None, 5.0)
        assert h.worker.final(1).message == 'by id'


def test_stop_ends_a_queued_episode_and_wakes_waiters():
    with Harness('MOVE_FORWARD') as h:
        eng = GateEngine()
        h.worker._engine = eng                      # noqa: SLF001
        eng.gate.clear()
        h.worker.submit('first')
        assert eng.entered.wait(5.0)
        h.worker.submit('second')
        version = h.worker.records.version
        woke = []
        th = threading.Thread(target=lambda: woke.append(h.worker.wait_change(version, 10.0)))
        th.start()
        h.worker.stop('node deactivated')
        th.join(10.0)
        assert woke and woke[0] != version
        assert h.worker.final(2).state == EpisodeState.STOPPED
        assert h.worker.final(1).message == 'node deactivated'
        eng.gate.set()


class UnparseableEngine(ScriptedEngine):
    """MOVE_FORWARD, then an output that is no action word (the engine falls back to STOP)."""

    def step(self, frame):
        res = super().step(frame)
        if res.step == 0:
            return res
        return StepResult(Action.STOP, 'MOVE_FORWARD.', res.step, {'total': 1.0},
                          parsed=False)


def test_unparseable_output_ends_as_stopped_not_succeeded_and_is_counted():
    """Item 9: the fallback STOP is kept for the robot but reported for what it is."""
    with Harness('MOVE_FORWARD') as h:
        h.worker._engine = UnparseableEngine(EngineConfig(engine='scripted',   # noqa: SLF001
                                                          script='MOVE_FORWARD'))
        h.worker.submit('go')
        assert wait_until(lambda: h.worker.final(1) is not None, 5.0)
        final = h.worker.final(1)
        assert final.state == EpisodeState.STOPPED, final
        assert final.message.startswith('unparseable output') and 'MOVE_FORWARD.' in final.message
        assert final.last_action == Action.STOP and final.step == 2
        assert h.worker.unparseable_total == 1
        assert not h.motion.busy
        h.worker._engine = ScriptedEngine(EngineConfig(engine='scripted',   # noqa: SLF001
                                                       script='STOP'))
        h.worker.submit('again')
        assert wait_until(lambda: h.worker.final(2) is not None, 5.0)
        assert h.worker.final(2).state == EpisodeState.SUCCEEDED      # a real STOP
        assert h.worker.unparseable_total == 1


def test_parameter_change_applies_from_the_next_primitive():
    """Item 5: a speed or distance change does not alter the primitive in flight."""
    ex = ActionExecutor(MotionConfig(forward_distance_m=0.25, linear_speed_mps=0.5,
                                     turn_angle_deg=15.0, angular_speed_radps=0.5))
    ex.execute(Action.MOVE_FORWARD)
    assert ex.command(0.0).linear == 0.5
    ex.update_config(MotionConfig(forward_distance_m=1.0, linear_speed_mps=2.0,
                                  turn_angle_deg=90.0, angular_speed_radps=1.0))
    c = ex.command(0.3)
    assert c.active and c.linear == 0.5 and c.angular == 0.0      # same speed
    assert ex.command(0.49).active                                 # same 0.5 s duration
    c = ex.command(0.5)
    assert not c.active and c.linear == 0.0 and c.angular == 0.0
    ex.execute(Action.MOVE_FORWARD)                                # the next one: new config
    assert ex.command(1.0).linear == 2.0
    assert ex.command(1.45).active and not ex.command(1.5).active
    ex.execute(Action.TURN_LEFT)
    c = ex.command(2.0)
    assert c.angular == 1.0 and c.linear == 0.0
    ex.update_config(MotionConfig(turn_angle_deg=1.0, angular_speed_radps=5.0))
    c = ex.command(2.5)
    assert c.active and c.angular == 1.0                           # pi/2 at 1 rad/s: 1.57 s


def test_odometry_primitive_keeps_its_distance_when_the_parameter_changes():
    ex = ActionExecutor(MotionConfig(motion_mode='odometry', forward_distance_m=0.5))
    ex.update_odometry(0.0, 0.0, 0.0, 0.0)
    ex.execute(Action.MOVE_FORWARD)
    assert ex.command(0.0).active
    ex.update_config(MotionConfig(motion_mode='odometry', forward_distance_m=0.1))
    ex.update_odometry(0.2, 0.0, 0.0, 0.1)
    assert ex.command(0.1).active                      # 0.2 m < the 0.5 m it started with
    ex.update_odometry(0.5, 0.0, 0.0, 0.2)
    assert not ex.busy and ex.last_outcome.completed


def test_backwards_clock_aborts_the_primitive_in_flight():
    """Item 3: elapsed time going negative must stop the robot, not stall the primitive."""
    ex = ActionExecutor(MotionConfig(forward_distance_m=2.5, linear_speed_mps=0.5))   # 5 s
    ex.execute(Action.MOVE_FORWARD)
    assert ex.command(100.0).active
    assert ex.command(101.0).active
    c = ex.command(40.0)                   # a looping bag / simulator reset
    assert not c.active and c.linear == 0.0 and c.angular == 0.0
    assert not ex.busy and ex.last_outcome.reason == 'clock jumped backwards'
    assert ex.last_end_s == 40.0
    ex.execute(Action.TURN_LEFT)           # the next primitive runs on the new time base
    assert ex.command(41.0).active
    assert ex.clock_jumped(41.5) and not ex.busy
    assert ex.last_outcome.reason == 'clock jumped'


def test_worker_takes_a_frame_captured_after_the_primitive_not_one_arriving_after_it():
    """Item 7: with camera latency, arrival order would hand the model a mid-motion frame."""
    latency, primitive = 0.15, 0.2
    with Harness('MOVE_FORWARD', primitive_s=primitive, camera_hz=1000.0) as h:
        h.camera_on.clear()
        ends = []                                 # (ended_count, end time) of each primitive

        def camera():
            while not h._stop.is_set():
                now = time.monotonic()
                h.frames_put += 1
                h.slot.put(frame(h.frames_put % 256), stamp=now - latency,
                           capture_s=now - latency)
                last = h.motion.last_end_s
                if last is not None and (not ends or ends[-1][1] != last):
                    ends.append((h.motion.ended_count, last))
                time.sleep(0.005)
        th = threading.Thread(target=camera)
        th.start()
        try:
            h.worker.submit('go')
            assert wait_until(lambda: h.worker.snapshot().step >= 4, 10.0)
            h.worker.cancel()
        finally:
            h._stop.set()
            th.join()
    end_of = dict(ends)                   # primitive number -> time it ended
    steps = [e for e in h.events if e.step > 1 and e.step - 1 in end_of]
    assert len(steps) >= 3
    for ev in steps:
        # the frame of step n was captured after primitive n-1 (chosen by step n-1) ended
        assert ev.frame_stamp >= end_of[ev.step - 1] - 0.05, (ev.step, ev.frame_stamp, ends)
    assert h.worker.stale_frames_skipped > 0


def test_frames_without_stamps_fall_back_to_arrival_order_with_a_warning(caplog):
    with Harness('MOVE_FORWARD') as h:          # its camera puts no capture time
        with caplog.at_level('WARNING', logger='janusvln_ros.core.worker'):
            h.worker.submit('go')
            assert wait_until(lambda: h.worker.snapshot().step >= 3, 5.0)
    assert any('no capture stamp' in r.getMessage() for r in caplog.records)


def test_episode_records_wait_change_and_first_final_wins():
    from janusvln_ros.core.episodes import EpisodeRecords, EpisodeSnapshot, StepRecord
    rec = EpisodeRecords(max_finals=2)
    v0 = rec.version
    assert rec.wait_change(v0, 0.01) == v0
    rec.start(1)
    rec.add_step(StepRecord(1, 1, Action.MOVE_FORWARD, 1.0))
    rec.add_step(StepRecord(9, 1, Action.MOVE_FORWARD, 1.0))     # not the current episode
    assert [r.step for r in rec.history(1)] == [1] and rec.history(9) == []
    rec.finish(EpisodeSnapshot(episode_id=1, state=EpisodeState.STOPPED, message='a'))
    rec.finish(EpisodeSnapshot(episode_id=1, state=EpisodeState.ERROR, message='b'))
    assert rec.final(1).message == 'a'
    for i in (2, 3):
        rec.finish(EpisodeSnapshot(episode_id=i, state=EpisodeState.STOPPED))
    assert rec.final(1) is None and rec.final(3) is not None
    assert rec.wait_change(v0, 0.01) != v0


def test_cancel_without_id_ends_the_queued_and_the_running_episode():
    with Harness('MOVE_FORWARD') as h:
        eng = GateEngine()
        h.worker._engine = eng                      # noqa: SLF001
        eng.gate.clear()
        h.worker.submit('first')
        assert eng.entered.wait(5.0)
        h.worker.submit('second')
        assert h.worker.cancel('operator cancel')
        assert h.worker.final(2).message == 'operator cancel'
        eng.gate.set()
        assert wait_until(lambda: h.worker.final(1) is not None, 5.0)
        assert h.worker.final(1).message == 'operator cancel'
        assert list(eng.instructions) == ['first'] and not h.motion.busy


def test_odometry_motion_slows_near_the_target_and_settles_before_it_ends():
    cfg = MotionConfig(motion_mode='odometry', forward_distance_m=0.25, linear_speed_mps=0.5,
                       approach_time_s=0.2, approach_min_speed_ratio=0.02,
                       settle_timeout_s=1.0)
    ex = ActionExecutor(cfg)
    ex.update_odometry(0.0, 0.0, 0.0, 0.0, twist=(0.0, 0.0))
    ex.execute(Action.MOVE_FORWARD)
    assert ex.command(0.0).linear == 0.5                 # 0.25 m to go: full speed
    ex.update_odometry(0.2, 0.0, 0.0, 0.1, twist=(0.5, 0.0))
    assert ex.command(0.1).linear == pytest.approx(0.05 / 0.2)   # remaining / approach time
    ex.update_odometry(0.248, 0.0, 0.0, 0.2, twist=(0.25, 0.0))
    assert ex.command(0.2).linear == pytest.approx(0.01)          # the floor: 2 % of 0.5
    # Never more than reaches the target by the next reading (readings 0.02 s apart).
    ex.update_odometry(0.2499, 0.0, 0.0, 0.22, twist=(0.01, 0.0))
    assert ex.command(0.22).linear == pytest.approx(0.0001 / 0.02)
    # Reached while the base still moves: zero is commanded, the primitive is not over yet.
    ex.update_odometry(0.2501, 0.0, 0.0, 0.24, twist=(0.01, 0.0), stamp=0.24)
    assert ex.busy and not ex.command(0.24).active
    ex.update_odometry(0.2502, 0.0, 0.0, 0.27, twist=(0.01, 0.0), stamp=0.26)
    assert ex.busy
    # At rest: it ends at the stamp of that reading, which the worker then trusts exactly.
    ex.update_odometry(0.2502, 0.0, 0.0, 0.29, twist=(0.0, 0.0), stamp=0.28)
    assert not ex.busy and ex.last_outcome.completed and ex.last_outcome.reason == 'done'
    assert ex.last_end_s == 0.28 and ex.last_end_settled
    # A turn that never reports rest ends after settle_timeout_s.
    ex.execute(Action.TURN_LEFT)
    assert ex.command(0.3).angular == cfg.angular_speed_radps
    ex.update_odometry(0.2502, 0.0, math.radians(15.1), 0.4, twist=(0.0, 0.3))
    assert ex.busy and not ex.command(0.4).active
    assert not ex.command(1.45).active and not ex.busy and ex.last_outcome.completed
    assert not ex.last_end_settled
    # Without velocities in the odometry (or settle_timeout_s 0) it ends at the target.
    ex.execute(Action.MOVE_FORWARD)
    ex.update_odometry(0.2502, 0.0, 0.0, 1.5)
    assert ex.command(1.5).active
    ex.update_odometry(0.6, 0.0, 0.0, 1.6)
    assert not ex.busy and ex.last_end_s == 1.6


def test_motion_config_rejects_bad_approach_settings():
    with pytest.raises(ConfigError, match='approach_min_speed_ratio'):
        MotionConfig(approach_min_speed_ratio=0.0)
    with pytest.raises(ConfigError, match='approach_min_speed_ratio'):
        MotionConfig(approach_min_speed_ratio=1.5)
    with pytest.raises(ConfigError, match='approach_time_s'):
        MotionConfig(approach_time_s=-1.0)
    assert MotionConfig(approach_time_s=0.0, settle_timeout_s=0.0).approach_time_s == 0.0
