"""numba kernels of the NVF analysis; each equals a numpy reference bit for bit (tested).

``critical_deltas_kernel`` is the closed form of ``vulnerability.critical_deltas_linear_ref``;
``col2im_kernel`` is the scatter-add of ``slopes._col2im_ref``, adding contributions in the same
order so that float64 sums are identical.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

NONE = np.iinfo(np.int64).min


@njit(cache=True, parallel=True)
def critical_deltas_kernel(slopes, logits, golden, out, scale, r_up, r_lo):
    """slopes (B, K, n) f64, logits (B, K) i8, golden (B,), out (B, n) i8 -> r_up, r_lo (B, n)."""
    n_img, n_cls, n = slopes.shape
    for b in prange(n_img):
        cg = golden[b]
        for j in range(n):
            up, lo = math.inf, -math.inf
            for k in range(n_cls):
                g = slopes[b, cg, j] - slopes[b, k, j]
                if k == cg or g == 0.0:
                    continue
                m = (np.float64(logits[b, cg]) - np.float64(logits[b, k])) * scale
                t = m / abs(g)
                if g < 0:
                    u = math.ceil(t - 1e-9) if k < cg else math.floor(t + 1e-9) + 1.0
                    up = min(up, max(u, 1.0))
                else:
                    w = -math.ceil(t - 1e-9) if k < cg else -math.floor(t + 1e-9) - 1.0
                    lo = max(lo, min(w, -1.0))
            v = np.float64(out[b, j])
            r_up[b, j] = np.int64(up) if up <= 127.0 - v else NONE
            r_lo[b, j] = np.int64(lo) if lo >= -128.0 - v else NONE


@njit(cache=True, parallel=True)
def col2im_kernel(cols, stride, padded):
    """cols (R, OH, OW, C, KH, KW) f64 scatter-added into padded (R, C, H + 2p, W + 2p)."""
    n_rows, oh, ow, n_chan, kh, kw = cols.shape
    for r in prange(n_rows):
        for i in range(kh):
            for j in range(kw):
                for oy in range(oh):
                    for ox in range(ow):
                        for c in range(n_chan):
                            padded[r, c, oy * stride + i, ox * stride + j] += cols[
                                r, oy, ox, c, i, j
                            ]
