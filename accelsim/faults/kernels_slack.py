"""numba kernels of the golden state's rounding slacks: per accumulator, how far it may move
before its requantised value (and so whatever follows it) changes, and the max-pool bounds that
widen those slacks (``golden.pooled_bounds``). Every jitted helper they call is defined in this
file (numba's cache sees one file).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The requantisation steps of ``functional.kernels`` (``scale_by_multiplier``, ``requant_one``),
# copied here so that numba's cache, which sees only this file, stays valid when they change
# (tests/unit/test_numba_rules.py holds every copy equal to the original).
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


@njit(cache=True, inline="always")
def _scale_by_multiplier(x, m, r, mask, half):
    x32 = np.int32(min(max(x, _INT32_MIN), _INT32_MAX))
    ab = np.int64(x32) * m
    nudged = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
    high = (nudged + ((nudged >> 63) & 0x7FFFFFFF)) >> 31
    threshold = half + ((high >> 63) & 1)
    return (high >> r) + np.int64((high & mask) > threshold)


@njit(cache=True)
def _requant_one(acc, multiplier, shift, lo):
    left, r = max(shift, 0), max(-shift, 0)
    mask = (np.int64(1) << r) - 1
    y = _scale_by_multiplier(np.int64(acc) << left, np.int64(multiplier), r, mask, mask >> 1)
    return min(max(y, lo), 127)


# Slacks are capped here and stored as int16 (half the memory and cache of int32): still
# exact, since a move beyond the cap only costs a requantisation that finds the output
# unchanged; one change moves an accumulator by at most 255 * 127 < SLACK_LIMIT.
SLACK_LIMIT = (1 << 15) - 1


NO_CEILING = -(1 << 15)


@njit(cache=True, nogil=True)
def pooled_bounds_kernel(y, top, win, monotone, ceiling, free):
    """``golden.pooled_bounds`` per image: y (N, size) a convolution's output, top (N, P) the
    max-pool's, win (P, window) each window's inputs, monotone (size,) uint8; writes ceiling
    (N, size) int16 and free (N, size) uint8."""
    size = y.shape[1]
    lowest = np.empty(size, np.int64)
    holds = np.empty(size, np.uint8)
    for n in range(y.shape[0]):
        lowest[:] = 127  # in no window: anything goes
        holds[:] = 0
        for po in range(win.shape[0]):
            t = np.int64(top[n, po])
            for i in range(win.shape[1]):
                q = win[po, i]
                lowest[q] = min(lowest[q], t)
                holds[q] |= np.int64(y[n, q]) == t
        for q in range(size):
            f = monotone[q] & (holds[q] ^ 1)
            free[n, q] = f
            ceiling[n, q] = lowest[q] if f else NO_CEILING


@njit(cache=True)
def _within(a, m, sh, lo, y0, up):
    y = _requant_one(a, m, sh, lo)
    return y0 <= y <= up


@njit(cache=True, nogil=True)
def rounding_slack_kernel(acc, requant, halved, chan, bounds, out_lo, out_hi):
    """For every accumulator acc[n, k] (without bias; channel chan[k]; ``requant`` = (bias,
    mult, shift, lo); ``halved[k]`` 1 where the output is a split's half): the largest moves
    out_lo[n, k] <= 0 <= out_hi[n, k] (int16) that leave its requantised value unchanged,
    capped at SLACK_LIMIT. Requantisation is monotone in the accumulator, so every move in between
    leaves the output, and whatever post-operation follows, unchanged: the kernels below skip
    those outputs with two comparisons instead of a requantisation.

    With ``bounds`` = (ceiling, free) non-empty (N, size): upward, the largest move that keeps
    the value at or below ceiling[n, k] (unless ceiling[n, k] is NO_CEILING); downward
    unlimited where free[n, k] (``golden.pooled_bounds``)."""
    bias, mult, shift, lo = requant
    ceiling, free = bounds
    n_img, size = acc.shape
    k_b, k_m = np.empty(size, np.int64), np.empty(size, np.int64)
    k_sh, k_mr = np.empty(size, np.int64), np.empty(size, np.float64)
    for k in range(size):
        o = chan[k]
        k_b[k], k_m[k] = bias[o], mult[o]
        k_sh[k] = shift[o] - (1 if halved[k] else 0)  # split: the half's boundaries
        k_mr[k] = np.float64(mult[o]) * 2.0 ** (k_sh[k] - 31)
    for n in range(n_img):
        for k in range(size):
            b, m, sh, m_real = k_b[k], k_m[k], k_sh[k], k_mr[k]
            a0 = np.int64(acc[n, k])
            y0 = _requant_one(a0 + b, m, sh, lo)
            up = y0  # the largest value a move up may reach
            if ceiling.size and ceiling[n, k] != NO_CEILING:
                up = max(y0, np.int64(ceiling[n, k]))
            for direction in (1, -1):
                # a move of x is fine while the value stays within [y0, up] (monotone in x)
                limit = up if direction == 1 else y0
                if (direction == 1 and up >= 127) or (
                    direction == -1 and (y0 <= lo or (free.size and free[n, k]))
                ):
                    good = SLACK_LIMIT  # saturated (or ReLU zero, or free): nothing to find
                else:
                    # the next value starts near acc + bias = (limit +- 0.5) / M: start there,
                    # gallop to bracket the exact boundary (two roundings), bisect the bracket
                    edge = (limit + 0.5 * direction) / m_real - b - a0
                    good = np.int64(min(max(np.ceil(abs(edge)) - 1, 0), SLACK_LIMIT))
                    bad = good + 1
                    if _within(a0 + direction * good + b, m, sh, lo, y0, up):
                        while bad <= SLACK_LIMIT:
                            if not _within(a0 + direction * bad + b, m, sh, lo, y0, up):
                                break
                            good, bad = bad, bad + 2 * (bad - good)
                    else:
                        bad, good = good, good - 1
                        while good > 0:
                            if _within(a0 + direction * good + b, m, sh, lo, y0, up):
                                break
                            bad, good = good, max(good - 2 * (bad - good), 0)
                    bad = min(bad, SLACK_LIMIT + 1)
                    while bad - good > 1:
                        mid = (good + bad) // 2
                        if _within(a0 + direction * mid + b, m, sh, lo, y0, up):
                            good = mid
                        else:
                            bad = mid
                    good = min(good, SLACK_LIMIT)
                if direction == 1:
                    out_hi[n, k] = good
                else:
                    out_lo[n, k] = -good
