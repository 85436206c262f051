"""Fast kernels of the graph ops, each bit-exact with its ``graph_ref`` specification.

Convolutions and fully connected layers run on the exact float32 GEMM of ``kernels``: the input
is padded with its zero point and multiplied as raw int8 (so every product stays within 2^14
and the chunked float32 sums stay exact), and the input offset comes back as
``-zp_in * sum(w[o])``, folded into the bias. Requantisation is one numba loop with the output
zero point and the activation clamp. Depthwise convolutions (int32 sums of products of at most
255 x 127) and pools are one numba loop each. ADD, a function of two int8 codes, is a table of
its 256 x 256 results computed once per set of quantisation parameters by the specification
itself (``graph_ref.add`` or ``add_xnnpack``) and read per element (``add_table``). MEAN,
CONCATENATION, PAD and RESHAPE are already whole-array numpy in ``graph_ref`` and run as they
are.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from numba import njit

from accelsim.functional import graph_ref, kernels
from accelsim.functional.graph_ref import Padding

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
def _requant_zp_kernel(acc, bias, multiplier, left, right, zero_point, lo, hi, out):
    """acc (O, N, P) exact integers, channel-major; out (N, O, P) int8: bias added, TFLite's
    ``MultiplyByQuantizedMultiplier``, the output zero point, the clamp to [lo, hi]."""
    n_out, n_img, n_pix = acc.shape
    for o in range(n_out):
        b, sh, m = bias[o], left[o], np.int64(np.int32(multiplier[o]))
        r = right[o]
        mask = (np.int64(1) << r) - 1
        half = mask >> 1
        for n in range(n_img):
            for p in range(n_pix):
                y = _scale_by_multiplier((np.int64(acc[o, n, p]) + b) << sh, m, r, mask, half)
                out[n, o, p] = min(max(y + zero_point, lo), hi)


@njit(cache=True, nogil=True)
def _requant_fp32_kernel(acc, bias, scale, zero_point, lo, hi, out):
    """XNNPACK's fp32 requantisation: rint(float32(acc + bias) * scale) in float32, ties to
    even; acc (O, N, P), out (N, O, P)."""
    n_out, n_img, n_pix = acc.shape
    for o in range(n_out):
        b, sc = bias[o], scale[o]
        for n in range(n_img):
            for p in range(n_pix):
                v = np.float32(np.int64(acc[o, n, p]) + b) * sc
                y = np.int64(np.rint(v)) + zero_point
                out[n, o, p] = min(max(y, lo), hi)


def requantize(
    acc: np.ndarray,
    bias: I64,
    multiplier: np.ndarray,
    shift: I64 | None,
    zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """Channel-major accumulators (O, N, P) -> (N, O, P) int8. A float32 ``multiplier`` (shift
    None) is XNNPACK's fp32 scale, as in ``graph_ref``."""
    out = np.empty((acc.shape[1], acc.shape[0], acc.shape[2]), np.int8)
    if np.asarray(multiplier).dtype == np.float32:
        _requant_fp32_kernel(
            np.ascontiguousarray(acc),
            np.asarray(bias, np.int64),
            np.asarray(multiplier, np.float32),
            zero_point,
            act_range[0],
            act_range[1],
            out,
        )
        return out
    shift = np.asarray(shift, np.int64)
    _requant_zp_kernel(
        np.ascontiguousarray(acc),
        np.asarray(bias, np.int64),
        np.asarray(multiplier, np.int64),
        np.maximum(shift, 0),
        np.maximum(-shift, 0),
        zero_point,
        act_range[0],
        act_range[1],
        out,
    )
    return out


def _pad(x: I8, padding: Padding, value: int) -> I8:
    t, b, left, r = padding
    if not any(padding):
        return np.ascontiguousarray(x)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=value)


def offset_bias(bias: npt.ArrayLike, weight: I8, input_zero_point: int) -> I64:
    """The bias with the input offset folded in: ``bias - zp_in * sum(w[o])``."""
    wsum = weight.reshape(weight.shape[0], -1).astype(np.int64).sum(axis=1)
    return np.asarray(bias, np.int64) - input_zero_point * wsum


def conv2d_acc(
    x: I8,
    weight: I8,
    weight_matrix: npt.NDArray[np.float32],
    *,
    stride: int,
    padding: Padding,
    input_zero_point: int,
) -> np.ndarray:
    """CONV_2D's raw accumulators (O, N, OH * OW), channel-major: the exact sums of the int8
    codes, the input padded with its zero point, no bias (``offset_bias`` adds it)."""
    xp = _pad(x, padding, input_zero_point)
    n = x.shape[0]
    o, _, kh, kw = weight.shape
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    cols = kernels._gather_columns(xp, kh, kw, stride, 0)
    return kernels.exact_matmul(weight_matrix.T, cols.T).reshape(o, n, oh * ow)


def conv2d(
    x: I8,
    weight: I8,
    weight_matrix: npt.NDArray[np.float32],
    bias: I64,
    multiplier: I64,
    shift: I64,
    *,
    stride: int,
    padding: Padding,
    input_zero_point: int,
    output_zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """CONV_2D; ``weight_matrix`` is ``kernels.gemm_weights(weight)`` and ``bias`` is
    ``offset_bias(...)``, both prepared once per node."""
    acc = conv2d_acc(x, weight, weight_matrix, stride=stride, padding=padding,
                     input_zero_point=input_zero_point)  # fmt: skip
    out = requantize(acc, bias, multiplier, shift, output_zero_point, act_range)
    t, b, left, r = padding
    oh = (x.shape[2] + t + b - weight.shape[2]) // stride + 1
    ow = (x.shape[3] + left + r - weight.shape[3]) // stride + 1
    return out.reshape(x.shape[0], weight.shape[0], oh, ow)


def fully_connected(
    x: I8,
    weight_matrix: npt.NDArray[np.float32],
    bias: I64,
    multiplier: I64,
    shift: I64,
    *,
    output_zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """FULLY_CONNECTED with the input offset folded into ``bias`` (``offset_bias``)."""
    acc = kernels.exact_matmul(weight_matrix.T, x.astype(np.float32).T)  # (O, N)
    return requantize(acc[:, :, None], bias, multiplier, shift, output_zero_point, act_range)[
        :, :, 0
    ]


@njit(cache=True, nogil=True)
def _depthwise_kernel(x, w, stride, top, left, dm, zp, oh, ow, acc):
    """x (N, C, H, W) int8, w (C * dm, KH, KW) int8 -> acc (C * dm, N, OH * OW) int32, the
    input offset applied; out-of-bounds taps (the padding, worth zp) contribute 0."""
    n_img, _, h, wd = x.shape
    n_out, kh, kw = w.shape
    for o in range(n_out):
        c = o // dm
        for n in range(n_img):
            for oy in range(oh):
                for ox in range(ow):
                    total = 0
                    for i in range(kh):
                        yy = oy * stride - top + i
                        if 0 <= yy < h:
                            for j in range(kw):
                                xx = ox * stride - left + j
                                if 0 <= xx < wd:
                                    total += (np.int32(x[n, c, yy, xx]) - zp) * np.int32(w[o, i, j])
                    acc[o, n, oy * ow + ox] = total


def depthwise_conv2d(
    x: I8,
    weight: I8,
    bias: npt.ArrayLike,
    multiplier: np.ndarray,
    shift: I64 | None,
    *,
    stride: int,
    padding: Padding,
    depth_multiplier: int,
    input_zero_point: int,
    output_zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """DEPTHWISE_CONV_2D: one numba loop over taps in int32 (products of at most 255 x 127),
    then the requantisation."""
    t, b, left, r = padding
    n, _, h, w = x.shape
    o, kh, kw = weight.shape
    oh = (h + t + b - kh) // stride + 1
    ow = (w + left + r - kw) // stride + 1
    acc = np.empty((o, n, oh * ow), np.int32)
    _depthwise_kernel(
        np.ascontiguousarray(x), np.ascontiguousarray(weight), stride, t, left, depth_multiplier,
        input_zero_point, oh, ow, acc,
    )  # fmt: skip
    out = requantize(acc, bias, multiplier, shift, output_zero_point, act_range)
    return out.reshape(n, o, oh, ow)


@njit(cache=True, nogil=True)
def _pool_kernel(x, kh, kw, stride, top, left, average, lo, hi, out):
    """Max or average (``average``) over the in-bounds part of each window: x (N, C, H, W),
    out (N, C, OH, OW); averages round half away from zero like TFLite's C division."""
    n_img, n_chan, oh, ow = out.shape
    h, w = x.shape[2], x.shape[3]
    for n in range(n_img):
        for c in range(n_chan):
            for oy in range(oh):
                y0 = oy * stride - top
                ya, yb = max(y0, 0), min(y0 + kh, h)
                for ox in range(ow):
                    x0 = ox * stride - left
                    xa, xb = max(x0, 0), min(x0 + kw, w)
                    if average:
                        acc = 0
                        for yy in range(ya, yb):
                            for xx in range(xa, xb):
                                acc += x[n, c, yy, xx]
                        count = (yb - ya) * (xb - xa)
                        half = count // 2
                        v = (acc + half) // count if acc > 0 else -((half - acc) // count)
                    else:
                        v = -128
                        for yy in range(ya, yb):
                            for xx in range(xa, xb):
                                v = max(v, x[n, c, yy, xx])
                    out[n, c, oy, ox] = min(max(v, lo), hi)


def _pool(x: I8, size, stride, padding, act_range, average: bool) -> I8:
    t, b, left, r = padding
    oh = (x.shape[2] + t + b - size[0]) // stride + 1
    ow = (x.shape[3] + left + r - size[1]) // stride + 1
    out = np.empty((x.shape[0], x.shape[1], oh, ow), np.int8)
    _pool_kernel(
        np.ascontiguousarray(x), size[0], size[1], stride, t, left, average, *act_range, out
    )
    return out


def max_pool2d(
    x: I8, *, size: tuple[int, int], stride: int, padding: Padding, act_range: tuple[int, int]
) -> I8:
    """MAX_POOL_2D over the in-bounds window elements, then the activation clamp."""
    return _pool(x, size, stride, padding, act_range, False)


def average_pool2d(
    x: I8, *, size: tuple[int, int], stride: int, padding: Padding, act_range: tuple[int, int]
) -> I8:
    """AVERAGE_POOL_2D: the in-bounds sum over its count, rounded half away from zero."""
    return _pool(x, size, stride, padding, act_range, True)


@functools.lru_cache(maxsize=256)
def add_table(
    requantization: str,
    scales: tuple[float, float, float],
    zero_points: tuple[int, int, int],
    act_range: tuple[int, int],
) -> I8:
    """ADD's result for every pair of int8 codes, (256 * 256,) at ``(a + 128) * 256 + (b +
    128)``: the specification (``graph_ref.add``, or ``add_xnnpack`` for ``xnnpack``) run once
    on all 65,536 pairs, so the table equals it by construction. Read-only, cached per node's
    parameters."""
    codes = np.arange(-128, 128, dtype=np.int8)
    a, b = np.repeat(codes, 256), np.tile(codes, 256)
    spec = graph_ref.add_xnnpack if requantization == "xnnpack" else graph_ref.add
    table = np.ascontiguousarray(
        spec(a, b, scales=scales, zero_points=zero_points, act_range=act_range), np.int8
    )
    table.setflags(write=False)
    return table


@njit(cache=True, nogil=True)
def _lookup_kernel(a, b, table, out):
    """out[i] = table[(a[i] + 128) * 256 + b[i] + 128] on flat int8 arrays."""
    for i in range(a.size):
        out[i] = table[((np.int64(a[i]) + 128) << 8) + np.int64(b[i]) + 128]


def lookup_add(a: I8, b: I8, table: I8) -> I8:
    """ADD of two int8 tensors of one shape through ``add_table``'s table (one numba pass)."""
    out = np.empty(a.size, np.int8)
    _lookup_kernel(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1),
                   table, out)  # fmt: skip
    return out.reshape(a.shape)


def lookup_add_ref(a: I8, b: I8, table: I8) -> I8:
    """``lookup_add`` in numpy (its reference)."""
    return table[(a.astype(np.int64) + 128) * 256 + b.astype(np.int64) + 128]
