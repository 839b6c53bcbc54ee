"""History sampling equals the released rule, and pruned frames are never sampled again."""

import numpy as np
import pytest

from janusvln_ros.core.history import oldest_sampleable, sample_history


def test_short_history_takes_every_frame():
    for n in range(1, 10):
        assert sample_history(n) == list(range(n))


def test_long_history_is_linspace_of_nine():
    assert sample_history(10) == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert sample_history(101) == [0, 12, 25, 37, 50, 62, 75, 87, 100]
    for n in range(10, 600):
        got = sample_history(n)
        assert got == np.linspace(0, n - 1, 9, dtype=int).tolist()
        assert got[0] == 0 and got[-1] == n - 1 and len(got) == 9
        assert got == sorted(got)


def test_custom_history_length():
    assert sample_history(5, num_history=4) == [0, 1, 2, 3, 4]
    assert sample_history(7, num_history=4) == np.linspace(0, 6, 5, dtype=int).tolist()


@pytest.mark.parametrize('num_history', [8, 4, 5, 3])
def test_pruned_frames_are_never_sampled_again(num_history):
    horizon = 700
    future_min = [0] * (horizon + 2)  # smallest non-zero index sampled at any step >= n
    future_min[horizon + 1] = horizon + 1
    for n in range(horizon, 0, -1):
        nonzero = [i for i in sample_history(n, num_history) if i > 0]
        future_min[n] = min([future_min[n + 1]] + nonzero)
    for n in range(1, horizon):
        bound = oldest_sampleable(n, num_history)
        assert future_min[n] >= bound, (n, future_min[n], bound)
    # the bound is tight: the frame at the bound is sampled at some step (not pruning too little)
    assert any(future_min[n] == oldest_sampleable(n, num_history) for n in range(50, horizon))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        sample_history(0)
    with pytest.raises(ValueError):
        sample_history(3, num_history=0)
