"""The exact searches of the NVF for one input, on any network: ``classes(index, values)``
gives the class when neuron ``index[m]`` of one layer outputs ``values[m]`` instead of its
golden code (the chain's incremental re-run, ``functional.incremental``, or a graph's
downstream re-run, ``analysis.graph_exact``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
NONE = np.iinfo(np.int64).min  # "no such delta"
BITS = np.arange(8)

Classes = Callable[[I64, I64], I64]  # (flat neuron indices, new int8 values) -> classes


def bisect_critical_deltas(
    v: I64, golden: int, classes: Classes, neurons: I64 | None = None
) -> tuple[I64, I64]:
    """r_upper / r_lower of neurons with golden codes ``v`` for one input whose class is
    ``golden``; ``classes(index, values)`` gives the class when neuron ``index[m]`` outputs
    ``values[m]``. First the extreme value (if it does not change the class, no delta does,
    under monotonicity), then halving the bracket; neurons not in ``neurons`` get NONE."""

    def flips(rows: I64, values: I64) -> npt.NDArray[np.bool_]:
        return classes(rows, values) != golden

    result = []
    for sign, limit in ((1, 127 - v), (-1, v + 128)):
        r = np.full(v.size, NONE, dtype=np.int64)
        safe, bad = np.zeros(v.size, np.int64), limit.copy()  # safe keeps the class, bad flips
        rows = np.flatnonzero(limit > 0)
        if neurons is not None:
            rows = np.intersect1d(rows, neurons)
        rows = rows[flips(rows, v[rows] + sign * limit[rows])]
        far = rows
        while rows.size:
            rows = rows[bad[rows] - safe[rows] > 1]
            mid = (safe[rows] + bad[rows]) // 2
            hit = flips(rows, v[rows] + sign * mid)
            bad[rows[hit]] = mid[hit]
            safe[rows[~hit]] = mid[~hit]
        r[far] = sign * bad[far]
        result.append(r)
    return result[0], result[1]


def bit_flip_table(v: I64, golden: int, classes: Classes, neurons: I64 | None = None) -> F64:
    """(8, n): 1 where flipping bit b of the neuron with golden code ``v[n]`` changes the class
    ``golden`` of one input (``classes`` as for ``bisect_critical_deltas``; only ``neurons``
    when given, the others stay 0)."""
    which = np.arange(v.size) if neurons is None else np.asarray(neurons, np.int64)
    idx = np.repeat(which, 8)
    vals = (v[idx].reshape(-1, 8) ^ (1 << BITS)[None, :]).astype(np.int8).reshape(-1)
    flips = classes(idx, vals.astype(np.int64)) != golden
    out = np.zeros((8, v.size))
    out[:, which] = flips.reshape(-1, 8).T
    return out
