"""VLN-CE metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from janusvln_ros.sim.metrics import aggregate, dedupe, dtw, episode_metrics, ndtw, path_length


def test_dtw_hand_cases():
    line = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    assert dtw(line, line) == 0.0
    # (0,0)-(0,0): 0, then (2,0) against (1,0): 1 and against (2,0): 0 -> total 1.
    assert dtw(np.array([[0.0, 0.0], [2.0, 0.0]]), line) == pytest.approx(1.0)
    # A parallel path 1 m off: every one of the 3 aligned pairs costs 1.
    assert dtw(line + [0.0, 1.0], line) == pytest.approx(3.0)
    # One query point against 3 reference points: 2 + 1 + 0 (from (2,0)).
    assert dtw(np.array([[2.0, 0.0]]), line) == pytest.approx(3.0)


def test_ndtw_normalisation_and_dedupe():
    ref = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    assert ndtw(ref, ref) == 1.0
    assert ndtw(ref + [0.0, 1.0], ref) == pytest.approx(math.exp(-3.0 / (3 * 3.0)))
    # Turning in place repeats positions; VLN-CE's NDTW ignores the repeats.
    with_repeats = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    assert len(dedupe(with_repeats)) == 3
    assert ndtw(with_repeats, ref) == 1.0
    assert ndtw(np.array([[0.0, 0.0], [2.0, 0.0]]), ref, 2.0) == pytest.approx(
        math.exp(-1.0 / (3 * 2.0)))


def test_success_spl_oracle_success():
    positions = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [8.0, 3.0]])  # walked 4+3+4 = 11
    assert path_length(positions) == pytest.approx(11.0)
    distances = [10.0, 6.0, 2.5, 1.0]
    ref = np.array([[0.0, 0.0], [9.0, 0.0]])
    m = episode_metrics(positions, distances, ref, stopped=True)
    assert (m.ne, m.sr, m.os, m.steps) == (1.0, 1.0, 1.0, 3)
    assert m.spl == pytest.approx(10.0 / 11.0)
    assert m.geodesic_start == 10.0
    # Not stopped (out of steps): no success and no SPL, but oracle success stays.
    m = episode_metrics(positions, distances, ref, stopped=False)
    assert (m.sr, m.spl, m.os) == (0.0, 0.0, 1.0)
    # Passing near the goal and ending far: OS 1, SR 0 although it stopped.
    m = episode_metrics(positions, [10.0, 2.0, 5.0, 7.0], ref, stopped=True)
    assert (m.sr, m.os, m.ne, m.spl) == (0.0, 1.0, 7.0, 0.0)
    # A path shorter than the geodesic (stopping early, inside the radius): SPL is capped at 1.
    m = episode_metrics(positions[:2], [5.0, 2.0], ref, stopped=True)
    assert m.spl == 1.0


def test_success_threshold_is_strict():
    positions = np.array([[0.0, 0.0], [1.0, 0.0]])
    ref = positions
    assert episode_metrics(positions, [4.0, 3.0], ref, True).sr == 0.0
    assert episode_metrics(positions, [4.0, 2.999], ref, True).sr == 1.0
    assert episode_metrics(positions, [3.0, 3.0], ref, True).os == 0.0


def test_aggregate_is_the_mean():
    ref = np.array([[0.0, 0.0], [1.0, 0.0]])
    a = episode_metrics(np.array([[0.0, 0.0], [1.0, 0.0]]), [5.0, 1.0], ref, True)
    b = episode_metrics(np.array([[0.0, 0.0], [1.0, 0.0]]), [5.0, 4.0], ref, True)
    agg = aggregate([a, b])
    assert agg['episodes'] == 2
    assert agg['SR'] == 0.5
    assert agg['NE'] == pytest.approx(2.5)
    assert agg['SPL'] == pytest.approx(0.5)


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError):
        episode_metrics(np.zeros((3, 2)), [1.0, 2.0], np.zeros((2, 2)), True)
