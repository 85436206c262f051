"""Linearised class margins: slopes of every logit with respect to every neuron output.

With the golden ReLU masks, saturation and max-pool routes held fixed, the network downstream of
a neuron is linear, so ``d logit_j / d out_n`` for all neurons n comes from one backward pass per
logit j. Units: logits are dequantised (``int8 * output_scale``), neuron outputs are int8 steps.
A unit whose golden output sits at a clamp (0 after ReLU, -128 or 127) passes no gradient.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.analysis.kernels import col2im_kernel
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D
from accelsim.functional.network import Network

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


def _active(layer: Conv2D | Dense, y: I8) -> npt.NDArray[np.bool_]:
    """Golden mask: where the requantised output is strictly inside its clamp range."""
    lo = 0 if layer.relu else -128
    return (y > lo) & (y < 127)


def _real_multiplier(layer: Conv2D | Dense) -> F64:
    return layer.input_scale * layer.weight_scale / layer.output_scale


def _col2im_ref(cols: F64, stride: int, padded: F64) -> None:
    """Scatter-add cols (R, OH, OW, C, KH, KW) into padded (R, C, H', W'), kernel offsets in
    order (the numpy specification of ``col2im_kernel``)."""
    _, oh, ow, _, kh, kw = cols.shape
    s = stride
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i : i + s * oh : s, j : j + s * ow : s] += cols[
                :, :, :, :, i, j
            ].transpose(0, 3, 1, 2)


def _conv_input_grad(layer: Conv2D, g_acc: F64) -> F64:
    """Transposed convolution: g_acc (R, O, OH, OW) -> gradient wrt the input (R, C, H, W)."""
    r = g_acc.shape[0]
    o, c, kh, kw = layer.weight.shape
    _, h, w = layer.in_shape
    oh, ow = g_acc.shape[2:]
    s, p = layer.stride, layer.padding
    cols = g_acc.transpose(0, 2, 3, 1).reshape(-1, o) @ layer.weight.reshape(o, -1).astype(
        np.float64
    )
    cols = cols.reshape(r, oh, ow, c, kh, kw)
    padded = np.zeros((r, c, h + 2 * p, w + 2 * p))
    col2im_kernel(np.ascontiguousarray(cols), s, padded)
    return padded[:, :, p : p + h, p : p + w]


def _pool_input_grad(layer: MaxPool2D, x: I8, g_out: F64) -> F64:
    """Route each window's gradient to its golden winner (the first maximum in row-major order).

    x: golden input (B, C, H, W); g_out: (B, K, C, OH, OW) for K seeds per image.
    """
    b, k = g_out.shape[:2]
    oh, ow = g_out.shape[3:]
    size, s = layer.size, layer.stride
    g_in = np.zeros((b, k, *layer.in_shape))
    taken = np.zeros((b, *g_out.shape[2:]), dtype=bool)
    best = np.max(
        np.stack(
            [
                x[:, :, i : i + s * oh : s, j : j + s * ow : s]
                for i in range(size)
                for j in range(size)
            ]
        ),
        axis=0,
    )
    for i in range(size):
        for j in range(size):
            win = x[:, :, i : i + s * oh : s, j : j + s * ow : s]
            route = (win == best) & ~taken
            taken |= route
            g_in[:, :, :, i : i + s * oh : s, j : j + s * ow : s] += g_out * route[:, None]
    return g_in


def _backward_layer(layer: Layer, x: I8, y: I8, g_out: F64) -> F64:
    """Gradient wrt the layer input (B, K, *in_shape) from the gradient wrt its output."""
    b, k = g_out.shape[:2]
    if isinstance(layer, Flatten):
        return g_out.reshape(b, k, *layer.in_shape)
    if isinstance(layer, MaxPool2D):
        return _pool_input_grad(layer, x, g_out)
    extra = (1,) * (y.ndim - 2)
    scale = _real_multiplier(layer).reshape(1, 1, -1, *extra)
    g_acc = g_out * scale * _active(layer, y)[:, None]
    if isinstance(layer, Dense):
        return g_acc @ layer.weight.astype(np.float64)
    flat = _conv_input_grad(layer, g_acc.reshape(b * k, *g_acc.shape[2:]))
    return flat.reshape(b, k, *layer.in_shape)


def logit_slopes(net: Network, outputs: tuple[I8, ...], x: I8) -> dict[int, F64]:
    """``d E_j / d out_n`` for every neuron layer: {layer index: (B, n_classes, n_neurons)}.

    ``outputs`` are ``forward_all(net, x)`` (the golden outputs of every layer for inputs x).
    """
    last = net.layers[-1]
    n_classes = last.out_shape[0]
    b = x.shape[0]
    g = np.broadcast_to(np.eye(n_classes) * last.output_scale, (b, n_classes, n_classes)).copy()
    wanted = set(net.neuron_layers)
    slopes: dict[int, F64] = {}
    for index in range(len(net.layers) - 1, min(wanted), -1):
        layer_in = outputs[index - 1]
        g = _backward_layer(net.layers[index], layer_in, outputs[index], g)
        if index - 1 in wanted:
            slopes[index - 1] = g.reshape(b, n_classes, -1)
    return slopes
