"""Validation of graph networks and what TFLite derives in each op's Prepare.

``checked_nodes`` returns the nodes in a topological order or raises ``GraphError`` naming the
source, the node and the tensor; ``prepare`` derives a node's multipliers and activation clamp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.functional import graph_kernels, kernels
from accelsim.functional import graph_ref as ref
from accelsim.functional.layers import Shape
from accelsim.functional.reference import float32, quantize_multiplier, tflite_multiplier

if TYPE_CHECKING:
    from accelsim.functional.graph import Graph, Node

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
OPS = (
    *WEIGHTED,
    "MAX_POOL_2D",
    "AVERAGE_POOL_2D",
    "MEAN",
    "ADD",
    "CONCATENATION",
    "PAD",
    "RESHAPE",
)
# Ops whose output must carry its input's quantisation (TFLite's kernels assume it).
SAME_QUANT = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "RESHAPE")
REQUANTIZATIONS = ("tflm", "xnnpack")


class GraphError(ModelFormatError):
    """A graph network is inconsistent: names the source, the node and the tensor."""


def _fail(g: Graph, node: str, tensor: str | None, problem: str) -> GraphError:
    where = f"node {node!r}" + (f", tensor {tensor!r}" if tensor else "")
    return GraphError(g.source, f"{where}: {problem}")


def checked_nodes(g: Graph) -> tuple[Node, ...]:
    for name, t in g.tensors.items():
        if name != t.name:
            raise _fail(g, "-", name, f"tensor listed as {name!r} is named {t.name!r}")
        if not (isinstance(t.zero_point, int | np.integer) and -128 <= t.zero_point <= 127):
            raise _fail(
                g, "-", name, f"zero point must be an int8 (-128..127), got {t.zero_point!r}"
            )
        if not (math.isfinite(t.scale) and t.scale > 0):
            raise _fail(g, "-", name, f"scale must be positive and finite, got {t.scale!r}")
        if not t.shape or any(not isinstance(d, int | np.integer) or d < 1 for d in t.shape):
            raise _fail(g, "-", name, f"shape must be positive sizes, got {t.shape!r}")
    if g.requantization not in REQUANTIZATIONS:
        raise _fail(
            g,
            "-",
            None,
            f"requantization must be one of {REQUANTIZATIONS}, got {g.requantization!r}",
        )
    if g.input not in g.tensors:
        raise _fail(g, "-", g.input, "the graph input is not a declared tensor")
    produced: dict[str, str] = {}
    for node in g.nodes:
        if node.op not in OPS:
            raise _fail(g, node.name, None, f"unknown op {node.op!r}; supported: {', '.join(OPS)}")
        if node.output in produced or node.output == g.input:
            first = produced.get(node.output, "the graph input")
            raise _fail(g, node.name, node.output, f"tensor is produced twice (also by {first!r})")
        produced[node.output] = node.name
        for t in (*node.inputs, node.output):
            if t not in g.tensors:
                raise _fail(g, node.name, t, "tensor is not declared")
    for node in g.nodes:
        for t in node.inputs:
            if t != g.input and t not in produced:
                raise _fail(g, node.name, t, "no node produces this input (dangling tensor)")
    if g.output not in produced:
        raise _fail(g, "-", g.output, "no node produces the graph output")
    order = _topological(g, produced)
    for node in order:
        _check_node(g, node)
    return order


def _topological(g: Graph, produced: Mapping[str, str]) -> tuple[Node, ...]:
    """Kahn's algorithm, stable in the given order; a cycle names one of its nodes."""
    ready = {g.input}
    done: list[Node] = []
    pending = list(g.nodes)
    while pending:
        for i, node in enumerate(pending):
            if all(t in ready for t in node.inputs):
                done.append(node)
                ready.add(node.output)
                del pending[i]
                break
        else:
            raise _fail(g, pending[0].name, None, "the graph has a cycle through this node")
    return tuple(done)


def _conv_out(
    h: int, w: int, k: tuple[int, int], stride: int, padding: Sequence[int]
) -> tuple[int, int]:
    t, b, left, r = padding
    return (h + t + b - k[0]) // stride + 1, (w + left + r - k[1]) // stride + 1


def _expected_shape(g: Graph, node: Node) -> Shape:
    ins = [g.tensors[t].shape for t in node.inputs]
    need = {"ADD": 2, "CONCATENATION": None}.get(node.op, 1)
    if need is not None and len(ins) != need:
        raise _fail(g, node.name, None, f"{node.op} takes {need} input(s), got {len(ins)}")
    if node.op == "CONCATENATION" and len(ins) < 2:
        raise _fail(g, node.name, None, "CONCATENATION takes two or more inputs")
    first, name0 = ins[0], node.inputs[0]
    spatial = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "PAD")
    if node.op in spatial and len(first) != 3:
        raise _fail(g, node.name, name0, f"{node.op} needs a (C, H, W) input, got {first}")
    if node.op in WEIGHTED:
        _check_weights(g, node, first)
    if node.op == "CONV_2D":
        oh, ow = _conv_out(
            first[1],
            first[2],
            node.weight.shape[2:],
            node.attr("stride", 1),
            node.attr("padding", (0,) * 4),
        )
        return (node.weight.shape[0], oh, ow)
    if node.op == "DEPTHWISE_CONV_2D":
        oh, ow = _conv_out(
            first[1],
            first[2],
            node.weight.shape[1:],
            node.attr("stride", 1),
            node.attr("padding", (0,) * 4),
        )
        return (node.weight.shape[0], oh, ow)
    if node.op == "FULLY_CONNECTED":
        return (node.weight.shape[0],)
    if node.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        oh, ow = _conv_out(
            first[1],
            first[2],
            tuple(node.attr("size")),
            node.attr("stride", 1),
            node.attr("padding", (0,) * 4),
        )
        return (first[0], oh, ow)
    if node.op == "MEAN":
        return (first[0],)
    if node.op == "ADD":
        if ins[0] != ins[1]:
            raise _fail(
                g, node.name, node.inputs[1], f"ADD inputs differ in shape: {ins[0]} and {ins[1]}"
            )
        return first
    if node.op == "CONCATENATION":
        if node.attr("axis", 0) != 0:
            raise _fail(
                g,
                node.name,
                None,
                f"CONCATENATION axis must be 0 (channels), got {node.attr('axis')!r}",
            )
        for t, s in zip(node.inputs[1:], ins[1:], strict=True):
            if len(s) != len(first) or s[1:] != first[1:]:
                raise _fail(
                    g, node.name, t, f"shape {s} cannot be concatenated with {first} on axis 0"
                )
        return (sum(s[0] for s in ins), *first[1:])
    if node.op == "PAD":
        t, b, left, r = node.attr("padding")
        return (first[0], first[1] + t + b, first[2] + left + r)
    shape = tuple(node.attr("shape", ()))
    if int(np.prod(shape)) != int(np.prod(first)) or node.attr("order", "chw") not in (
        "chw",
        "hwc",
    ):
        raise _fail(
            g,
            node.name,
            node.output,
            f"RESHAPE of {first} to {shape} (order {node.attr('order')!r})",
        )
    return shape


def _check_weights(g: Graph, node: Node, in_shape: Shape) -> None:
    w, b, ws = node.weight, node.bias, node.weight_scale
    if w is None or b is None or ws is None:
        raise _fail(g, node.name, None, f"{node.op} needs weight, bias and weight_scale arrays")
    if w.dtype != np.int8 or b.dtype != np.int32:
        raise _fail(
            g, node.name, None, f"weight must be int8 and bias int32, got {w.dtype} and {b.dtype}"
        )
    want_ndim = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 2}[node.op]
    if w.ndim != want_ndim:
        raise _fail(
            g, node.name, None, f"{node.op} weight must have {want_ndim} axes, got shape {w.shape}"
        )
    o = w.shape[0]
    if b.shape != (o,) or np.shape(ws) not in ((o,), (1,)):
        raise _fail(
            g,
            node.name,
            None,
            f"bias must have {o} entries and weight_scale {o} (per channel) or 1 (per tensor), "
            f"got {b.shape} and {np.shape(ws)}",
        )
    if np.any(w == -128):
        raise _fail(
            g, node.name, None, "weights must be in [-127, 127] (symmetric int8), found -128"
        )
    if not np.all(np.isfinite(ws)) or np.any(np.asarray(ws) <= 0):
        raise _fail(g, node.name, None, "weight scales must be positive and finite")
    fan = {
        "CONV_2D": in_shape[0] if len(in_shape) == 3 else -1,
        "FULLY_CONNECTED": int(np.prod(in_shape)),
    }
    if node.op == "CONV_2D" and w.shape[1] != fan["CONV_2D"]:
        raise _fail(
            g,
            node.name,
            node.inputs[0],
            f"weight expects {w.shape[1]} input channels, the input has shape {in_shape}",
        )
    if node.op == "FULLY_CONNECTED" and (len(in_shape) != 1 or w.shape[1] != in_shape[0]):
        raise _fail(
            g,
            node.name,
            node.inputs[0],
            f"weight expects {w.shape[1]} input features, the input has shape {in_shape}",
        )
    if node.op == "DEPTHWISE_CONV_2D" and o != in_shape[0] * node.attr("depth_multiplier", 1):
        raise _fail(
            g,
            node.name,
            node.inputs[0],
            f"{o} output channels is not {in_shape[0]} x depth_multiplier "
            f"{node.attr('depth_multiplier', 1)}",
        )


def _check_node(g: Graph, node: Node) -> None:
    out = g.tensors[node.output]
    want = _expected_shape(g, node)
    if tuple(out.shape) != tuple(want):
        raise _fail(
            g, node.name, node.output, f"shape {out.shape} does not follow from the inputs ({want})"
        )
    act = node.attr("activation", "none")
    if act not in ref.ACTIVATIONS:
        raise _fail(g, node.name, None, f"activation must be one of {ref.ACTIVATIONS}, got {act!r}")
    if g.requantization == "xnnpack":
        _check_xnnpack(g, node)
    if node.op in SAME_QUANT:
        src = g.tensors[node.inputs[0]]
        if (float32(src.scale), src.zero_point) != (float32(out.scale), out.zero_point):
            raise _fail(
                g,
                node.name,
                node.output,
                f"{node.op} keeps its input's quantisation (scale {src.scale:.6g}, zero point "
                f"{src.zero_point}), got scale {out.scale:.6g}, zero point {out.zero_point}",
            )


def _check_xnnpack(g: Graph, node: Node) -> None:
    """XNNPACK's int8 convert (a requantising CONCATENATION's QUANTIZE) takes scale ratios in
    [2^-8, 2^7] only: refuse others."""
    out = g.tensors[node.output]
    if node.op == "CONCATENATION":
        lo, hi = ref.XNNPACK_CONVERT_RANGE
        for t in node.inputs:
            info = g.tensors[t]
            ratio = float(float32(info.scale) / float32(out.scale))
            same = (float32(info.scale), info.zero_point) == (float32(out.scale), out.zero_point)
            if not same and not lo <= ratio <= hi:
                raise _fail(
                    g,
                    node.name,
                    t,
                    f"requantization xnnpack: XNNPACK's int8 convert takes scale ratios in "
                    f"[2^-8, 2^7], got {ratio:.6g}; use tflm",
                )


def channel_scales(node: Node) -> np.ndarray:
    """The weight scale of every output channel: a per-tensor scale (one entry) repeated, as
    TFLite's Prepare does (the multipliers are then equal)."""
    return np.broadcast_to(np.asarray(node.weight_scale, np.float64), (node.weight.shape[0],))


def prepare(g: Graph, node: Node) -> dict[str, Any]:
    out = g.tensors[node.output]
    params: dict[str, Any] = {
        "act_range": ref.quantized_activation_range(
            node.attr("activation", "none"), out.scale, out.zero_point
        )
    }
    if node.op in WEIGHTED:
        s_in = g.tensors[node.inputs[0]].scale
        scales = channel_scales(node)
        try:
            pairs = [tflite_multiplier(s_in, float(ws), out.scale) for ws in scales]
        except ValueError as exc:
            raise _fail(g, node.name, node.output, str(exc)) from None
        params["multiplier"] = np.array([m for m, _ in pairs], np.int64)
        params["shift"] = np.array([s for _, s in pairs], np.int64)
        if g.requantization == "xnnpack":
            params["multiplier"] = ref.xnnpack_scale(s_in, scales, out.scale)
            params["shift"] = None
        if node.op != "DEPTHWISE_CONV_2D":  # what the fast GEMM path reads (graph_kernels)
            params["weight_matrix"] = kernels.gemm_weights(node.weight)
            params["offset_bias"] = graph_kernels.offset_bias(
                node.bias, node.weight, g.tensors[node.inputs[0]].zero_point
            )
    elif node.op == "ADD":
        a, b = (g.tensors[t] for t in node.inputs)
        try:
            ref.add_params(a.scale, b.scale, out.scale)
        except ValueError as exc:
            raise _fail(g, node.name, node.output, str(exc)) from None
        if 2 * max(float32(a.scale), float32(b.scale)) >= (1 << 20) * float32(out.scale):
            raise _fail(
                g,
                node.name,
                node.output,
                "ADD output scale is too small for TFLite's fixed point "
                "(2 max(s1, s2) / s_out must be below 2^20)",
            )
    elif node.op == "MEAN":
        try:
            quantize_multiplier(float32(g.tensors[node.inputs[0]].scale) / float32(out.scale))
        except ValueError as exc:
            raise _fail(g, node.name, node.output, str(exc)) from None
    return params
