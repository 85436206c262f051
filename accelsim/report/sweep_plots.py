"""Figures of a threshold sweep: the paper's Fig. 4 panels and overhead-vs-resilience curves.

Functions take result rows and return a Figure; nothing here runs a simulation.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from accelsim.sweep.results import ResultRow, is_unprotected

COLORS = {"split": "C0", "split_clamped": "C1", "tmr": "C3", "dmr_and": "C2",
          "dmr_recompute": "C4", "ranger": "C5", "zero": "C6"}  # fmt: skip
MARKERS = {"split": "o", "split_clamped": "X", "tmr": "s", "dmr_and": "^", "dmr_recompute": "v",
           "ranger": "D", "zero": "P"}  # fmt: skip


def _modes(rows: list[ResultRow]) -> list[str]:
    """The protection modes of the rows (their names), in order of appearance."""
    return list(dict.fromkeys(r.mode.value for r in rows if not is_unprotected(r)))


def _series(rows: list[ResultRow], mode: str) -> list[ResultRow]:
    return sorted((r for r in rows if r.mode.value == mode), key=lambda r: r.threshold_percent)


def _metric(r: ResultRow, metric: str) -> tuple[float, float, float]:
    """(value, minus, plus) in plotted units: pp for accuracy loss, % for rates."""
    est = getattr(r, metric)
    scale = 1.0 if metric == "accuracy_loss_pp" else 100.0
    return scale * est.value, scale * (est.value - est.lo), scale * (est.hi - est.value)


LABELS = {
    "accuracy_loss_pp": "accuracy loss (pp, mean over faults)",
    "critical_rate": "critical-fault rate (% of fault x image)",
    "critical_rate_fixed_raw": "critical rate at a fixed raw fault rate\n(% per unprotected fault)",
    "neurons": "network size (neurons)",
}


def _baseline(ax: Axes, base: ResultRow | None, metric: str) -> None:
    if base is None:
        return
    if metric == "neurons":
        ax.axhline(base.neurons, color="k", ls="--", lw=1, label="unprotected")
        return
    v, lo, hi = _metric(base, metric)
    ax.axhline(v, color="k", ls="--", lw=1, label="unprotected")
    ax.axhspan(v - lo, v + hi, color="k", alpha=0.08, lw=0)


def fig4_figure(rows: list[ResultRow], title: str) -> Figure:
    """Accuracy loss, critical-fault rate (per fault, and at a fixed raw fault rate) and network
    size vs NVF threshold, one curve per mode (95 % confidence bars), the unprotected network as
    a dashed line with its band."""
    fig = Figure(figsize=(19, 4.4), layout="constrained")
    axes = fig.subplots(1, 4)
    base = next((r for r in rows if is_unprotected(r)), None)
    panels = ("accuracy_loss_pp", "critical_rate", "critical_rate_fixed_raw", "neurons")
    for ax, metric in zip(axes, panels, strict=True):
        _baseline(ax, base, metric)
        for mode in _modes(rows):
            s = _series(rows, mode)
            x = [r.threshold_percent for r in s]
            if metric == "neurons":
                ax.plot(x, [r.neurons for r in s], marker=MARKERS.get(mode, "o"),
                        color=COLORS.get(mode), label=mode)  # fmt: skip
                continue
            vals = np.array([_metric(r, metric) for r in s])
            ax.errorbar(x, vals[:, 0], yerr=vals[:, 1:].T, marker=MARKERS.get(mode, "o"),
                        color=COLORS.get(mode), capsize=3, label=mode)  # fmt: skip
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel("NVF threshold (%), symmetric log scale")
        ax.set_ylabel(LABELS[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: resilience and size vs NVF threshold (paper Fig. 4)")
    return fig


def overhead_figure(rows: list[ResultRow], title: str) -> Figure:
    """Accuracy loss and critical-fault rate (per fault, and at a fixed raw fault rate) against
    cycle overhead and memory overhead (the accelerator's view): one curve per mode, points
    labelled by threshold, 95 % confidence bars; the unprotected network is the point at 0 %
    overhead."""
    fig = Figure(figsize=(13, 13), layout="constrained")
    axes = fig.subplots(3, 2)
    base = next((r for r in rows if is_unprotected(r)), None)
    memory = ("memory overhead (%), accelerator view\n(copies' multipliers, outputs, "
              "correction registers)")  # fmt: skip
    xs = (
        ("cycle_overhead_percent", "cycle overhead on the array (%)"),
        ("memory_overhead_percent", memory),
    )
    for i, metric in enumerate(("accuracy_loss_pp", "critical_rate", "critical_rate_fixed_raw")):
        for j, (xfield, xlabel) in enumerate(xs):
            ax = axes[i, j]
            if base is not None:
                v, lo, hi = _metric(base, metric)
                ax.errorbar([0], [v], yerr=[[lo], [hi]], color="k", marker="*", ms=10,
                            capsize=3, ls="none", label="unprotected")  # fmt: skip
            for mode in _modes(rows):
                s = _series(rows, mode)
                x = [getattr(r, xfield) for r in s]
                vals = np.array([_metric(r, metric) for r in s])
                ax.errorbar(x, vals[:, 0], yerr=vals[:, 1:].T, marker=MARKERS.get(mode, "o"),
                            color=COLORS.get(mode), capsize=3, label=mode)  # fmt: skip
                for r, xv, yv in zip(s, x, vals[:, 0], strict=True):
                    ax.annotate(_short(r), (xv, yv), textcoords="offset points", xytext=(4, 4),
                                fontsize=7, color=COLORS.get(mode))  # fmt: skip
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlabel(xlabel + " (symmetric log scale)")
            ax.set_ylabel(LABELS[metric])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"{title}: what protection buys vs what it costs (labels: NVF threshold %)")
    return fig


def _short(r: ResultRow) -> str:
    t = r.threshold_percent
    return "-" if math.isnan(t) else f"{t:.3g}"
