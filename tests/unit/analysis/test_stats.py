"""Validation statistics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.analysis.stats import (
    critical_set_agreement,
    mean_absolute_error_pp,
    rankdata,
    spearman,
    top_k_overlap,
)


def test_rankdata_averages_ties() -> None:
    np.testing.assert_array_equal(rankdata(np.array([10.0, 20.0, 10.0, 5.0])), [2.5, 4.0, 2.5, 1.0])


def test_spearman_hand_values() -> None:
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == 1.0
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == -1.0
    # d = ranks differ by (0, 0, 1, -1): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert math.isclose(spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 2, 4, 3])), 0.8)
    assert math.isnan(spearman(np.zeros(4), np.arange(4.0)))


def test_top_k_and_sets() -> None:
    pred = np.array([0.9, 0.8, 0.1, 0.0, 0.5])
    truth = np.array([0.7, 0.0, 0.6, 0.0, 0.5])
    assert top_k_overlap(pred, truth, 2) == 0.5  # {0, 1} vs {0, 2}
    assert top_k_overlap(pred, truth, 3) == 2 / 3  # {0, 1, 4} vs {0, 2, 4}
    s = critical_set_agreement(pred, truth, 50.0)
    assert (s.predicted, s.actual, s.precision, s.recall) == (3, 3, 2 / 3, 2 / 3)
    empty = critical_set_agreement(pred, truth, 95.0)
    assert math.isnan(empty.precision)
    assert math.isnan(empty.recall)
    assert math.isclose(mean_absolute_error_pp(pred, truth), 100 * (0.2 + 0.8 + 0.5 + 0 + 0) / 5)


def test_bernstein_half_width_by_hand() -> None:
    """Constant values (V = 0) over 100 inputs: only the range term, 7 ln 80 / (3 x 99); with
    V = 0.01 over 400: sqrt(2 x 0.01 x ln 80 / 400) + 7 ln 80 / (3 x 399)."""
    from accelsim.analysis.stats import bernstein_half_width

    ln80 = math.log(80.0)
    got = bernstein_half_width(np.array([0.3]), np.array([0.0]), 100)
    assert got[0] == pytest.approx(7 * ln80 / 297)
    normal = 1.96 * math.sqrt(0.01 / 400)
    got = bernstein_half_width(np.array([0.3]), np.array([normal]), 400)
    assert got[0] == pytest.approx(math.sqrt(2 * 0.01 * ln80 / 400) + 7 * ln80 / 1197)
    assert got[0] > normal  # never narrower than the normal approximation here
    assert bernstein_half_width(np.array([0.5]), np.array([0.1]), 1)[0] == 1.0
