"""Linearised class margins of a graph network: ``d logit_j / d out_n`` for every neuron.

The chain version (``slopes.py``) carried through a graph: with the golden clamps, max-pool
routes and requantisation slopes held fixed, the graph downstream of a neuron is linear, and one
backward pass per logit, in reverse topological order, gives the slope of every logit with
respect to every tensor element. A tensor read by several nodes (a residual block's input)
sums the gradients of its readers. Units: logits dequantised (``scale * (q - zp)``), tensor
elements in int8 steps; zero points are offsets and do not enter a slope.

Per op, the slope an element passes back:

- CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: ``s_in s_w[c] / s_out`` times the weights (a
  transposed convolution; padded positions hold the input offset and pass nothing);
- ADD: ``s_a / s_out`` and ``s_b / s_out`` to its two inputs;
- MEAN: ``s_in / (s_out H W)`` to every element of the channel;
- AVERAGE_POOL_2D: ``1 / count`` to every in-bounds element of the window;
- MAX_POOL_2D: 1 to the window's golden winner (its first maximum in row-major order);
- CONCATENATION: ``s_i / s_out`` to part i; PAD, RESHAPE: the element's own position.

An output whose golden value sits at its clamp (the fused activation's bounds, or -128 / 127
after a requantisation) passes no slope.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.analysis.kernels import col2im_kernel
from accelsim.functional.graph import Graph, Node
from accelsim.functional.graph_check import WEIGHTED, channel_scales

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
REQUANTISING = (*WEIGHTED, "ADD", "MEAN", "AVERAGE_POOL_2D")


def _active(g: Graph, nd: Node, y: I8) -> npt.NDArray[np.bool_]:
    lo, hi = g.params[nd.name]["act_range"]
    return (y > lo) & (y < hi)


def _scale(g: Graph, t: str) -> float:
    return float(g.tensors[t].scale)


def _conv_back(g: Graph, nd: Node, g_acc: F64, in_shape: tuple[int, ...]) -> F64:
    """Transposed convolution of g_acc (R, O, OH, OW) -> (R, C, H, W)."""
    r, o, oh, ow = g_acc.shape
    c, h, w = in_shape
    kh, kw = nd.weight.shape[2:]
    s = nd.attr("stride", 1)
    top, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    cols = g_acc.transpose(0, 2, 3, 1).reshape(-1, o) @ nd.weight.reshape(o, -1).astype(np.float64)
    cols = cols.reshape(r, oh, ow, c, kh, kw)
    hp = max(h + top, (oh - 1) * s + kh)
    wp = max(w + left, (ow - 1) * s + kw)
    padded = np.zeros((r, c, hp, wp))
    col2im_kernel(np.ascontiguousarray(cols), s, padded)
    return padded[:, :, top : top + h, left : left + w]


def _depthwise_back(g: Graph, nd: Node, g_acc: F64, in_shape: tuple[int, ...]) -> F64:
    r, _, oh, ow = g_acc.shape
    c, h, w = in_shape
    dm = nd.attr("depth_multiplier", 1)
    kh, kw = nd.weight.shape[1:]
    s = nd.attr("stride", 1)
    top, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    ga = g_acc.reshape(r, c, dm, oh, ow)
    wt = nd.weight.reshape(c, dm, kh, kw).astype(np.float64)
    padded = np.zeros((r, c, max(h + top, (oh - 1) * s + kh), max(w + left, (ow - 1) * s + kw)))
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("rcmyx,cm->rcyx", ga, wt[:, :, i, j])
            padded[:, :, i : i + s * oh : s, j : j + s * ow : s] += contrib
    return padded[:, :, top : top + h, left : left + w]


def _pool_offsets(nd: Node, x_shape: tuple[int, ...], out_shape: tuple[int, ...]):
    """(i, j, padded slices) of each window offset in row-major order, and the padded size."""
    kh, kw = tuple(nd.attr("size"))
    s = nd.attr("stride", 1)
    top, bottom, left, right = nd.attr("padding", (0, 0, 0, 0))
    _, oh, ow = out_shape
    hp = max(x_shape[-2] + top + bottom, (oh - 1) * s + kh)
    wp = max(x_shape[-1] + left + right, (ow - 1) * s + kw)
    offsets = [
        (slice(i, i + s * oh, s), slice(j, j + s * ow, s)) for i in range(kh) for j in range(kw)
    ]
    return offsets, (hp, wp), (top, left)


def _max_pool_back(nd: Node, x: I8, g_out: F64, out_shape: tuple[int, ...]) -> F64:
    """Route each window's slope to its golden winner (first maximum, row-major, in bounds)."""
    b, k = g_out.shape[:2]
    c, h, w = x.shape[1:]
    offsets, (hp, wp), (top, left) = _pool_offsets(nd, x.shape, out_shape)
    xp = np.full((b, c, hp, wp), -1000, np.int16)
    xp[:, :, top : top + h, left : left + w] = x
    best = np.max(np.stack([xp[:, :, ys, xs] for ys, xs in offsets]), axis=0)
    taken = np.zeros(best.shape, bool)
    gp = np.zeros((b, k, c, hp, wp))
    for ys, xs in offsets:
        route = (xp[:, :, ys, xs] == best) & ~taken
        taken |= route
        gp[:, :, :, ys, xs] += g_out * route[:, None]
    return gp[:, :, :, top : top + h, left : left + w]


def _average_pool_back(nd: Node, x_shape: tuple[int, ...], g_out: F64,
                       out_shape: tuple[int, ...]) -> F64:  # fmt: skip
    _, h, w = x_shape
    offsets, (hp, wp), (top, left) = _pool_offsets(nd, x_shape, out_shape)
    inside = np.zeros((hp, wp))
    inside[top : top + h, left : left + w] = 1.0
    count = sum(inside[ys, xs] for ys, xs in offsets)
    share = g_out / np.maximum(count, 1.0)
    gp = np.zeros((*g_out.shape[:3], hp, wp))
    for ys, xs in offsets:
        gp[..., ys, xs] += share
    return gp[..., top : top + h, left : left + w]


def _reshape_back(g: Graph, nd: Node, g_out: F64) -> F64:
    """The inverse of ``graph_ref.reshape`` on a gradient (B, K, *out) -> (B, K, *in)."""
    b, k = g_out.shape[:2]
    in_shape = tuple(g.tensors[nd.inputs[0]].shape)
    flat = g_out.reshape(b * k, *g_out.shape[2:])
    if nd.attr("order", "chw") == "chw":
        return flat.reshape(b, k, *in_shape)
    if flat.ndim == 4:  # a 3-D target was written in H-W-C order
        flat = flat.transpose(0, 2, 3, 1)
    flat = flat.reshape(b * k, -1)
    if len(in_shape) == 3:  # and a feature map read in H-W-C order
        c, h, w = in_shape
        return flat.reshape(b, k, h, w, c).transpose(0, 1, 4, 2, 3)
    return flat.reshape(b, k, *in_shape)


def backward_node(g: Graph, nd: Node, values: dict[str, I8], g_out: F64) -> list[F64]:
    """The slopes with respect to each input of ``nd`` (B, K, *in) from those of its output."""
    b, k = g_out.shape[:2]
    y = values[nd.output]
    clamped_pool = nd.op == "MAX_POOL_2D" and nd.attr("activation", "none") != "none"
    if nd.op in REQUANTISING or clamped_pool:
        g_out = g_out * _active(g, nd, y)[:, None]
    s_out = _scale(g, nd.output)
    if nd.op in WEIGHTED:
        s_in = _scale(g, nd.inputs[0])
        m = s_in * channel_scales(nd) / s_out
        in_shape = tuple(g.tensors[nd.inputs[0]].shape)
        g_acc = g_out * m.reshape(1, 1, -1, *(1,) * (y.ndim - 2))
        if nd.op == "FULLY_CONNECTED":
            grad = g_acc @ nd.weight.astype(np.float64)
            return [grad.reshape(b, k, *in_shape)]
        back = _conv_back if nd.op == "CONV_2D" else _depthwise_back
        flat = back(g, nd, g_acc.reshape(b * k, *g_acc.shape[2:]), in_shape)
        return [flat.reshape(b, k, *in_shape)]
    if nd.op == "ADD":
        return [g_out * (_scale(g, t) / s_out) for t in nd.inputs]
    if nd.op == "MEAN":
        _, h, w = g.tensors[nd.inputs[0]].shape
        share = g_out * (_scale(g, nd.inputs[0]) / (s_out * h * w))
        return [np.broadcast_to(share[..., None, None], (*share.shape, h, w))]
    if nd.op == "MAX_POOL_2D":
        return [_max_pool_back(nd, values[nd.inputs[0]], g_out, y.shape[1:])]
    if nd.op == "AVERAGE_POOL_2D":
        in_shape = tuple(g.tensors[nd.inputs[0]].shape)
        return [_average_pool_back(nd, in_shape, g_out, y.shape[1:])]
    if nd.op == "CONCATENATION":
        out, start = [], 0
        for t in nd.inputs:
            size = g.tensors[t].shape[0]
            part = g_out[:, :, start : start + size]
            start += size
            if g.tensors[t].scale != g.tensors[nd.output].scale or (
                g.tensors[t].zero_point != g.tensors[nd.output].zero_point
            ):
                active = _active(g, nd, y)[:, None, start - size : start]
                part = part * active * (_scale(g, t) / s_out)
            out.append(part)
        return out
    if nd.op == "PAD":
        top, _, left, _ = nd.attr("padding")
        _, h, w = g.tensors[nd.inputs[0]].shape
        return [g_out[..., top : top + h, left : left + w]]
    return [_reshape_back(g, nd, g_out)]


def graph_logit_slopes(g: Graph, values: dict[str, I8], wanted: tuple[int, ...]) -> dict[int, F64]:
    """``d E_j / d out_n`` for the output of every node index in ``wanted``: {node: (B, K, n)}.

    ``values`` holds every golden tensor of the batch (``run_graph(keep=all)`` and the input)."""
    logits = values[g.output]
    b, n_classes = logits.shape
    seed = np.eye(n_classes) * _scale(g, g.output)
    grads: dict[str, F64] = {g.output: np.broadcast_to(seed, (b, n_classes, n_classes)).copy()}
    slopes: dict[int, F64] = {}
    first = min(wanted) if wanted else len(g.nodes)
    for i in range(len(g.nodes) - 1, first - 1, -1):
        nd = g.nodes[i]
        g_out = grads.pop(nd.output, None)
        if i in wanted:
            shape = g_out.shape if g_out is not None else (b, n_classes, -1)
            slopes[i] = (
                np.zeros((b, n_classes, int(np.prod(g.tensors[nd.output].shape))))
                if g_out is None
                else np.ascontiguousarray(g_out).reshape(*shape[:2], -1)
            )
        if g_out is None or i == first:
            continue
        for t, grad in zip(nd.inputs, backward_node(g, nd, values, g_out), strict=True):
            grads[t] = grad if t not in grads else grads[t] + grad
    return slopes
