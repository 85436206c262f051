"""numba kernel of a changed FULLY_CONNECTED: the fault-free accumulators plus the changed
inputs' columns, row by row (``graph_fc``); ``sparse_fc_ref`` is its numpy reference, held
bit-exact by ``tests/unit/faults/test_graph_fc.py``.

A fault that reaches a fully connected layer changes few of its inputs per image (AlexNet's
fc1: a median of 1.7 % of 3,072 per image, 42 % over the union of a fault's images), so each
image walks its own nonzero differences: the cost is its changed inputs x outputs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@njit(cache=True, nogil=True)
def sparse_fc_kernel(x_new, x_old, weight_t, acc0, images, out):  # pragma: no cover - numba
    """out[r] = acc0[images[r]] + sum over f of (x_new[r, f] - x_old[r, f]) weight_t[f]; x (R, F)
    int8, weight_t (F, O) int8, acc0 (N, O) int64, out (R, O) int64."""
    n_rows, n_in = x_new.shape
    n_out = weight_t.shape[1]
    for r in range(n_rows):
        base = images[r]
        for o in range(n_out):
            out[r, o] = acc0[base, o]
        for f in range(n_in):
            d = np.int64(x_new[r, f]) - np.int64(x_old[r, f])
            if d != 0:
                for o in range(n_out):
                    out[r, o] += d * np.int64(weight_t[f, o])


def sparse_fc_ref(x_new: I8, x_old: I8, weight_t: I8, acc0: I64, images: I64) -> I64:
    """``sparse_fc_kernel`` in numpy: one exact int64 product of the differences."""
    diff = x_new.astype(np.int64) - x_old.astype(np.int64)
    return acc0[images] + diff @ weight_t.astype(np.int64)
