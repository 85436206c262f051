"""Fast int8 kernels: numba loops for im2col, requantisation and pooling, and an exact GEMM.

Each wrapper (``conv2d_int8``, ``dense_int8``, ``maxpool2d_int8``, ``requantize_int8``) checks
shapes and dtypes, allocates the output and calls an ``@njit`` kernel; ``reference.py`` holds the
numpy specification each must equal bit for bit.

The GEMM runs on float32 BLAS and is still exact: every int8 x int8 product has magnitude at most
128 * 128 = 2^14, so any partial sum of at most 1024 of them is an integer of magnitude at most
2^24, which float32 represents exactly. Whatever order or blocking BLAS uses, every addition is
exact. Reductions longer than ``EXACT_K_CHUNK`` are split into chunks whose exact float32 results
are added in float64 (exact up to 2^53).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import cache

import numpy as np
import numpy.typing as npt
from numba import njit
from threadpoolctl import ThreadpoolController

from accelsim.errors import ShapeError

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]

EXACT_K_CHUNK = 1024
# GEMMs below this many MACs run BLAS on one thread, where starting its threads costs more than
# they give. The numba kernels are serial on purpose: numba's OpenMP threads spinning beside
# OpenBLAS's threads tripled inference time on 2 cores (LeNet-5: 2.6 s -> 0.9 s without).
SINGLE_THREAD_BLAS_MACS = 1 << 22
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_scratch = threading.local()  # per-thread reusable im2col buffer (avoids page faults per batch)


def _scratch_cols(rows: int, cols: int) -> F32:
    """A (rows, cols) float32 work array, reusing this thread's buffer when it is big enough."""
    size = rows * cols
    buf = getattr(_scratch, "cols", None)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype=np.float32)
        _scratch.cols = buf
    return buf[:size].reshape(rows, cols)


@njit(cache=True, nogil=True)
def _requant_kernel(acc, bias, multiplier, left, right, lo, out):
    """acc (O, N, P) channel-major exact integers, C-contiguous, of any dtype; out (N, O, P) int8;
    adds the bias.

    TFLite's ``MultiplyByQuantizedMultiplier`` in branch-free int64 arithmetic (so it
    vectorises): saturating left shift, ``SaturatingRoundingDoublingHighMul`` (the
    INT32_MIN x INT32_MIN case cannot occur: multipliers are non-negative), then
    ``RoundingDivideByPOT``; bias, multiplier, left and right are int64 per channel.
    """
    n_out, n_img, n_pix = acc.shape
    for o in range(n_out):
        b, sh, m = bias[o], left[o], np.int64(np.int32(multiplier[o]))
        r = right[o]
        mask = (np.int64(1) << r) - 1
        half = mask >> 1
        for n in range(n_img):
            for p in range(n_pix):
                y = scale_by_multiplier((np.int64(acc[o, n, p]) + b) << sh, m, r, mask, half)
                out[n, o, p] = min(max(y, lo), 127)


@njit(cache=True, inline="always")
def scale_by_multiplier(x, m, r, mask, half):
    """Saturate x (already shifted left) to int32, SaturatingRoundingDoublingHighMul by m, then
    RoundingDivideByPOT by r (mask = 2^r - 1, half = mask >> 1)."""
    x32 = np.int32(min(max(x, _INT32_MIN), _INT32_MAX))
    ab = np.int64(x32) * m  # 32 x 32 -> 64-bit product
    nudged = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
    high = (nudged + ((nudged >> 63) & 0x7FFFFFFF)) >> 31  # truncating division
    threshold = half + ((high >> 63) & 1)
    return (high >> r) + np.int64((high & mask) > threshold)


@njit(cache=True)
def requant_one(acc, multiplier, shift, lo):
    """One accumulator (bias included) -> int8 value held in int64; ``lo`` is 0 with ReLU, else
    -128. The scalar form of ``_requant_kernel`` for kernels that requantise a few outputs."""
    left, r = max(shift, 0), max(-shift, 0)
    mask = (np.int64(1) << r) - 1
    y = scale_by_multiplier(np.int64(acc) << left, np.int64(multiplier), r, mask, mask >> 1)
    return min(max(y, lo), 127)


@njit(cache=True, nogil=True)
def _im2col_kernel(x, kh, kw, stride, padding, out):
    """x (N, C, H, W) int8 -> out (N * OH * OW, C * KH * KW) float32, columns in (c, i, j) order."""
    n_img, n_chan, h, w = x.shape
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    for n in range(n_img):
        for oy in range(oh):
            for ox in range(ow):
                row = (n * oh + oy) * ow + ox
                col = 0
                for c in range(n_chan):
                    for i in range(kh):
                        y = oy * stride - padding + i
                        for j in range(kw):
                            xx = ox * stride - padding + j
                            if 0 <= y < h and 0 <= xx < w:
                                out[row, col] = x[n, c, y, xx]
                            else:
                                out[row, col] = 0.0
                            col += 1


@njit(cache=True, nogil=True)
def _im2col_nhwc_kernel(xh, kh, kw, stride, out):
    """xh (N, H', W', C) float32, already zero-padded -> out (N * OH * OW, KH * KW * C), columns
    in (i, j, c) order: each (i, j) block is one contiguous copy of C channels."""
    n_img, hp, wp, n_chan = xh.shape
    oh = (hp - kh) // stride + 1
    ow = (wp - kw) // stride + 1
    for n in range(n_img):
        for oy in range(oh):
            for ox in range(ow):
                row = (n * oh + oy) * ow + ox
                for i in range(kh):
                    for j in range(kw):
                        base = (i * kw + j) * n_chan
                        src = xh[n, oy * stride + i, ox * stride + j]
                        for c in range(n_chan):
                            out[row, base + c] = src[c]


@njit(cache=True, nogil=True)
def _maxpool_kernel(x, size, stride, out):
    n_img, n_chan, oh, ow = out.shape
    for n in range(n_img):
        for c in range(n_chan):
            for oy in range(oh):
                for ox in range(ow):
                    best = x[n, c, oy * stride, ox * stride]
                    for i in range(size):
                        for j in range(size):
                            v = x[n, c, oy * stride + i, ox * stride + j]
                            best = max(best, v)
                    out[n, c, oy, ox] = best


def _check(name: str, arr: np.ndarray, dtype: type, ndim: int) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != ndim:
        got = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ShapeError(f"{name}: expected a {ndim}-d {np.dtype(dtype)} array, got {got}")


def _check_channels(weight: np.ndarray, *per_channel: np.ndarray) -> None:
    for arr in per_channel:
        if arr.shape != (weight.shape[0],):
            raise ShapeError(
                f"per-channel array of shape {arr.shape}, expected ({weight.shape[0]},)"
            )


@cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


@contextlib.contextmanager
def _blas_threads_for(macs: int) -> Iterator[None]:
    if macs >= SINGLE_THREAD_BLAS_MACS:
        yield
    else:
        with _threadpools().limit(limits=1, user_api="blas"):
            yield


def exact_matmul(a: F32, b: F32) -> npt.NDArray[np.float32] | npt.NDArray[np.float64]:
    """Exact integer product of (M, K) x (K, N) float32 matrices holding int8 values."""
    k = a.shape[1]
    with _blas_threads_for(a.shape[0] * k * b.shape[1]):
        if k <= EXACT_K_CHUNK:
            return a @ b
        out = np.zeros((a.shape[0], b.shape[1]), dtype=np.float64)
        for start in range(0, k, EXACT_K_CHUNK):
            out += a[:, start : start + EXACT_K_CHUNK] @ b[start : start + EXACT_K_CHUNK]
        return out


CHANNELS_LAST_MIN = 8  # convolutions with this many input channels gather (kh, kw, c) rows


def gemm_weights(weight: I8) -> F32:
    """A layer's int8 weights (O, ...) as the (K, O) float32 matrix ``exact_matmul`` expects.

    For a convolution with at least CHANNELS_LAST_MIN input channels the reduction axis is
    ordered (kh, kw, c), matching ``_im2col_nhwc_kernel``; otherwise (c, kh, kw).
    """
    if weight.ndim == 4 and weight.shape[1] >= CHANNELS_LAST_MIN:
        weight = weight.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T.astype(np.float32))


def requantize_int8(acc: np.ndarray, bias: I32, multiplier: I32, shift: I32, *, relu: bool) -> I8:
    """Channel-major exact accumulators (O, N, P) without bias -> (N, O, P) int8, bias added
    and requantised. Channel-major is what ``wm.T @ cols.T`` gives, and it lets the kernel read
    and write contiguous runs (a strided view made it 4x slower)."""
    if acc.ndim != 3 or acc.shape[0] != multiplier.shape[0]:
        raise ShapeError(
            f"requantize_int8: expected ({multiplier.shape[0]}, N, P), got {acc.shape}"
        )
    out = np.empty((acc.shape[1], acc.shape[0], acc.shape[2]), dtype=np.int8)
    shift = shift.astype(np.int64)
    _requant_kernel(
        np.ascontiguousarray(acc),
        bias.astype(np.int64),
        multiplier.astype(np.int64),
        np.maximum(shift, 0),
        np.maximum(-shift, 0),
        0 if relu else -128,
        out,
    )
    return out


def conv2d_int8(
    x: I8,
    weight: I8,
    bias: I32,
    multiplier: I32,
    shift: I32,
    *,
    stride: int,
    padding: int,
    relu: bool,
    weight_matrix: F32 | None = None,
) -> I8:
    """Conv2D + requantisation: x (N, C, H, W) int8 -> (N, O, OH, OW) int8.

    ``weight_matrix`` is ``gemm_weights(weight)``, precomputed by callers that reuse a layer.
    """
    _check("x", x, np.int8, 4)
    _check("weight", weight, np.int8, 4)
    _check_channels(weight, bias, multiplier, shift)
    if x.shape[1] != weight.shape[1]:
        raise ShapeError(
            f"conv2d_int8: x has {x.shape[1]} channels, weight expects {weight.shape[1]}"
        )
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"conv2d_int8: kernel {kh}x{kw} does not fit input {h}x{w} (padding {padding})"
        )
    cols = _gather_columns(x, kh, kw, stride, padding)
    wm = gemm_weights(weight) if weight_matrix is None else weight_matrix
    # (O, K) x (K, N*P): BLAS reads both transposed in place and writes channel-major rows,
    # so requantisation reads and writes contiguous runs of pixels
    acc = exact_matmul(wm.T, cols.T).reshape(o, n, oh * ow)
    return requantize_int8(acc, bias, multiplier, shift, relu=relu).reshape(n, o, oh, ow)


def _gather_columns(x: I8, kh: int, kw: int, stride: int, padding: int) -> F32:
    """im2col of x (N, C, H, W) into (N * OH * OW, K) float32, in ``gemm_weights``' order."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = _scratch_cols(n * oh * ow, c * kh * kw)
    if c >= CHANNELS_LAST_MIN:
        xh = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=np.float32)
        xh[:, padding : padding + h, padding : padding + w, :] = x.transpose(0, 2, 3, 1)
        _im2col_nhwc_kernel(xh, kh, kw, stride, cols)
    else:
        _im2col_kernel(np.ascontiguousarray(x), kh, kw, stride, padding, cols)
    return cols


def conv2d_acc_int(
    x: I8, weight: I8, bias: I32, *, stride: int, padding: int, weight_matrix: F32 | None = None
) -> npt.NDArray[np.int64]:
    """Exact int64 accumulators (bias included) of a Conv2D: (N, O, OH, OW); equals
    ``reference.conv2d_acc_ref``."""
    _check("x", x, np.int8, 4)
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    cols = _gather_columns(x, kh, kw, stride, padding)
    wm = gemm_weights(weight) if weight_matrix is None else weight_matrix
    acc = exact_matmul(cols, wm).astype(np.int64).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    return acc + bias.astype(np.int64).reshape(1, o, 1, 1)


def dense_int8(
    x: I8,
    weight: I8,
    bias: I32,
    multiplier: I32,
    shift: I32,
    *,
    relu: bool,
    weight_matrix: F32 | None = None,
) -> I8:
    """Dense + requantisation: x (N, F) int8 -> (N, O) int8."""
    _check("x", x, np.int8, 2)
    _check("weight", weight, np.int8, 2)
    _check_channels(weight, bias, multiplier, shift)
    if x.shape[1] != weight.shape[1]:
        raise ShapeError(
            f"dense_int8: x has {x.shape[1]} features, weight expects {weight.shape[1]}"
        )
    wm = gemm_weights(weight) if weight_matrix is None else weight_matrix
    acc = exact_matmul(wm.T, x.astype(np.float32).T)  # (O, N): channel-major
    return requantize_int8(acc[:, :, None], bias, multiplier, shift, relu=relu)[:, :, 0]


def maxpool2d_int8(x: I8, *, size: int, stride: int) -> I8:
    """Max pooling (no padding, floor mode): (N, C, H, W) int8 -> (N, C, OH, OW) int8."""
    _check("x", x, np.int8, 4)
    oh, ow = (x.shape[2] - size) // stride + 1, (x.shape[3] - size) // stride + 1
    if oh < 1 or ow < 1:
        raise ShapeError(f"maxpool2d_int8: window {size} does not fit input {x.shape[2:]}")
    out = np.empty((x.shape[0], x.shape[1], oh, ow), dtype=np.int8)
    _maxpool_kernel(np.ascontiguousarray(x), size, stride, out)
    return out
