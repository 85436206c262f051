"""numba kernel of a changed FULLY_CONNECTED: the fault-free accumulators plus the changed
inputs' columns, row by row, then the node's requantisation (``graph_fc``); ``sparse_fc_ref``
is its numpy reference, held bit-exact by ``tests/unit/faults/test_graph_fc.py``.

A fault that reaches a fully connected layer changes few of its inputs per image (AlexNet's
fc1: a median of 1.7 % of 3,072 per image, 42 % over the union of a fault's images), so each
image walks its own nonzero differences: the cost is its changed inputs x outputs. The
changed inputs are found eight at a time (the rows as uint64 words), and the sums run in
int32: every partial sum is the accumulator of some int8 input (each position old or new),
at most F x 128 x 128 in magnitude, inside int32 for F < 2^17 (``graph_fc`` checks F).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from accelsim.functional import graph_ref

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

# ``functional.kernels.scale_by_multiplier``, copied here so that numba's cache, which sees only
# this file, stays valid when it changes (tests/unit/test_numba_rules.py holds them equal).
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


@njit(cache=True, inline="always")
def _scale_by_multiplier(x, m, r, mask, half):
    x32 = np.int32(min(max(x, _INT32_MIN), _INT32_MAX))
    ab = np.int64(x32) * m
    nudged = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
    high = (nudged + ((nudged >> 63) & 0x7FFFFFFF)) >> 31
    threshold = half + ((high >> 63) & 1)
    return (high >> r) + np.int64((high & mask) > threshold)


@njit(cache=True, nogil=True)
def sparse_fc_kernel(words, x_new, x_old, weight_t, acc0, images, rq, q, out):  # pragma: no cover
    """out[r] = the node's codes of acc0[images[r]] + sum over f of (x_new[r, f] - x_old[r, f])
    weight_t[f]. x (R, F) int8 and ``words`` = (x_new, x_old) as (R, ceil(F / 8)) uint64
    words (zero-padded); weight_t (F, O) int8; acc0 (N, O) int32 raw accumulators; ``rq`` =
    (bias, multiplier, left shift, right shift) int64 and scale float32 per output; ``q`` =
    (XNNPACK's fp32 requantisation or not, zero point, clamp lo, clamp hi); out (R, O) int8."""
    w_new, w_old = words
    bias, mult, lshift, rshift, scale = rq
    fp32, zp, lo, hi = q[0] != 0, q[1], q[2], q[3]
    n_rows, n_words = w_new.shape
    n_in = x_new.shape[1]
    n_out = weight_t.shape[1]
    sums = np.empty(n_out, np.int32)
    masks = (np.int64(1) << rshift) - 1
    for r in range(n_rows):
        base = images[r]
        for o in range(n_out):
            sums[o] = acc0[base, o]
        for k in range(n_words):
            if w_new[r, k] == w_old[r, k]:
                continue
            for f in range(8 * k, min(8 * k + 8, n_in)):
                d = np.int32(np.int32(x_new[r, f]) - np.int32(x_old[r, f]))
                if d != 0:  # int32 lanes: numba widens int32 arithmetic unless cast back
                    for o in range(n_out):
                        sums[o] = np.int32(sums[o] + np.int32(d * np.int32(weight_t[f, o])))
        if fp32:
            for o in range(n_out):
                v = np.int64(np.rint(np.float32(np.int64(sums[o]) + bias[o]) * scale[o])) + zp
                out[r, o] = min(max(v, lo), hi)
        else:
            for o in range(n_out):
                m = masks[o]
                a = (np.int64(sums[o]) + bias[o]) << lshift[o]
                v = _scale_by_multiplier(a, mult[o], rshift[o], m, m >> 1) + zp
                out[r, o] = min(max(v, lo), hi)


def sparse_fc_ref(x_new: I8, x_old: I8, weight_t: I8, acc0: I64, images: I64,
                  rq: tuple[np.ndarray, ...], q: I64) -> I8:  # fmt: skip
    """``sparse_fc_kernel`` in numpy: one exact int64 product of the differences, then the
    specification's requantisation (``graph_ref``)."""
    diff = x_new.astype(np.int64) - x_old.astype(np.int64)
    acc = acc0[images].astype(np.int64) + diff @ weight_t.astype(np.int64) + rq[0]
    fp32, zp, lo, hi = (int(v) for v in q)
    if fp32:
        return graph_ref._finish(acc, rq[4], None, zp, lo, hi)
    return graph_ref._finish(acc, rq[1], rq[2] - rq[3], zp, lo, hi)


def warm() -> None:
    """Load ``sparse_fc_kernel`` from numba's cache in this process, as
    ``graph_golden.warm_box_kernels`` does for the box kernels, so that forked workers share the
    loaded code."""
    x = np.zeros((1, 8), np.int8)
    i1 = np.zeros(1, np.int64)
    rq = (i1, i1, i1, i1, np.zeros(1, np.float32))
    sparse_fc_kernel((x.view(np.uint64), x.view(np.uint64)), x, x, np.zeros((8, 1), np.int8),
                     np.zeros((1, 1), np.int32), i1, rq, np.array([0, 0, -128, 127]),
                     np.zeros((1, 1), np.int8))  # fmt: skip
