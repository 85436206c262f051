"""Classes of one input under many single-neuron changes, propagating only what changed.

A change to one element of layer L's output reaches the next weighted layer through max-pool
and flatten as at most one changed element (non-overlapping pools: the window's new maximum,
or nothing when the window's maximum is unchanged). The weighted layer's accumulators then move
by ``delta * weight column`` only where the element is in the receptive field, so its new output
is ``requantise(golden accumulators + change)``, without a convolution. Candidates whose output
there equals the golden output are masked (golden class); only the rest run the remaining layers.
The answers equal a full re-run exactly (tested); overlapping pools fall back to full re-runs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.functional.kernels import requantize_int8
from accelsim.functional.layers import Conv2D, Dense, Flatten, MaxPool2D
from accelsim.functional.network import Network, classify, forward
from accelsim.functional.reference import conv2d_acc_ref, dense_acc_ref

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
_ELEMENTS_PER_CHUNK = 1 << 22


def single_change_classes(
    net: Network, outputs: tuple[I8, ...], layer: int, index: npt.ArrayLike, values: npt.ArrayLike
) -> I64:
    """Predicted class when neuron ``index[m]`` (flat, C-H-W order) of ``layer`` outputs
    ``values[m]`` instead of its golden value, for one input.

    ``outputs``: golden outputs of every layer for that input, each of shape (1, *out_shape)
    (``forward_all`` on a batch of one).
    """
    index = np.asarray(index, np.int64)
    values = np.asarray(values, np.int64)
    golden = int(classify(outputs[-1])[0])
    result = np.full(index.size, golden, np.int64)
    alive = values != outputs[layer].reshape(-1)[index]
    pos, new, at = index[alive], values[alive], layer + 1
    keep = np.flatnonzero(alive)
    while isinstance(net.layers[at], MaxPool2D | Flatten):
        pool = net.layers[at]
        if isinstance(pool, MaxPool2D):
            if pool.size != pool.stride:
                return _full_rerun(net, outputs, layer, index, values, result, alive)
            moved, pos, new = _through_pool(pool, outputs[at - 1][0], outputs[at][0], pos, new)
            keep = keep[moved]
        at += 1
    weighted = net.layers[at]
    old = outputs[at - 1].reshape(-1)[pos].astype(np.int64)
    per_chunk = max(1, _ELEMENTS_PER_CHUNK // int(np.prod(weighted.out_shape)))
    for s in range(0, pos.size, per_chunk):
        sl = slice(s, s + per_chunk)
        out = _weighted_change(weighted, outputs[at - 1][0], pos[sl], new[sl] - old[sl])
        differs = np.any(out.reshape(len(out), -1) != outputs[at].reshape(1, -1), axis=1)
        rows = keep[sl][differs]
        if rows.size:
            result[rows] = classify(forward(net, out[differs], start=at + 1, batch_size=512))
    return result


def _full_rerun(net, outputs, layer, index, values, result, alive) -> I64:
    rows = np.flatnonzero(alive)
    for s in range(0, rows.size, 1024):
        part = rows[s : s + 1024]
        copies = np.repeat(outputs[layer], part.size, axis=0)
        copies.reshape(part.size, -1)[np.arange(part.size), index[part]] = values[part]
        result[part] = classify(forward(net, copies, start=layer + 1, batch_size=512))
    return result


def _through_pool(pool: MaxPool2D, x: I8, y: I8, pos: I64, new: I64) -> tuple[I64, I64, I64]:
    """(still-changed mask, new positions, new values) after a non-overlapping max-pool."""
    _, h, w = pool.in_shape
    _, oh, ow = pool.out_shape
    s = pool.stride
    c, rem = np.divmod(pos, h * w)
    yy, xx = np.divmod(rem, w)
    py, px = yy // s, xx // s
    inside = (py < oh) & (px < ow)
    best_other = np.full(pos.size, -129, np.int64)
    for i in range(s):
        for j in range(s):
            ry, rx = py * s + i, px * s + j
            ok = inside & (ry < h) & (rx < w) & ~((ry == yy) & (rx == xx))
            vals = x[c, np.minimum(ry, h - 1), np.minimum(rx, w - 1)].astype(np.int64)
            best_other = np.where(ok, np.maximum(best_other, vals), best_other)
    pooled = np.maximum(best_other, new)
    out_pos = (c * oh + np.minimum(py, oh - 1)) * ow + np.minimum(px, ow - 1)
    moved = inside & (pooled != y.reshape(-1)[out_pos])
    return moved, out_pos[moved], pooled[moved]


def _weighted_change(layer: Conv2D | Dense, x: I8, pos: I64, delta: I64) -> I8:
    """Outputs (m, *out_shape) of ``layer`` when input element ``pos[m]`` moves by ``delta[m]``."""
    zero_bias = np.zeros(layer.out_channels, np.int32)
    if isinstance(layer, Dense):
        acc = dense_acc_ref(x[None], layer.weight, zero_bias)  # (1, O)
        acc = acc + delta[:, None] * layer.weight[:, pos].T.astype(np.int64)
        return requantize_int8(
            acc.T[:, :, None], layer.bias, layer.multiplier, layer.shift, relu=layer.relu
        )[:, :, 0]
    acc0 = conv2d_acc_ref(
        x[None], layer.weight, zero_bias, stride=layer.stride, padding=layer.padding
    )
    o, oh, ow = layer.out_shape
    acc = np.repeat(acc0.reshape(1, o, oh * ow).transpose(0, 2, 1), pos.size, axis=0)  # (m, P, O)
    _, h, w = layer.in_shape
    c, rem = np.divmod(pos, h * w)
    yy, xx = np.divmod(rem, w)
    kh, kw = layer.weight.shape[2:]
    s, p = layer.stride, layer.padding
    rows = np.arange(pos.size)
    for i in range(kh):
        for j in range(kw):
            ny, nx = yy + p - i, xx + p - j
            ok = (
                (ny >= 0)
                & (nx >= 0)
                & (ny % s == 0)
                & (nx % s == 0)
                & (ny // s < oh)
                & (nx // s < ow)
            )
            if not ok.any():
                continue
            pix = (ny[ok] // s) * ow + nx[ok] // s
            acc[rows[ok], pix, :] += delta[ok, None] * layer.weight[:, c[ok], i, j].T.astype(
                np.int64
            )
    out = requantize_int8(
        acc.transpose(2, 0, 1), layer.bias, layer.multiplier, layer.shift, relu=layer.relu
    )
    return out.reshape(pos.size, o, oh, ow)
