"""The real (tiny) JanusVLN engine on the "GPU" host, the simulator on the "robot" host.

The fault tests in test_two_host.py use the scripted engine; this one runs the closed loop across
the link with the model itself: the node loads the primed tiny checkpoint, takes camera frames
that crossed the link, and its commands drive the simulated base on the other host.
"""

import loop as lp
import netlab
import pytest

pytestmark = pytest.mark.timeout(240)
MAX_STEPS = 8


def test_closed_loop_with_the_tiny_model_across_the_link(tmp_path, primed_tiny_dir):
    with netlab.TwoHostLab(log_dir=str(tmp_path), seed=5) as lab:
        loop = lp.Loop(lab, tmp_path, engine_args=[
            '-p', 'engine:=janusvln', '-p', f'model_path:={primed_tiny_dir}',
            '-p', f'max_steps:={MAX_STEPS}'])
        try:
            rec = loop.episode('model', timeout=90.0)
            assert rec['instruction']['accepted'], rec['instruction']
            final = lp.final_status(rec)
            assert final is not None, (lp.episode_statuses(rec), loop.logs())
            assert final['state'] in (lp.STATE_SUCCEEDED, lp.STATE_STOPPED), loop.logs()
            steps = [s for s in lp.episode_statuses(rec) if s['step'] >= 1]
            assert steps, loop.logs()
            # The model engine ran: its spatial memory is the 8 + 48 ring buffer, it timed its
            # steps, and each step's action is what its text parsed to (STOP on anything else).
            assert {s['spatial_capacity'] for s in steps} == {56}
            assert all(s['latency_ms'] > 0 for s in steps)
            names = ('STOP', 'MOVE_FORWARD', 'TURN_LEFT', 'TURN_RIGHT')
            for s in steps:
                if s['raw_output'].strip() in names:
                    assert names.index(s['raw_output'].strip()) == s['last_action'], s
                else:
                    assert s['last_action'] == 0, s
            lat = lp.step_latencies(rec)
            assert lat['status_ms'], lat  # frames crossed up, statuses came back
            if any(s['last_action'] != 0 for s in steps):
                assert any(c[1] or c[2] for c in rec['cmd_raw']), 'no command came back'
                assert lat['cmd_ms'], lat
            assert lp.stale_motion(rec) == []
            assert loop.alive() == {'bridge': True, 'node': True}, loop.logs()
        finally:
            assert lab.stop(loop.node, timeout=15) == 0, loop.logs()
            assert lab.stop(loop.bridge, timeout=15) == 0, loop.logs()
