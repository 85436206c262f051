"""The sweep figures plot the result rows' numbers: read back from the matplotlib artists and
compared with hand-written rows (values, 95 % bars, thresholds, overheads)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from accelsim.config.workload import ProtectionMode
from accelsim.report.sweep_plots import fig4_figure, overhead_figure
from accelsim.sweep.results import Interval, ResultRow


def _row(mode, t, neurons, cycles_pct, mem_pct, loss, crit) -> ResultRow:
    return ResultRow(
        mode=ProtectionMode(mode), label=mode if math.isnan(t) else f"NVF >= {t}", threshold_percent=t,
        top_percent=math.nan, critical_neurons=0, neurons=neurons, neurons_overhead_percent=0.0,
        param_bytes=0, param_bytes_extra=0, activation_bytes=0, activation_bytes_extra=0,
        memory_overhead_percent=mem_pct, memory_overhead_transform_percent=3 * mem_pct,
        compute_cycles=0, cycles=0,
        cycle_overhead_percent=cycles_pct, faults=100, population=1000, images=50,
        fault_free_accuracy=0.9, accuracy_loss_pp=Interval(*loss), critical_rate=Interval(*crit),
        critical_rate_fixed_raw=Interval(*(neurons / 100 * v for v in crit)),
        faults_with_effect=Interval(0.1, 0.05, 0.15), campaign_seconds=1.0,
    )  # fmt: skip


ROWS = [
    _row("none", math.nan, 100, 0.0, 0.0, (0.5, 0.25, 1.0), (0.02, 0.01, 0.04)),
    _row("split", 20.0, 110, 4.0, 30.0, (0.25, 0.0, 0.75), (0.01, 0.005, 0.02)),
    _row("split", 0.5, 150, 9.0, 80.0, (0.125, 0.0, 0.5), (0.004, 0.001, 0.01)),
    _row("tmr", 20.0, 120, 7.0, 45.0, (0.0625, 0.0, 0.25), (0.002, 0.0, 0.006)),
    _row("tmr", 0.5, 200, 16.0, 150.0, (0.0, 0.0, 0.125), (0.0, 0.0, 0.001)),
]


def _errorbar(ax, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y and the bars' low and high ends of the errorbar labelled ``label``."""
    (bar,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)
              and c.get_label() == label]  # fmt: skip
    line, _, (segments,) = bar.lines
    ends = np.array([seg for seg in segments.get_segments()])  # (n, 2 points, (x, y))
    return line.get_xdata(), line.get_ydata(), ends[:, 0, 1], ends[:, 1, 1]


def test_fig4_plots_each_modes_rows_against_the_threshold() -> None:
    loss, crit, raw, size = fig4_figure(ROWS, "t").axes
    x, y, lo, hi = _errorbar(loss, "split")
    assert list(x) == [0.5, 20.0]  # sorted by threshold
    assert list(y) == [0.125, 0.25]
    assert list(lo) == [0.0, 0.0]
    assert list(hi) == [0.5, 0.75]
    x, y, lo, hi = _errorbar(crit, "tmr")  # rates drawn in percent
    assert list(x) == [0.5, 20.0]
    np.testing.assert_allclose(y, [0.0, 0.2])
    np.testing.assert_allclose(lo, [0.0, 0.0])
    np.testing.assert_allclose(hi, [0.1, 0.6])
    x, y, lo, hi = _errorbar(raw, "tmr")  # per-fault rate x population ratio (200 / 100, 1.2)
    np.testing.assert_allclose(y, [0.0, 0.24])
    np.testing.assert_allclose(hi, [0.2, 0.72])
    lines = {ln.get_label(): ln for ln in size.get_lines()}
    assert list(lines["split"].get_ydata()) == [150, 110]
    assert list(lines["tmr"].get_ydata()) == [200, 120]
    assert list(lines["unprotected"].get_ydata()) == [100, 100]  # the dashed baseline
    base = {ln.get_label(): ln for ln in loss.get_lines()}["unprotected"]
    assert list(base.get_ydata()) == [0.5, 0.5]
    (band,) = loss.patches  # the unprotected network's 95 % band
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((0.25, 1.0))


@pytest.mark.parametrize(("col", "field"), [(0, "cycle"), (1, "memory")])
def test_overhead_figure_plots_resilience_against_each_overhead(col: int, field: str) -> None:
    axes = overhead_figure(ROWS, "t").axes
    loss, crit, raw = axes[col], axes[2 + col], axes[4 + col]
    want_x = {"cycle": {"split": [9.0, 4.0], "tmr": [16.0, 7.0]},
              "memory": {"split": [80.0, 30.0], "tmr": [150.0, 45.0]}}[field]  # fmt: skip
    for mode, xs in want_x.items():
        x, y, _, _ = _errorbar(loss, mode)
        assert list(x) == xs
        assert list(y) == {"split": [0.125, 0.25], "tmr": [0.0, 0.0625]}[mode]
        x, y, _, hi = _errorbar(crit, mode)
        assert list(x) == xs
        np.testing.assert_allclose(hi, {"split": [1.0, 2.0], "tmr": [0.1, 0.6]}[mode])
        x, y, _, _ = _errorbar(raw, mode)  # rate x neurons / 100 (the rows' population ratio)
        assert list(x) == xs
        np.testing.assert_allclose(y, {"split": [0.6, 1.1], "tmr": [0.0, 0.24]}[mode])
    x, y, lo, hi = _errorbar(loss, "unprotected")  # the point at 0 % overhead
    assert (list(x), list(y), list(lo), list(hi)) == ([0], [0.5], [0.25], [1.0])
    labels = sorted(t.get_text() for t in loss.texts)
    assert labels == sorted(["20", "0.5", "20", "0.5"])
