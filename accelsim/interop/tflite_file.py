"""Write an int8 network as a ``.tflite`` flatbuffer that TFLite Micro and LiteRT run.

    blob = network_to_tflite(load_network("lenet5"))

The file follows TFLite's int8 scheme: NHWC activations, int8 per tensor (the network's scale,
zero point 0), int8 weights symmetric per output channel (``quantized_dimension`` 0), int32
biases at ``s_in * s_w``, fused RELU. Scales are written as float32, which is what TFLite derives
its multipliers from; a network whose multipliers follow that rule (``with_tflite_multipliers``,
every zoo network) gives logits bit-identical to accelsim's in TFLite Micro.

accelsim's feature maps are C-H-W; a Flatten becomes a RESHAPE of the NHWC tensor (H-W-C order),
so the first FULLY_CONNECTED after it gets its weight columns permuted to match. Convolution
padding is written as SAME where TFLite's SAME equals it and as an explicit PAD otherwise.

Needs the ``tflite`` (schema bindings) and ``flatbuffers`` packages: ``pip install
accelsim[tflite]``. The core never imports this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from accelsim import files
from accelsim.errors import AccelsimError
from accelsim.functional.layers import Conv2D, Dense, Flatten, MaxPool2D, Shape
from accelsim.functional.network import Network

SCHEMA_VERSION = 3


class MissingExtraError(AccelsimError):
    """An optional dependency of the requested feature is not installed."""


def _schema() -> tuple[Any, Any]:
    try:
        flatbuffers = importlib.import_module("flatbuffers")
        tflite = importlib.import_module("tflite")
    except ImportError as exc:
        raise MissingExtraError(
            f"writing .tflite files needs the tflite extra ({exc.name} is not installed): "
            "pip install 'accelsim[tflite]'"
        ) from None
    return flatbuffers, tflite


def _table(name: str) -> ModuleType:
    """The generated module ``tflite.<name>`` (the package exports the class of that name)."""
    return importlib.import_module(f"tflite.{name}")


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: int
    scales: Sequence[float] = ()
    zero_points: Sequence[int] = ()
    axis: int = 0
    data: np.ndarray | None = None


@dataclass
class _Op:
    code: int
    version: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    options: Any = None  # callable(builder) -> offset


@dataclass
class _Graph:
    """Tensors and operators in the order the flatbuffer lists them."""

    tensors: list[_Tensor] = field(default_factory=list)
    ops: list[_Op] = field(default_factory=list)

    def tensor(self, t: _Tensor) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1


def _vector(builder: Any, start: Any, values: Sequence[int], prepend: str) -> int:
    start(builder, len(values))
    for v in reversed(values):
        getattr(builder, prepend)(int(v))
    return builder.EndVector()


def _bytes_vector(builder: Any, payload: bytes) -> int:
    """A [ubyte] vector aligned to 16 bytes, so that int32 biases are readable in place."""
    builder.StartVector(1, len(payload), 16)
    builder.head -= len(payload)
    builder.Bytes[builder.head : builder.head + len(payload)] = payload
    builder.vectorNumElems = len(payload)
    return builder.EndVector()


def _serialize(graph: _Graph, inputs: list[int], outputs: list[int], description: str) -> bytes:
    flatbuffers, _ = _schema()
    b = flatbuffers.Builder(1024)
    ten, qp, buf = _table("Tensor"), _table("QuantizationParameters"), _table("Buffer")
    opm, occ, sgm, mdl = (
        _table("Operator"),
        _table("OperatorCode"),
        _table("SubGraph"),
        _table("Model"),
    )

    # Buffer 0 is the empty sentinel; every constant tensor gets its own buffer.
    buffers = [None] + [t.data for t in graph.tensors if t.data is not None]
    buffer_offsets = []
    for data in buffers:
        payload = None if data is None else _bytes_vector(b, np.ascontiguousarray(data).tobytes())
        buf.BufferStart(b)
        if payload is not None:
            buf.BufferAddData(b, payload)
        buffer_offsets.append(buf.BufferEnd(b))

    tensor_offsets, next_buffer = [], 1
    for t in graph.tensors:
        name = b.CreateString(t.name)
        shape = _vector(b, ten.TensorStartShapeVector, t.shape, "PrependInt32")
        quant = None
        if t.scales:
            scale = _vector_f32(b, qp.QuantizationParametersStartScaleVector, t.scales)
            zp = _vector(
                b, qp.QuantizationParametersStartZeroPointVector, t.zero_points, "PrependInt64"
            )
            qp.QuantizationParametersStart(b)
            qp.QuantizationParametersAddScale(b, scale)
            qp.QuantizationParametersAddZeroPoint(b, zp)
            qp.QuantizationParametersAddQuantizedDimension(b, t.axis)
            quant = qp.QuantizationParametersEnd(b)
        ten.TensorStart(b)
        ten.TensorAddShape(b, shape)
        ten.TensorAddType(b, t.dtype)
        ten.TensorAddName(b, name)
        if t.data is not None:
            ten.TensorAddBuffer(b, next_buffer)
            next_buffer += 1
        else:
            ten.TensorAddBuffer(b, 0)
        if quant is not None:
            ten.TensorAddQuantization(b, quant)
        tensor_offsets.append(ten.TensorEnd(b))

    codes = sorted({(op.code, op.version) for op in graph.ops})
    code_index = {c: i for i, c in enumerate(codes)}
    code_offsets = []
    for code, version in codes:
        occ.OperatorCodeStart(b)
        occ.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        occ.OperatorCodeAddBuiltinCode(b, code)
        occ.OperatorCodeAddVersion(b, version)
        code_offsets.append(occ.OperatorCodeEnd(b))

    op_offsets = []
    for op in graph.ops:
        ins = _vector(b, opm.OperatorStartInputsVector, op.inputs, "PrependInt32")
        outs = _vector(b, opm.OperatorStartOutputsVector, op.outputs, "PrependInt32")
        options = op.options(b) if op.options is not None else None
        opm.OperatorStart(b)
        opm.OperatorAddOpcodeIndex(b, code_index[(op.code, op.version)])
        opm.OperatorAddInputs(b, ins)
        opm.OperatorAddOutputs(b, outs)
        if options is not None:
            opm.OperatorAddBuiltinOptionsType(b, op.options_type)
            opm.OperatorAddBuiltinOptions(b, options)
        op_offsets.append(opm.OperatorEnd(b))

    sg_tensors = _offsets(b, sgm.SubGraphStartTensorsVector, tensor_offsets)
    sg_ops = _offsets(b, sgm.SubGraphStartOperatorsVector, op_offsets)
    sg_in = _vector(b, sgm.SubGraphStartInputsVector, inputs, "PrependInt32")
    sg_out = _vector(b, sgm.SubGraphStartOutputsVector, outputs, "PrependInt32")
    sg_name = b.CreateString("main")
    sgm.SubGraphStart(b)
    sgm.SubGraphAddTensors(b, sg_tensors)
    sgm.SubGraphAddOperators(b, sg_ops)
    sgm.SubGraphAddInputs(b, sg_in)
    sgm.SubGraphAddOutputs(b, sg_out)
    sgm.SubGraphAddName(b, sg_name)
    subgraph = sgm.SubGraphEnd(b)

    model_codes = _offsets(b, mdl.ModelStartOperatorCodesVector, code_offsets)
    model_subgraphs = _offsets(b, mdl.ModelStartSubgraphsVector, [subgraph])
    model_buffers = _offsets(b, mdl.ModelStartBuffersVector, buffer_offsets)
    desc = b.CreateString(description)
    mdl.ModelStart(b)
    mdl.ModelAddVersion(b, SCHEMA_VERSION)
    mdl.ModelAddOperatorCodes(b, model_codes)
    mdl.ModelAddSubgraphs(b, model_subgraphs)
    mdl.ModelAddBuffers(b, model_buffers)
    mdl.ModelAddDescription(b, desc)
    b.Finish(mdl.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _vector_f32(builder: Any, start: Any, values: Sequence[float]) -> int:
    start(builder, len(values))
    for v in reversed(values):
        builder.PrependFloat32(float(np.float32(v)))
    return builder.EndVector()


def _offsets(builder: Any, start: Any, offsets: Sequence[int]) -> int:
    start(builder, len(offsets))
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


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


def network_to_tflite(net: Network) -> bytes:
    """The ``.tflite`` flatbuffer of a chain network (Conv2D, Dense, MaxPool2D, Flatten)."""
    _, tflite = _schema()
    ops, opts, act = tflite.BuiltinOperator, tflite.BuiltinOptions, tflite.ActivationFunctionType
    tt = tflite.TensorType
    g = _Graph()
    scale = net.input_scale
    current = g.tensor(_Tensor("input", _nhwc(net.input_shape), tt.INT8, [scale], [0]))
    graph_input = current
    hwc_source: Shape | None = None  # the C-H-W shape a Flatten just turned into H-W-C order
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            o, c, kh, kw = layer.weight.shape
            p = layer.padding
            _, h, w = layer.in_shape
            same = _same_padding(h, kh, layer.stride) == (p, p) and _same_padding(
                w, kw, layer.stride
            ) == (p, p)
            x = current
            if p and not same:
                paddings = np.array([[0, 0], [p, p], [p, p], [0, 0]], np.int32)
                pt = g.tensor(_Tensor(f"{layer.name}/paddings", (4, 2), tt.INT32, data=paddings))
                c_, h_, w_ = layer.in_shape
                x = g.tensor(
                    _Tensor(
                        f"{layer.name}/padded",
                        (1, h_ + 2 * p, w_ + 2 * p, c_),
                        tt.INT8,
                        [scale],
                        [0],
                    )
                )
                g.ops.append(_Op(ops.PAD, 1, [current, pt], [x]))
            weight = g.tensor(
                _Tensor(
                    f"{layer.name}/weight",
                    (o, kh, kw, c),
                    tt.INT8,
                    list(layer.weight_scale),
                    [0] * o,
                    0,
                    np.ascontiguousarray(layer.weight.transpose(0, 2, 3, 1)),
                )
            )
            bias = _bias_tensor(g, layer, scale, tt)
            out = g.tensor(
                _Tensor(layer.name, _nhwc(layer.out_shape), tt.INT8, [layer.output_scale], [0])
            )
            padding = tflite.Padding.SAME if p and same else tflite.Padding.VALID
            g.ops.append(
                _Op(
                    ops.CONV_2D,
                    3,
                    [x, weight, bias],
                    [out],
                    opts.Conv2DOptions,
                    _conv_options(padding, layer.stride, act.RELU if layer.relu else act.NONE),
                )
            )
            current, scale, hwc_source = out, layer.output_scale, None
        elif isinstance(layer, Dense):
            wmat = layer.weight
            if hwc_source is not None:
                c, h, w = hwc_source
                wmat = wmat.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(wmat.shape[0], -1)
            o = wmat.shape[0]
            weight = g.tensor(
                _Tensor(
                    f"{layer.name}/weight",
                    tuple(wmat.shape),
                    tt.INT8,
                    list(layer.weight_scale),
                    [0] * o,
                    0,
                    np.ascontiguousarray(wmat),
                )
            )
            bias = _bias_tensor(g, layer, scale, tt)
            out = g.tensor(_Tensor(layer.name, (1, o), tt.INT8, [layer.output_scale], [0]))
            g.ops.append(
                _Op(
                    ops.FULLY_CONNECTED,
                    4,
                    [current, weight, bias],
                    [out],
                    opts.FullyConnectedOptions,
                    _fc_options(act.RELU if layer.relu else act.NONE),
                )
            )
            current, scale, hwc_source = out, layer.output_scale, None
        elif isinstance(layer, MaxPool2D):
            out = g.tensor(_Tensor(layer.name, _nhwc(layer.out_shape), tt.INT8, [scale], [0]))
            g.ops.append(
                _Op(
                    ops.MAX_POOL_2D,
                    2,
                    [current],
                    [out],
                    opts.Pool2DOptions,
                    _pool_options(layer.size, layer.stride),
                )
            )
            current = out
        elif isinstance(layer, Flatten):
            n = int(np.prod(layer.in_shape))
            shape = g.tensor(
                _Tensor(f"{layer.name}/shape", (2,), tt.INT32, data=np.array([1, n], np.int32))
            )
            out = g.tensor(_Tensor(layer.name, (1, n), tt.INT8, [scale], [0]))
            g.ops.append(
                _Op(
                    ops.RESHAPE,
                    1,
                    [current, shape],
                    [out],
                    opts.ReshapeOptions,
                    _reshape_options(n),
                )
            )
            current = out
            hwc_source = layer.in_shape if len(layer.in_shape) == 3 else None
        else:  # pragma: no cover - Layer is a closed union
            raise TypeError(f"cannot export layer {type(layer).__name__}")
    return _serialize(g, [graph_input], [current], f"accelsim {net.name}")


def _bias_tensor(g: _Graph, layer: Conv2D | Dense, s_in: float, tt: Any) -> int:
    scales = [float(np.float32(s_in)) * float(np.float32(ws)) for ws in layer.weight_scale]
    return g.tensor(
        _Tensor(
            f"{layer.name}/bias",
            (layer.out_channels,),
            tt.INT32,
            scales,
            [0] * layer.out_channels,
            0,
            np.ascontiguousarray(layer.bias, np.int32),
        )
    )


def _conv_options(padding: int, stride: int, activation: int) -> Any:
    conv = _table("Conv2DOptions")

    def build(b: Any) -> int:
        conv.Conv2DOptionsStart(b)
        conv.Conv2DOptionsAddPadding(b, padding)
        conv.Conv2DOptionsAddStrideW(b, stride)
        conv.Conv2DOptionsAddStrideH(b, stride)
        conv.Conv2DOptionsAddDilationWFactor(b, 1)
        conv.Conv2DOptionsAddDilationHFactor(b, 1)
        conv.Conv2DOptionsAddFusedActivationFunction(b, activation)
        return conv.Conv2DOptionsEnd(b)

    return build


def _fc_options(activation: int) -> Any:
    fcm = _table("FullyConnectedOptions")

    def build(b: Any) -> int:
        fcm.FullyConnectedOptionsStart(b)
        fcm.FullyConnectedOptionsAddFusedActivationFunction(b, activation)
        fcm.FullyConnectedOptionsAddKeepNumDims(b, False)
        return fcm.FullyConnectedOptionsEnd(b)

    return build


def _pool_options(size: int, stride: int) -> Any:
    pool = _table("Pool2DOptions")
    _, tflite = _schema()

    def build(b: Any) -> int:
        pool.Pool2DOptionsStart(b)
        pool.Pool2DOptionsAddPadding(b, tflite.Padding.VALID)
        pool.Pool2DOptionsAddStrideW(b, stride)
        pool.Pool2DOptionsAddStrideH(b, stride)
        pool.Pool2DOptionsAddFilterWidth(b, size)
        pool.Pool2DOptionsAddFilterHeight(b, size)
        pool.Pool2DOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.NONE)
        return pool.Pool2DOptionsEnd(b)

    return build


def _reshape_options(n: int) -> Any:
    resh = _table("ReshapeOptions")

    def build(b: Any) -> int:
        shape = _vector(b, resh.ReshapeOptionsStartNewShapeVector, [1, n], "PrependInt32")
        resh.ReshapeOptionsStart(b)
        resh.ReshapeOptionsAddNewShape(b, shape)
        return resh.ReshapeOptionsEnd(b)

    return build


def export_tflite(net: Network, path: Path | str) -> Path:
    """Write ``network_to_tflite(net)`` to ``path`` (atomically); returns the path."""
    path = Path(path)
    files.write_bytes(path, network_to_tflite(net))
    return path


def to_nhwc(x: np.ndarray) -> np.ndarray:
    """accelsim's int8 network input (N, C, H, W) in the ``.tflite`` layout (N, H, W, C);
    vectors (N, F) unchanged."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x)


__all__ = ["MissingExtraError", "export_tflite", "network_to_tflite", "to_nhwc"]
