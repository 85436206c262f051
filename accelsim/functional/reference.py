"""Plain-numpy int8 kernels: the executable specification of accelsim's arithmetic.

Slow but obviously right; the numba kernels in ``kernels.py`` must equal these bit for bit.
Requantisation follows TFLite's reference kernels (``tensorflow/lite/kernels/internal/common.h``:
``MultiplyByQuantizedMultiplier`` = ``SaturatingRoundingDoublingHighMul`` then
``RoundingDivideByPOT``), with the multiplier/shift produced by ``quantize_multiplier`` the way
``QuantizeMultiplier`` (``quantization_util.cc``) does it. All intermediate values are int64.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: M -> (q in [2^30, 2^31), shift) with M ~ q 2^(shift-31)."""
    if real_multiplier < 0 or not math.isfinite(real_multiplier):
        raise ValueError(
            f"requantisation multiplier must be finite and >= 0, got {real_multiplier}"
        )
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # std::round: half away from zero, q > 0
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantisation multiplier {real_multiplier} too large (shift {shift})")
    return q_fixed, shift


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32, as a Python float (a ``.tflite`` stores scales
    as float32)."""
    return float(np.float32(value))


def tflite_multiplier(
    input_scale: float, weight_scale: float, output_scale: float
) -> tuple[int, int]:
    """The multiplier/shift TFLite derives for one output channel in the op's Prepare:
    ``QuantizeMultiplier(double(s_in) * double(s_w) / double(s_out))`` on the float32 scales a
    ``.tflite`` holds (``PopulateConvolutionQuantizationParams``). Scales that are not float32
    values are rounded to float32 first."""
    return quantize_multiplier(float32(input_scale) * float32(weight_scale) / float32(output_scale))


def saturating_rounding_doubling_high_mul_ref(a: I64, b: I64) -> I64:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values held in int64."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    nudged = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot_ref(x: I64, exponent: I64) -> I64:
    """gemmlowp ``RoundingDivideByPOT``: x / 2^exponent, rounding half away from zero."""
    x, exponent = np.asarray(x, np.int64), np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize_ref(acc: I32 | I64, multiplier: I32, shift: I32, *, relu: bool) -> I8:
    """int32 accumulators (N, C, ...) -> int8 outputs, one multiplier/shift per channel (axis 1).

    The left shift of a multiplier > 1 saturates to int32 instead of overflowing (TFLite leaves
    that case undefined; quantised networks never reach it).
    """
    extra = (1,) * (acc.ndim - 2)
    m = np.asarray(multiplier, np.int64).reshape(1, -1, *extra)
    s = np.asarray(shift, np.int64).reshape(1, -1, *extra)
    x = np.clip(np.asarray(acc, np.int64) << np.maximum(s, 0), INT32_MIN, INT32_MAX)
    y = rounding_divide_by_pot_ref(
        saturating_rounding_doubling_high_mul_ref(x, m), np.maximum(-s, 0)
    )
    return np.clip(y, 0 if relu else -128, 127).astype(np.int8)


def conv2d_acc_ref(x: I8, weight: I8, bias: I32, *, stride: int, padding: int) -> I64:
    """Conv2D accumulators: x (N, C, H, W), weight (O, C, KH, KW) -> int64 (N, O, OH, OW)."""
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w + 2 * padding - kw) // stride + 1
    acc = np.broadcast_to(bias.astype(np.int64).reshape(1, o, 1, 1), (n, o, oh, ow)).copy()
    w64 = weight.astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            acc += np.einsum("nchw,oc->nohw", patch, w64[:, :, i, j])
    return acc


def conv2d_ref(
    x: I8,
    weight: I8,
    bias: I32,
    multiplier: I32,
    shift: I32,
    *,
    stride: int,
    padding: int,
    relu: bool,
) -> I8:
    """Conv2D with fused requantisation (and ReLU): int8 (N, O, OH, OW)."""
    acc = conv2d_acc_ref(x, weight, bias, stride=stride, padding=padding)
    return requantize_ref(acc, multiplier, shift, relu=relu)


def dense_acc_ref(x: I8, weight: I8, bias: I32) -> I64:
    """Accumulators of a Dense layer: x (N, F), weight (O, F) -> (N, O)."""
    return x.astype(np.int64) @ weight.astype(np.int64).T + bias.astype(np.int64)


def dense_ref(x: I8, weight: I8, bias: I32, multiplier: I32, shift: I32, *, relu: bool) -> I8:
    """Dense with fused requantisation (and ReLU): int8 (N, O)."""
    return requantize_ref(dense_acc_ref(x, weight, bias), multiplier, shift, relu=relu)


def maxpool2d_ref(x: I8, *, size: int, stride: int) -> I8:
    """Max pooling without padding (floor mode): (N, C, H, W) -> (N, C, OH, OW)."""
    oh = (x.shape[2] - size) // stride + 1
    ow = (x.shape[3] - size) // stride + 1
    windows = [
        x[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
        for i in range(size)
        for j in range(size)
    ]
    return np.max(np.stack(windows), axis=0).astype(np.int8)
