"""Numba kernel of one fold: a block of the layer GEMM accumulated in int64.

``fold_acc_int8`` is the wrapper, ``_fold_acc_kernel`` the jitted loop nest and ``fold_acc_ref``
the numpy specification; tests hold them equal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from accelsim.errors import ShapeError

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
Block = tuple[int, int, int, int, int, int]  # m0, m1, n0, n1, k0, k1


@njit(cache=True)
def _fold_acc_kernel(a, w, m0, m1, n0, n1, k0, k1, acc):
    for b in range(a.shape[0]):
        for m in range(m0, m1):
            for n in range(n0, n1):
                s = np.int64(0)
                for k in range(k0, k1):
                    s += np.int64(a[b, m, k]) * np.int64(w[k, n])
                acc[b, m, n] += s


def fold_acc_ref(a: I8, w: I8, block: Block, acc: I64) -> None:
    """acc[:, m0:m1, n0:n1] += a[:, m0:m1, k0:k1] @ w[k0:k1, n0:n1] (int64)."""
    m0, m1, n0, n1, k0, k1 = block
    acc[:, m0:m1, n0:n1] += a[:, m0:m1, k0:k1].astype(np.int64) @ w[k0:k1, n0:n1].astype(np.int64)


def fold_acc_int8(a: I8, w: I8, block: Block, acc: I64) -> None:
    """The jitted ``fold_acc_ref``: a (B, M, K) int8, w (K, N) int8, acc (B, M, N) int64."""
    if a.dtype != np.int8 or w.dtype != np.int8 or acc.dtype != np.int64:
        raise ShapeError(f"fold_acc_int8: dtypes {a.dtype}, {w.dtype}, {acc.dtype}")
    if a.ndim != 3 or w.ndim != 2 or a.shape[2] != w.shape[0] or acc.shape != (
        a.shape[0], a.shape[1], w.shape[1],
    ):  # fmt: skip
        raise ShapeError(f"fold_acc_int8: shapes {a.shape}, {w.shape}, {acc.shape}")
    m0, m1, n0, n1, k0, k1 = block
    if not (
        0 <= m0 <= m1 <= a.shape[1] and 0 <= n0 <= n1 <= w.shape[1] and 0 <= k0 <= k1 <= w.shape[0]
    ):
        raise ShapeError(f"fold_acc_int8: block {block} outside {a.shape}, {w.shape}")
    _fold_acc_kernel(a, w, m0, m1, n0, n1, k0, k1, acc)
