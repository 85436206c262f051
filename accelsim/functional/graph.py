"""Graph networks: a directed acyclic graph of TFLite int8 ops over named int8 tensors.

A chain ``Network`` is the special case (``graph_from_network``). Every tensor has a shape
(C, H, W) or (F,) (batch axis excluded), a float32 scale and an int8 zero point: TFLite's
asymmetric per-tensor activations. Weights are int8 symmetric, per output channel (an array
of scales) or per tensor (one scale repeated); biases int32 at ``s_in * s_w``. The ops and
their arithmetic are ``graph_ref``'s (TFLite Micro's reference kernels); what TFLite derives in
an op's Prepare (multipliers, activation clamps) is derived here once, when the graph is built,
and held in ``Graph.params``.

Construction validates everything and names the source, node and tensor in one line:
an unknown op, a tensor nobody produces or two nodes produce, a cycle, shapes that do not
follow from the inputs, a zero point outside int8, a bad scale, weights of the wrong shape or
dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.errors import ShapeError
from accelsim.functional import graph_check, graph_kernels
from accelsim.functional import graph_ref as ref
from accelsim.functional.graph_check import OPS, GraphError
from accelsim.functional.layers import Conv2D, Dense, Flatten, MaxPool2D, Shape
from accelsim.functional.network import DEFAULT_BATCH, Accuracy, Network
from accelsim.functional.reference import float32

I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class TensorInfo:
    """One int8 activation tensor: shape without the batch axis, scale, zero point."""

    name: str
    shape: Shape
    scale: float
    zero_point: int


@dataclass(frozen=True, eq=False)
class Node:
    """One op. ``attrs`` by op: CONV_2D / DEPTHWISE_CONV_2D ``stride``, ``padding`` (top,
    bottom, left, right), ``activation`` (none / relu / relu6), DEPTHWISE ``depth_multiplier``;
    FULLY_CONNECTED ``activation``; pools ``size`` (kh, kw), ``stride``, ``padding``,
    ``activation``; MEAN none (over H and W); ADD ``activation``; CONCATENATION ``axis`` (0:
    channels of a feature map or features of a vector); PAD ``padding``; RESHAPE ``shape`` and
    ``order`` (chw / hwc: see ``graph_ref.reshape``).

    Weighted ops hold ``weight`` (CONV (O, C, KH, KW), DEPTHWISE (C * dm, KH, KW), FC (O, F);
    int8 in [-127, 127]), ``bias`` (int32, O) and ``weight_scale`` (float64 holding float32
    values: O per channel, or 1 per tensor).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    weight: npt.NDArray[np.int8] | None = None
    bias: npt.NDArray[np.int32] | None = None
    weight_scale: npt.NDArray[np.float64] | None = None

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    @property
    def macs(self) -> int:
        return 0 if self.weight is None else int(self.weight[0].size)


@dataclass(frozen=True, eq=False)
class Graph:
    """A validated graph network; ``nodes`` in a topological order (the order given, when it
    is one). ``params[node]`` holds what TFLite's Prepare derives: ``multiplier`` / ``shift``
    (per channel), ``act_range``."""

    name: str
    dataset: str
    input: str
    output: str
    tensors: Mapping[str, TensorInfo]
    nodes: tuple[Node, ...]
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    requantization: str = "tflm"
    source: str = "<graph>"
    accuracy: Accuracy | None = None
    params: Mapping[str, Mapping[str, Any]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", graph_check.checked_nodes(self))
        object.__setattr__(
            self, "params", {n.name: graph_check.prepare(self, n) for n in self.nodes}
        )

    def consumers(self, tensor: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if tensor in n.inputs)

    @property
    def input_info(self) -> TensorInfo:
        return self.tensors[self.input]

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image of the weighted ops."""
        return sum(n.macs * int(np.prod(self.tensors[n.output].shape)) for n in self.nodes)

    @property
    def n_parameters(self) -> int:
        return sum(int(n.weight.size + n.bias.size) for n in self.nodes if n.weight is not None)

    @property
    def neuron_layers(self) -> tuple[int, ...]:
        """Indices (in ``nodes``) of the nodes whose outputs are neurons: the weighted nodes
        except the one producing the graph output (the classifier)."""
        return tuple(
            i
            for i, n in enumerate(self.nodes)
            if n.op in graph_check.WEIGHTED and n.output != self.output
        )

    @property
    def n_neurons(self) -> int:
        return sum(
            int(np.prod(self.tensors[self.nodes[i].output].shape)) for i in self.neuron_layers
        )


def _run_node(g: Graph, node: Node, xs: Sequence[I8], p: Mapping[str, Any] | None = None) -> I8:
    p = g.params[node.name] if p is None else p
    ins = [g.tensors[t] for t in node.inputs]
    out = g.tensors[node.output]
    pad = tuple(node.attr("padding", (0, 0, 0, 0)))
    if node.op == "CONV_2D":
        return ref.conv2d(
            xs[0],
            node.weight,
            node.bias,
            p["multiplier"],
            p["shift"],
            stride=node.attr("stride", 1),
            padding=pad,
            input_zero_point=ins[0].zero_point,
            output_zero_point=out.zero_point,
            act_range=p["act_range"],
        )
    if node.op == "DEPTHWISE_CONV_2D":
        return ref.depthwise_conv2d(
            xs[0],
            node.weight,
            node.bias,
            p["multiplier"],
            p["shift"],
            stride=node.attr("stride", 1),
            padding=pad,
            depth_multiplier=node.attr("depth_multiplier", 1),
            input_zero_point=ins[0].zero_point,
            output_zero_point=out.zero_point,
            act_range=p["act_range"],
        )
    if node.op == "FULLY_CONNECTED":
        return ref.fully_connected(
            xs[0],
            node.weight,
            node.bias,
            p["multiplier"],
            p["shift"],
            input_zero_point=ins[0].zero_point,
            output_zero_point=out.zero_point,
            act_range=p["act_range"],
        )
    if node.op == "MAX_POOL_2D":
        return ref.max_pool2d(
            xs[0],
            size=tuple(node.attr("size")),
            stride=node.attr("stride", 1),
            padding=pad,
            act_range=p["act_range"],
        )
    if node.op == "AVERAGE_POOL_2D":
        return ref.average_pool2d(
            xs[0],
            size=tuple(node.attr("size")),
            stride=node.attr("stride", 1),
            padding=pad,
            act_range=p["act_range"],
        )
    if node.op == "MEAN":
        mean = ref.mean_hw_xnnpack if g.requantization == "xnnpack" else ref.mean_hw
        return mean(
            xs[0],
            input_scale=ins[0].scale,
            input_zero_point=ins[0].zero_point,
            output_scale=out.scale,
            output_zero_point=out.zero_point,
        )
    if node.op == "ADD":
        add = ref.add_xnnpack if g.requantization == "xnnpack" else ref.add
        return add(
            xs[0],
            xs[1],
            scales=(ins[0].scale, ins[1].scale, out.scale),
            zero_points=(ins[0].zero_point, ins[1].zero_point, out.zero_point),
            act_range=p["act_range"],
        )
    if node.op == "CONCATENATION":
        convert = ref.requantize_xnnpack if g.requantization == "xnnpack" else ref.requantize
        parts = [
            convert(
                x,
                input_scale=t.scale,
                input_zero_point=t.zero_point,
                output_scale=out.scale,
                output_zero_point=out.zero_point,
            )
            for x, t in zip(xs, ins, strict=True)
        ]
        return np.concatenate(parts, axis=1)
    if node.op == "PAD":
        return ref.pad(xs[0], padding=pad, value=out.zero_point)
    return ref.reshape(xs[0], tuple(node.attr("shape")), order=node.attr("order", "chw"))


def add_node_table(g: Graph, node: Node, p: Mapping[str, Any] | None = None) -> I8:
    """ADD ``node``'s ``graph_kernels.add_table``: its output for every pair of input codes,
    in the graph's requantisation."""
    p = g.params[node.name] if p is None else p
    a, b = (g.tensors[t] for t in node.inputs)
    out = g.tensors[node.output]
    return graph_kernels.add_table(
        g.requantization, (float(a.scale), float(b.scale), float(out.scale)),
        (int(a.zero_point), int(b.zero_point), int(out.zero_point)),
        (int(p["act_range"][0]), int(p["act_range"][1])),
    )  # fmt: skip


def _run_fast(g: Graph, node: Node, xs: Sequence[I8], p: Mapping[str, Any] | None = None) -> I8:
    """``_run_node`` on the fast kernels where the op has one (bit-exact with the reference)."""
    p = g.params[node.name] if p is None else p
    zp_in = g.tensors[node.inputs[0]].zero_point
    zp_out = g.tensors[node.output].zero_point
    pad = tuple(node.attr("padding", (0, 0, 0, 0)))
    stride = node.attr("stride", 1)
    requant = (p.get("multiplier"), p.get("shift"))
    if node.op == "CONV_2D":
        return graph_kernels.conv2d(
            xs[0], node.weight, p["weight_matrix"], p["offset_bias"], *requant, stride=stride,
            padding=pad, input_zero_point=zp_in, output_zero_point=zp_out,
            act_range=p["act_range"],
        )  # fmt: skip
    if node.op == "FULLY_CONNECTED":
        return graph_kernels.fully_connected(
            xs[0], p["weight_matrix"], p["offset_bias"], *requant, output_zero_point=zp_out,
            act_range=p["act_range"],
        )  # fmt: skip
    if node.op == "DEPTHWISE_CONV_2D":
        return graph_kernels.depthwise_conv2d(
            xs[0], node.weight, node.bias, *requant, stride=stride, padding=pad,
            depth_multiplier=node.attr("depth_multiplier", 1), input_zero_point=zp_in,
            output_zero_point=zp_out, act_range=p["act_range"],
        )  # fmt: skip
    if node.op == "ADD":  # either requantisation: a table of the specification's results
        return graph_kernels.lookup_add(xs[0], xs[1], add_node_table(g, node, p))
    if node.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        pool = (
            graph_kernels.max_pool2d if node.op == "MAX_POOL_2D" else graph_kernels.average_pool2d
        )
        return pool(
            xs[0], size=tuple(node.attr("size")), stride=stride, padding=pad,
            act_range=p["act_range"],
        )  # fmt: skip
    return _run_node(g, node, xs, p)


def run_node(
    g: Graph,
    node: Node,
    inputs: Sequence[I8],
    *,
    reference: bool = False,
    params: Mapping[str, Any] | None = None,
) -> I8:
    """One node of ``g`` on its input tensors (each (N, ...)): its output tensor. ``params``
    replaces what ``g.params`` holds for the node (a split's halves run with a halved
    multiplier)."""
    return (_run_node if reference else _run_fast)(g, node, inputs, params)


def run_graph(
    g: Graph,
    x: I8,
    *,
    keep: Callable[[str], bool] | None = None,
    reference: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> dict[str, I8]:
    """Run the graph on int8 input ``x`` (N, *input shape); returns the output tensor and every
    tensor ``keep(name)`` selects (default: only the output), batch by batch. Tensors are freed
    after their last consumer. ``reference=True`` runs the numpy specification instead of the
    fast kernels (the two are equal bit for bit)."""
    if x.dtype != np.int8 or tuple(x.shape[1:]) != tuple(g.input_info.shape):
        raise ShapeError(
            f"{g.name}: expected int8 input (N, {', '.join(map(str, g.input_info.shape))}), "
            f"got {x.dtype} {x.shape}"
        )
    last_use: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        for t in node.inputs:
            last_use[t] = i
    run = _run_node if reference else _run_fast
    parts: dict[str, list[I8]] = {}
    for start in range(0, max(x.shape[0], 1), batch_size):
        values: dict[str, I8] = {g.input: x[start : start + batch_size]}
        for i, node in enumerate(g.nodes):
            values[node.output] = run(g, node, [values[t] for t in node.inputs])
            if keep is not None and keep(node.output):
                parts.setdefault(node.output, []).append(values[node.output])
            for t in node.inputs:
                if last_use[t] == i and t != g.output:
                    values.pop(t, None)
        if keep is None or not keep(g.output):
            parts.setdefault(g.output, []).append(values[g.output])
    return {name: np.concatenate(p) for name, p in parts.items()}


def graph_forward(g: Graph, x: I8, *, reference: bool = False) -> I8:
    """The graph output (the logits) for int8 input ``x``."""
    return run_graph(g, x, reference=reference)[g.output]


def graph_from_network(net: Network, *, requantization: str = "tflm") -> Graph:
    """The chain ``net`` as a graph: one node per layer, tensors named after the layers (the
    input ``input``), zero points 0, Flatten a C-H-W-order RESHAPE."""
    tensors = {"input": TensorInfo("input", tuple(net.input_shape), float32(net.input_scale), 0)}
    nodes: list[Node] = []
    current, scale = "input", float32(net.input_scale)
    for layer in net.layers:
        act = "relu" if getattr(layer, "relu", False) else "none"
        if isinstance(layer, Conv2D):
            p = layer.padding
            node = Node(
                layer.name,
                "CONV_2D",
                (current,),
                layer.name,
                {"stride": layer.stride, "padding": (p, p, p, p), "activation": act},
                layer.weight,
                layer.bias,
                layer.weight_scale,
            )
            scale = float32(layer.output_scale)
        elif isinstance(layer, Dense):
            node = Node(
                layer.name,
                "FULLY_CONNECTED",
                (current,),
                layer.name,
                {"activation": act},
                layer.weight,
                layer.bias,
                layer.weight_scale,
            )
            scale = float32(layer.output_scale)
        elif isinstance(layer, MaxPool2D):
            node = Node(
                layer.name,
                "MAX_POOL_2D",
                (current,),
                layer.name,
                {"size": (layer.size, layer.size), "stride": layer.stride, "padding": (0, 0, 0, 0)},
            )
        elif isinstance(layer, Flatten):
            node = Node(
                layer.name,
                "RESHAPE",
                (current,),
                layer.name,
                {"shape": layer.out_shape, "order": "chw"},
            )
        else:  # pragma: no cover - Layer is a closed union
            raise TypeError(f"unknown layer type {type(layer).__name__}")
        tensors[layer.name] = TensorInfo(layer.name, tuple(layer.out_shape), scale, 0)
        nodes.append(node)
        current = layer.name
    return Graph(
        net.name,
        net.dataset,
        "input",
        current,
        tensors,
        tuple(nodes),
        tuple(net.mean),
        tuple(net.std),
        requantization=requantization,
        source=f"network {net.name}",
        accuracy=net.accuracy,
    )


def quantize_graph_images(g: Graph, images: npt.NDArray[np.uint8]) -> I8:
    """uint8 pixels (N, C, H, W) -> the graph's int8 input: ``clamp(round(((p / 255 - mean[c])
    / std[c]) / scale) + zero_point)``, through a (C, 256) lookup table."""
    info = g.input_info
    if images.dtype != np.uint8 or images.shape[1:] != tuple(info.shape):
        raise ShapeError(
            f"{g.name}: expected uint8 images of shape (N, {', '.join(map(str, info.shape))}), "
            f"got {images.dtype} {images.shape}"
        )
    pixels = np.arange(256, dtype=np.float64) / 255.0
    real = (pixels[None, :] - np.asarray(g.mean)[:, None]) / np.asarray(g.std)[:, None]
    lut = np.clip(np.round(real / info.scale) + info.zero_point, -128, 127).astype(np.int8)
    return lut[np.arange(images.shape[1]).reshape(1, -1, 1, 1), images]


__all__ = [
    "OPS",
    "Graph",
    "GraphError",
    "Node",
    "TensorInfo",
    "graph_forward",
    "graph_from_network",
    "quantize_graph_images",
    "run_graph",
    "run_node",
]
