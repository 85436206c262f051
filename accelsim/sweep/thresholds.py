"""Which NVF thresholds a sweep visits: the workload's grid (the paper's 0, 5, ..., 50 %)
where it selects distinct, non-empty neuron sets, plus thresholds at NVF quantiles that protect
the top 1, 2, 5, 10, 20 and 50 % of neurons (on well-trained networks most of the paper's grid
selects nothing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.protection.plan import threshold_for_top

F64 = npt.NDArray[np.float64]
DEFAULT_TOPS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


@dataclass(frozen=True)
class SweepPoint:
    """A threshold (percent) and the neurons it selects; ``label`` says where it came from."""

    threshold_percent: float
    label: str
    n_protected: int
    top_percent: float  # share of neurons it protects (percent)


def sweep_points(
    nvf_by_layer: dict[int, F64], grid_percent: tuple[float, ...], tops: tuple[float, ...]
) -> tuple[SweepPoint, ...]:
    """Distinct, non-empty selections, fewest protected neurons first. A quantile threshold
    that selects the same set as a grid threshold or another quantile (when few neurons have
    NVF > 0, "top 20 %" can select only what "top 5 %" does) is merged into its label, so no
    requested point disappears without a trace."""
    values = np.concatenate([np.ravel(v) for v in nvf_by_layer.values()]) * 100
    n = values.size
    found: dict[int, SweepPoint] = {}
    for t in sorted(grid_percent):
        count = int(np.sum(values >= t - 1e-12))
        if count and count not in found:
            found[count] = SweepPoint(float(t), f"NVF >= {t:g} %", count, 100 * count / n)
    if np.any(values > 0):
        for top in tops:
            t = threshold_for_top(nvf_by_layer, top)
            count = int(np.sum(values >= t - 1e-12))
            if count in found:  # the same selection: one point, every name it has
                old = found[count]
                found[count] = SweepPoint(
                    old.threshold_percent, f"{old.label} = top {top:g} %", count, old.top_percent
                )
                continue
            found[count] = SweepPoint(t, f"top {top:g} %", count, 100 * count / n)
    return tuple(found[c] for c in sorted(found))
