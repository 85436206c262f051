"""Write an int8 network or graph as a ``.tflite`` flatbuffer that TFLite Micro and LiteRT run.

    blob = network_to_tflite(load_network("lenet5"))

The file follows TFLite's int8 scheme: NHWC activations, int8 per tensor with the tensor's
scale and zero point, int8 weights symmetric per output channel (``quantized_dimension`` 0,
3 for DEPTHWISE_CONV_2D), int32 biases at ``s_in * s_w``, fused NONE / RELU / RELU6.
Scales are written as float32, which is what TFLite derives
its multipliers from; a network whose multipliers follow that rule (``with_tflite_multipliers``,
every zoo network) gives logits bit-identical to accelsim's in TFLite Micro.

accelsim's feature maps are C-H-W; a C-H-W-order RESHAPE (a chain's Flatten) becomes a RESHAPE
of the NHWC tensor (H-W-C order) and the FULLY_CONNECTED layers reading it get their weight
columns permuted to match. Convolution padding is written as SAME where TFLite's SAME equals
it and as an explicit PAD otherwise. A CONCATENATION input whose quantisation differs from
the output's gets a QUANTIZE (int8 -> int8) first, as TFLite's int8 concatenation requires.

Needs the ``tflite`` (schema bindings) and ``flatbuffers`` packages: ``pip install
accelsim[tflite]``, imported when a file is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import files
from accelsim.functional.graph import Graph, GraphError, Node, graph_from_network
from accelsim.functional.layers import Shape
from accelsim.functional.network import Network
from accelsim.interop.flatbuffer import (
    FbGraph,
    FbOp,
    FbTensor,
    MissingExtraError,
    options,
    schema,
    serialize,
)


def _nhwc(shape: Shape) -> tuple[int, ...]:
    if len(shape) == 3:
        c, h, w = shape
        return (1, h, w, c)
    return (1, *shape)


def _same_padding(in_size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite's SAME padding (before, after) along one axis."""
    out = -(-in_size // stride)
    total = max((out - 1) * stride + kernel - in_size, 0)
    return total // 2, total - total // 2


def _padding_mode(
    in_shape: Shape, kernel: Sequence[int], stride: int, padding: Sequence[int]
) -> str:
    """``valid``, ``same`` (TFLite's SAME gives exactly ``padding``) or ``explicit``."""
    if not any(padding):
        return "valid"
    same = _same_padding(in_shape[1], kernel[0], stride) + _same_padding(
        in_shape[2], kernel[1], stride
    )
    return "same" if tuple(padding) == same else "explicit"


class _Writer:
    """Lowers a ``Graph`` to flatbuffer tensors and operators."""

    def __init__(self, graph: Graph) -> None:
        _, self.tfl = schema()
        self.graph = graph
        self.out = FbGraph()
        self.index: dict[str, int] = {}
        self.hwc_of: dict[str, Shape] = {}  # C-H-W-order RESHAPEs lowered as plain RESHAPEs

    def activation(self, node: Node) -> int:
        act = self.tfl.ActivationFunctionType
        return {"none": act.NONE, "relu": act.RELU, "relu6": act.RELU6}[
            node.attr("activation", "none")
        ]

    def tensor(self, name: str) -> int:
        if name not in self.index:
            t = self.graph.tensors[name]
            self.index[name] = self.out.tensor(
                FbTensor(name, _nhwc(t.shape), self.tfl.TensorType.INT8, [t.scale], [t.zero_point])
            )
        return self.index[name]

    def const(
        self, name: str, data: np.ndarray, dtype: int, scales=(), zps=(), axis: int = 0
    ) -> int:
        return self.out.tensor(
            FbTensor(
                name,
                tuple(data.shape),
                dtype,
                list(scales),
                list(zps),
                axis,
                np.ascontiguousarray(data),
            )
        )

    def op(
        self,
        code: int,
        version: int,
        ins: list[int],
        outs: list[int],
        opt_type: int = 0,
        opts: Any = None,
    ) -> None:
        self.out.ops.append(FbOp(code, version, ins, outs, opt_type, opts))

    def weights(self, node: Node, data: np.ndarray, axis: int) -> tuple[int, int]:
        tt = self.tfl.TensorType
        n = np.size(node.weight_scale)  # per channel, or 1: per tensor (axis 0)
        axis = axis if n > 1 else 0
        w = self.const(f"{node.name}/weight", data, tt.INT8, node.weight_scale, [0] * n, axis)
        s_in = float(np.float32(self.graph.tensors[node.inputs[0]].scale))
        bias_scales = [s_in * float(np.float32(ws)) for ws in node.weight_scale]
        b = self.const(
            f"{node.name}/bias", node.bias.astype(np.int32), tt.INT32, bias_scales, [0] * n
        )
        return w, b

    def padded_input(self, node: Node, kernel: Sequence[int]) -> tuple[int, int]:
        """The input tensor index and the TFLite padding mode, with an explicit PAD if needed."""
        src = self.graph.tensors[node.inputs[0]]
        pad = tuple(node.attr("padding", (0, 0, 0, 0)))
        mode = _padding_mode(src.shape, kernel, node.attr("stride", 1), pad)
        x = self.tensor(node.inputs[0])
        if mode != "explicit":
            return x, self.tfl.Padding.SAME if mode == "same" else self.tfl.Padding.VALID
        if node.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            raise GraphError(
                self.graph.source,
                f"node {node.name!r}: a .tflite pool has SAME or VALID padding only, not {pad}",
            )
        t, b_, left, r = pad
        c, h, w = src.shape
        paddings = np.array([[0, 0], [t, b_], [left, r], [0, 0]], np.int32)
        pt = self.const(f"{node.name}/paddings", paddings, self.tfl.TensorType.INT32)
        padded = self.out.tensor(
            FbTensor(
                f"{node.name}/padded",
                (1, h + t + b_, w + left + r, c),
                self.tfl.TensorType.INT8,
                [src.scale],
                [src.zero_point],
            )
        )
        self.op(self.tfl.BuiltinOperator.PAD, 2, [x, pt], [padded])
        return padded, self.tfl.Padding.VALID

    def node(self, node: Node) -> None:
        ops, opts, g = self.tfl.BuiltinOperator, self.tfl.BuiltinOptions, self.graph
        out = self.tensor(node.output)
        stride = node.attr("stride", 1)
        if node.op == "CONV_2D":
            x, padding = self.padded_input(node, node.weight.shape[2:])
            w, b = self.weights(node, node.weight.transpose(0, 2, 3, 1), 0)
            self.op(
                ops.CONV_2D,
                3,
                [x, w, b],
                [out],
                opts.Conv2DOptions,
                options(
                    "Conv2DOptions",
                    Padding=padding,
                    StrideW=stride,
                    StrideH=stride,
                    DilationWFactor=1,
                    DilationHFactor=1,
                    FusedActivationFunction=self.activation(node),
                ),
            )
        elif node.op == "DEPTHWISE_CONV_2D":
            x, padding = self.padded_input(node, node.weight.shape[1:])
            w, b = self.weights(node, node.weight.transpose(1, 2, 0)[None], 3)
            self.op(
                ops.DEPTHWISE_CONV_2D,
                3,
                [x, w, b],
                [out],
                opts.DepthwiseConv2DOptions,
                options(
                    "DepthwiseConv2DOptions",
                    Padding=padding,
                    StrideW=stride,
                    StrideH=stride,
                    DepthMultiplier=node.attr("depth_multiplier", 1),
                    DilationWFactor=1,
                    DilationHFactor=1,
                    FusedActivationFunction=self.activation(node),
                ),
            )
        elif node.op == "FULLY_CONNECTED":
            wmat = node.weight
            if node.inputs[0] in self.hwc_of:  # permute columns from C-H-W to H-W-C order
                c, h, w_ = self.hwc_of[node.inputs[0]]
                wmat = wmat.reshape(-1, c, h, w_).transpose(0, 2, 3, 1).reshape(wmat.shape[0], -1)
            w, b = self.weights(node, wmat, 0)
            self.op(
                ops.FULLY_CONNECTED,
                4,
                [self.tensor(node.inputs[0]), w, b],
                [out],
                opts.FullyConnectedOptions,
                options(
                    "FullyConnectedOptions",
                    FusedActivationFunction=self.activation(node),
                    KeepNumDims=False,
                ),
            )
        elif node.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            size = tuple(node.attr("size"))
            x, padding = self.padded_input(node, size)
            self.op(
                getattr(ops, node.op),
                2,
                [x],
                [out],
                opts.Pool2DOptions,
                options(
                    "Pool2DOptions",
                    Padding=padding,
                    StrideW=stride,
                    StrideH=stride,
                    FilterWidth=size[1],
                    FilterHeight=size[0],
                    FusedActivationFunction=self.activation(node),
                ),
            )
        elif node.op == "MEAN":
            axis = self.const(
                f"{node.name}/axis", np.array([1, 2], np.int32), self.tfl.TensorType.INT32
            )
            self.op(
                ops.MEAN,
                2,
                [self.tensor(node.inputs[0]), axis],
                [out],
                opts.ReducerOptions,
                options("ReducerOptions", KeepDims=False),
            )
        elif node.op == "ADD":
            ins = [self.tensor(t) for t in node.inputs]
            self.op(
                ops.ADD,
                2,
                ins,
                [out],
                opts.AddOptions,
                options("AddOptions", FusedActivationFunction=self.activation(node)),
            )
        elif node.op == "CONCATENATION":
            target = g.tensors[node.output]
            ins = []
            for t in node.inputs:
                info = g.tensors[t]
                x = self.tensor(t)
                if (float(np.float32(info.scale)), info.zero_point) != (
                    float(np.float32(target.scale)),
                    target.zero_point,
                ):
                    q = self.out.tensor(
                        FbTensor(
                            f"{node.name}/{t}/requantized",
                            _nhwc(info.shape),
                            self.tfl.TensorType.INT8,
                            [target.scale],
                            [target.zero_point],
                        )
                    )
                    self.op(ops.QUANTIZE, 2, [x], [q])
                    x = q
                ins.append(x)
            axis = 3 if len(target.shape) == 3 else 1
            self.op(
                ops.CONCATENATION,
                3,
                ins,
                [out],
                opts.ConcatenationOptions,
                options("ConcatenationOptions", Axis=axis, FusedActivationFunction=0),
            )
        elif node.op == "PAD":
            t, b_, left, r = node.attr("padding")
            paddings = np.array([[0, 0], [t, b_], [left, r], [0, 0]], np.int32)
            pt = self.const(f"{node.name}/paddings", paddings, self.tfl.TensorType.INT32)
            self.op(ops.PAD, 2, [self.tensor(node.inputs[0]), pt], [out])
        else:  # RESHAPE
            self.reshape(node, out)

    def reshape(self, node: Node, out: int) -> None:
        ops, opts, g = self.tfl.BuiltinOperator, self.tfl.BuiltinOptions, self.graph
        src = g.tensors[node.inputs[0]].shape
        target = tuple(node.attr("shape"))
        x = self.tensor(node.inputs[0])
        if node.attr("order", "chw") == "chw" and len(src) == 3 and src[1:] != (1, 1):
            consumers = g.consumers(node.output)
            if (
                len(target) == 1
                and consumers
                and all(c.op == "FULLY_CONNECTED" for c in consumers)
                and node.output != g.output
            ):
                self.hwc_of[node.output] = src
            else:
                raise GraphError(
                    g.source,
                    f"node {node.name!r}: a C-H-W-order RESHAPE of {src} exports only when "
                    "fully connected layers alone read it",
                )
        new_shape = [-1, *_nhwc(target)[1:]]  # -1: any batch size
        shape = self.const(
            f"{node.name}/shape", np.array(new_shape, np.int32), self.tfl.TensorType.INT32
        )
        self.op(
            ops.RESHAPE,
            1,
            [x, shape],
            [out],
            opts.ReshapeOptions,
            options("ReshapeOptions", NewShape=new_shape),
        )


def graph_to_tflite(graph: Graph) -> bytes:
    """The ``.tflite`` flatbuffer of a graph network (its ops in TFLite's int8 layout)."""
    writer = _Writer(graph)
    graph_input = writer.tensor(graph.input)
    for node in graph.nodes:
        writer.node(node)
    return serialize(
        writer.out, [graph_input], [writer.tensor(graph.output)], f"accelsim {graph.name}"
    )


def network_to_tflite(net: Network | Graph) -> bytes:
    """The ``.tflite`` flatbuffer of a chain network (or a graph)."""
    return graph_to_tflite(net if isinstance(net, Graph) else graph_from_network(net))


def export_tflite(net: Network | Graph, path: Path | str) -> Path:
    """Write ``network_to_tflite(net)`` to ``path`` (atomically); returns the path."""
    path = Path(path)
    files.write_bytes(path, network_to_tflite(net))
    return path


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """accelsim's int8 network input (N, C, H, W) in the ``.tflite`` layout (N, H, W, C);
    vectors (N, F) unchanged."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x)


__all__ = [
    "MissingExtraError",
    "export_tflite",
    "graph_to_tflite",
    "network_to_tflite",
    "to_nhwc",
]
