"""Plain-numpy int8 ops of graph networks: the executable specification of TFLite's int8 scheme.

Each function mirrors one TFLite Micro reference kernel (``tensorflow/lite/kernels/internal/
reference/integer_ops/*.h`` and the ``micro/kernels`` Prepare code that derives its
parameters), on accelsim's C-H-W layout with a leading batch axis. Activations are int8 with a
per-tensor scale and zero point; intermediate values are int64 and saturate where TFLite's int32
would be undefined. ``quantized_activation_range`` is TFLite's
``CalculateActivationRangeQuantized``; the fused activations are integer clamps.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from accelsim.functional.reference import (
    INT32_MAX,
    INT32_MIN,
    float32,
    quantize_multiplier,
    rounding_divide_by_pot_ref,
    saturating_rounding_doubling_high_mul_ref,
)

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
Padding = tuple[int, int, int, int]  # top, bottom, left, right

ACTIVATIONS = ("none", "relu", "relu6")


def quantized_activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized`` for an int8 output: the clamp bounds of a
    fused NONE / RELU / RELU6 (``zero_point + round(f / scale)`` in float32, half away from 0)."""

    def quantize(f: float) -> int:
        q = np.float32(f) / np.float32(scale)
        return zero_point + int(math.copysign(math.floor(abs(float(q)) + 0.5), float(q)))

    if activation == "none":
        return -128, 127
    if activation == "relu":
        return max(-128, quantize(0.0)), 127
    if activation == "relu6":
        return max(-128, quantize(0.0)), min(127, quantize(6.0))
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def multiply_by_quantized_multiplier(
    x: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike
) -> I64:
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding), broadcasting ``multiplier`` and
    ``shift`` against ``x``; the left shift saturates to int32."""
    m, s = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
    x = np.clip(np.asarray(x, np.int64) << np.maximum(s, 0), INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot_ref(
        saturating_rounding_doubling_high_mul_ref(x, m), np.maximum(-s, 0)
    )


def requantize_fp32(acc: npt.ArrayLike, scale: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """XNNPACK's fp32 requantisation (LiteRT's default CPU path): ``rint(float32(acc) *
    scale)``, ties to even, all in float32; ``scale`` is ``s_in * s_w / s_out`` in float32."""
    return np.rint(np.asarray(acc).astype(np.float32) * np.asarray(scale, np.float32))


def _finish(
    acc: I64, multiplier: npt.ArrayLike, shift: npt.ArrayLike, zero_point: int, lo: int, hi: int
) -> I8:
    """Requantise, add the zero point, clamp. A float32 ``multiplier`` (``shift`` None) is an
    XNNPACK fp32 scale; int multipliers are TFLite's fixed point."""
    if np.asarray(multiplier).dtype == np.float32:
        y = requantize_fp32(acc, multiplier).astype(np.int64) + zero_point
    else:
        y = multiply_by_quantized_multiplier(acc, multiplier, shift) + zero_point
    return np.clip(y, lo, hi).astype(np.int8)


def xnnpack_scale(
    input_scale: float, weight_scale: npt.ArrayLike, output_scale: float
) -> npt.NDArray[np.float32]:
    """XNNPACK's per-channel requantisation scale: ``input_scale * kernel_scale / output_scale``
    evaluated in float32, left to right."""
    ws = np.asarray(weight_scale, np.float32)
    return (np.float32(input_scale) * ws) / np.float32(output_scale)


def _channel(v: npt.ArrayLike, ndim: int) -> np.ndarray:
    """Per-channel values shaped to broadcast over axis 1 of an ``ndim`` array."""
    return np.asarray(v).reshape(1, -1, *([1] * (ndim - 2)))


def _per(v: npt.ArrayLike | None, ndim: int) -> np.ndarray | None:
    return None if v is None else _channel(v, ndim)


def _pad_input(x: I8, padding: Padding, value: int) -> I64:
    t, b, left, r = padding
    return np.pad(x.astype(np.int64), ((0, 0), (0, 0), (t, b), (left, r)), constant_values=value)


def conv2d(
    x: I8,
    weight: I8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.ArrayLike,
    shift: npt.ArrayLike,
    *,
    stride: int,
    padding: Padding,
    input_zero_point: int,
    output_zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """CONV_2D (``ConvPerChannel``): x (N, C, H, W), weight (O, C, KH, KW) -> (N, O, OH, OW).
    Padding contributes ``input_zero_point`` (zero after the input offset)."""
    xp = _pad_input(x, padding, input_zero_point) - input_zero_point
    o, _, kh, kw = weight.shape
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    acc = np.broadcast_to(bias.astype(np.int64).reshape(1, o, 1, 1), (x.shape[0], o, oh, ow)).copy()
    w64 = weight.astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            acc += np.einsum("nchw,oc->nohw", patch, w64[:, :, i, j])
    return _finish(acc, _channel(multiplier, 4), _per(shift, 4), output_zero_point, *act_range)


def depthwise_conv2d(
    x: I8,
    weight: I8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.ArrayLike,
    shift: npt.ArrayLike,
    *,
    stride: int,
    padding: Padding,
    depth_multiplier: int,
    input_zero_point: int,
    output_zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """DEPTHWISE_CONV_2D (``DepthwiseConvPerChannel``): weight (C * dm, KH, KW); output channel
    ``c * dm + m`` filters input channel c."""
    xp = _pad_input(x, padding, input_zero_point) - input_zero_point
    xp = np.repeat(xp, depth_multiplier, axis=1)  # input channel of every output channel
    o, kh, kw = weight.shape
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    acc = np.broadcast_to(bias.astype(np.int64).reshape(1, o, 1, 1), (x.shape[0], o, oh, ow)).copy()
    w64 = weight.astype(np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            acc += patch * w64[None, :, i, j, None, None]
    return _finish(acc, _channel(multiplier, 4), _per(shift, 4), output_zero_point, *act_range)


def fully_connected(
    x: I8,
    weight: I8,
    bias: npt.NDArray[np.int32],
    multiplier: npt.ArrayLike,
    shift: npt.ArrayLike,
    *,
    input_zero_point: int,
    output_zero_point: int,
    act_range: tuple[int, int],
) -> I8:
    """FULLY_CONNECTED: x (N, F), weight (O, F) -> (N, O)."""
    acc = (x.astype(np.int64) - input_zero_point) @ weight.astype(np.int64).T + bias.astype(
        np.int64
    )
    return _finish(acc, _channel(multiplier, 2), _per(shift, 2), output_zero_point, *act_range)


def _windows(x: I8, size: tuple[int, int], stride: int, padding: Padding):
    """Yield (oy, ox, window) with the in-bounds part of each pooling window (N, C, kh', kw')."""
    t, b, left, r = padding
    h, w = x.shape[2], x.shape[3]
    oh = (h + t + b - size[0]) // stride + 1
    ow = (w + left + r - size[1]) // stride + 1
    for oy in range(oh):
        y0 = oy * stride - t
        for ox in range(ow):
            x0 = ox * stride - left
            yield (
                oy,
                ox,
                x[:, :, max(y0, 0) : min(y0 + size[0], h), max(x0, 0) : min(x0 + size[1], w)],
            )


def _pool_shape(x: I8, size: tuple[int, int], stride: int, padding: Padding) -> tuple[int, ...]:
    t, b, left, r = padding
    oh = (x.shape[2] + t + b - size[0]) // stride + 1
    ow = (x.shape[3] + left + r - size[1]) // stride + 1
    return (x.shape[0], x.shape[1], oh, ow)


def max_pool2d(
    x: I8, *, size: tuple[int, int], stride: int, padding: Padding, act_range: tuple[int, int]
) -> I8:
    """MAX_POOL_2D: the maximum of the in-bounds window elements, then the activation clamp."""
    out = np.empty(_pool_shape(x, size, stride, padding), np.int8)
    for oy, ox, win in _windows(x, size, stride, padding):
        out[:, :, oy, ox] = np.clip(win.max(axis=(2, 3)), *act_range)
    return out


def average_pool2d(
    x: I8, *, size: tuple[int, int], stride: int, padding: Padding, act_range: tuple[int, int]
) -> I8:
    """AVERAGE_POOL_2D: the sum of the in-bounds elements divided by their count, rounding half
    away from zero (C division of ``sum +- count / 2``); input and output share a quantisation."""
    out = np.empty(_pool_shape(x, size, stride, padding), np.int8)
    for oy, ox, win in _windows(x, size, stride, padding):
        acc = win.astype(np.int64).sum(axis=(2, 3))
        count = win.shape[2] * win.shape[3]
        half = count // 2
        avg = np.where(acc > 0, (acc + half) // count, -((-(acc - half)) // count))
        out[:, :, oy, ox] = np.clip(avg, *act_range)
    return out


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """MEAN's multiplier/shift over ``count`` elements (``QuantizedMeanOrSum``): the multiplier
    of ``s_in / s_out`` divided by ``count`` in fixed point."""
    multiplier, shift = quantize_multiplier(float32(input_scale) / float32(output_scale))
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << extra) // count), shift - extra


def mean_hw(
    x: I8, *, input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int
) -> I8:
    """MEAN over H and W (global average pooling): (N, C, H, W) -> (N, C)."""
    count = x.shape[2] * x.shape[3]
    multiplier, shift = mean_multiplier(input_scale, output_scale, count)
    acc = x.sum(axis=(2, 3), dtype=np.int64) - input_zero_point * count
    return _finish(acc, multiplier, shift, output_zero_point, -128, 127)


def add_params(
    s1: float, s2: float, s_out: float
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """ADD's (multiplier, shift) for input 1, input 2 and the output (``CalculateOpDataAdd``,
    left shift 20)."""
    twice_max = 2 * max(float32(s1), float32(s2))
    return (
        quantize_multiplier(float32(s1) / twice_max),
        quantize_multiplier(float32(s2) / twice_max),
        quantize_multiplier(twice_max / ((1 << 20) * float32(s_out))),
    )


def add(
    a: I8,
    b: I8,
    *,
    scales: tuple[float, float, float],
    zero_points: tuple[int, int, int],
    act_range: tuple[int, int],
) -> I8:
    """ADD of two int8 tensors of one shape (``AddFunc``): each input offset, shifted left 20,
    scaled by its multiplier; the sum scaled by the output multiplier."""
    (m1, s1), (m2, s2), (mo, so) = add_params(*scales)
    x1 = (a.astype(np.int64) - zero_points[0]) << 20
    x2 = (b.astype(np.int64) - zero_points[1]) << 20
    total = multiply_by_quantized_multiplier(x1, m1, s1) + multiply_by_quantized_multiplier(
        x2, m2, s2
    )
    return _finish(total, mo, so, zero_points[2], *act_range)


def requantize(
    x: I8, *, input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int
) -> I8:
    """QUANTIZE int8 -> int8 (``Requantize``): ``(x - zp_in) * s_in / s_out + zp_out``."""
    if float32(input_scale) == float32(output_scale) and input_zero_point == output_zero_point:
        return x.copy()
    multiplier, shift = quantize_multiplier(float32(input_scale) / float32(output_scale))
    return _finish(
        x.astype(np.int64) - input_zero_point, multiplier, shift, output_zero_point, -128, 127
    )


def add_xnnpack_params(s1: float, s2: float, s_out: float) -> tuple[int, int, int]:
    """XNNPACK's int8 ADD parameters (``xnn_init_qs8_add_minmax_scalar_params``): the input
    scales over the output's in float32, a shift of 20 minus the larger one's binary exponent,
    each multiplier ``rint(scale 2^shift)``; (a multiplier, b multiplier, shift)."""
    a = np.float32(float32(s1) / float32(s_out))
    b = np.float32(float32(s2) / float32(s_out))
    exponent = int(np.frexp(max(a, b))[1]) - 1  # the float's unbiased exponent
    shift = 20 - exponent
    return int(np.rint(a * np.float32(2.0**shift))), int(np.rint(b * np.float32(2.0**shift))), shift


def add_xnnpack(
    a: I8,
    b: I8,
    *,
    scales: tuple[float, float, float],
    zero_points: tuple[int, int, int],
    act_range: tuple[int, int],
) -> I8:
    """XNNPACK's int8 ADD (LiteRT's default path): ``(bias + a m_a + b m_b) >> shift + zp_out``
    (an arithmetic shift) with ``bias = 2^(shift - 1) - m_a zp_a - m_b zp_b``, clamped."""
    m_a, m_b, shift = add_xnnpack_params(*scales)
    bias = (1 << (shift - 1)) - m_a * zero_points[0] - m_b * zero_points[1]
    acc = bias + a.astype(np.int64) * m_a + b.astype(np.int64) * m_b
    return np.clip((acc >> shift) + zero_points[2], *act_range).astype(np.int8)


XNNPACK_CONVERT_RANGE = (2.0**-8, 2.0**7)  # the scale ratios XNNPACK's int8 convert accepts


def requantize_xnnpack(
    x: I8, *, input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int
) -> I8:
    """XNNPACK's int8 -> int8 convert (LiteRT's default path for QUANTIZE): a Q8 fixed-point
    multiplier ``m = rint(256 float32(s_in / s_out))``, ``((x - zp_in) m + 128) >> 8`` (an
    arithmetic shift: halves round up) ``+ zp_out``, saturated."""
    if float32(input_scale) == float32(output_scale) and input_zero_point == output_zero_point:
        return x.copy()
    m = np.int64(np.rint(np.float32(256.0) * (float32(input_scale) / float32(output_scale))))
    out = (((x.astype(np.int64) - input_zero_point) * m + 128) >> 8) + output_zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def mean_hw_xnnpack(
    x: I8, *, input_scale: float, input_zero_point: int, output_scale: float, output_zero_point: int
) -> I8:
    """XNNPACK's MEAN over H and W: ``rint(float32(sum - zp_in n) * scale) + zp_out`` with
    ``scale = float32(s_in / s_out) * float32(1 / n)`` in float32, saturated."""
    count = x.shape[2] * x.shape[3]
    acc = x.sum(axis=(2, 3), dtype=np.int64) - input_zero_point * count
    scale = (float32(input_scale) / float32(output_scale)) * (np.float32(1.0) / np.float32(count))
    out = np.rint(acc.astype(np.float32) * np.float32(scale)) + output_zero_point
    return np.clip(out, -128, 127).astype(np.int8)


def pad(x: I8, *, padding: Padding, value: int) -> I8:
    """PAD of H and W with ``value`` (the output zero point)."""
    return _pad_input(x, padding, value).astype(np.int8)


def reshape(x: I8, shape: tuple[int, ...], *, order: str) -> I8:
    """RESHAPE to ``shape`` (batch axis excluded). ``order`` is the element order the reshape
    reads and writes: ``chw`` (accelsim's layout) or ``hwc`` (TFLite's NHWC layout, what an
    imported model means): a feature map is read, and a 3-D target written, in H-W-C order."""
    n = x.shape[0]
    if order == "chw":
        return np.ascontiguousarray(x).reshape(n, *shape)
    flat = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x).reshape(n, -1)
    if len(shape) == 3:
        c, h, w = shape
        return np.ascontiguousarray(flat.reshape(n, h, w, c).transpose(0, 3, 1, 2))
    return flat.reshape(n, *shape)
