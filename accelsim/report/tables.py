"""Table I (critical neurons per NVF threshold) next to the paper's column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PAPER_THRESHOLDS = tuple(float(t) for t in range(0, 55, 5))
PAPER_TABLE_I = {  # paper Table I: critical neurons at NVF >= 0, 5, ..., 50 %
    "mlp7": (2816, 2513, 1382, 903, 503, 272, 184, 85, 26, 7, 0),
    "lenet5": (4684, 4380, 1659, 222, 187, 70, 3, 0, 0, 0, 0),
    "alexnet": (103168, 46322, 15818, 5171, 622, 398, 232, 147, 56, 6, 0),
}


@dataclass(frozen=True)
class TableRow:
    threshold_percent: float
    critical: int
    portion_percent: float
    paper_critical: int | None
    paper_portion_percent: float | None


def critical_table(
    nvf: npt.NDArray[np.float64], thresholds_percent: tuple[float, ...], network: str | None = None
) -> tuple[TableRow, ...]:
    """Neurons with NVF >= T for each threshold T (percent), with the paper's numbers when the
    network is one of the paper's (or its ``-paper`` variant) and T is on its grid."""
    paper = PAPER_TABLE_I.get((network or "").removesuffix("-paper"))
    rows = []
    for t in thresholds_percent:
        count = int(np.sum(nvf * 100 >= t - 1e-12))
        p_count = paper[PAPER_THRESHOLDS.index(t)] if paper and t in PAPER_THRESHOLDS else None
        rows.append(
            TableRow(
                t,
                count,
                100 * count / max(nvf.size, 1),
                p_count,
                None if p_count is None else 100 * p_count / paper[0],
            )
        )
    return tuple(rows)


def fine_thresholds(nvf: npt.NDArray[np.float64], steps: int = 10) -> tuple[float, ...]:
    """An evenly spaced grid from 0 to the largest NVF (percent, rounded down to 3 decimals)."""
    top = float(nvf.max()) * 100 if nvf.size else 0.0
    grid = np.unique(np.floor(np.linspace(0.0, top, steps + 1) * 1000) / 1000)
    return tuple(float(t) for t in grid)


def needs_fine_grid(nvf: npt.NDArray[np.float64]) -> bool:
    """True when the paper's 5 % step selects (almost) nothing: under 1 % of neurons at 5 %."""
    return bool(np.mean(nvf >= 0.05) < 0.01) if nvf.size else False


def format_critical_table(rows: tuple[TableRow, ...], title: str) -> list[str]:
    lines = [title, f"{'NVF >=':>9} {'critical':>9} {'portion':>9}   {'paper':>7} {'portion':>8}"]
    for r in rows:
        paper = (
            f"{r.paper_critical:>7} {r.paper_portion_percent:>7.2f}%"
            if r.paper_critical is not None
            else f"{'-':>7} {'-':>8}"
        )
        lines.append(
            f"{r.threshold_percent:>8.3g}% {r.critical:>9} {r.portion_percent:>8.2f}%   {paper}"
        )
    return lines
