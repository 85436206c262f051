"""The flatbuffer side of ``.tflite`` writing: tensors, operators and buffers in the schema's
tables, through the ``tflite`` package's generated builders (never hand-written offsets).

Needs the ``tflite`` and ``flatbuffers`` packages (``pip install accelsim[tflite]``); they are
imported on first use, so importing accelsim never needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from accelsim.errors import AccelsimError

SCHEMA_VERSION = 3


class MissingExtraError(AccelsimError):
    """An optional dependency of the requested feature is not installed."""


def schema() -> tuple[Any, Any]:
    try:
        flatbuffers = importlib.import_module("flatbuffers")
        tflite = importlib.import_module("tflite")
    except ImportError as exc:
        raise MissingExtraError(
            f"writing .tflite files needs the tflite extra ({exc.name} is not installed): "
            "pip install 'accelsim[tflite]'"
        ) from None
    return flatbuffers, tflite


def table(name: str) -> ModuleType:
    """The generated module ``tflite.<name>`` (the package exports the class of that name)."""
    return importlib.import_module(f"tflite.{name}")


@dataclass
class FbTensor:
    name: str
    shape: tuple[int, ...]
    dtype: int
    scales: Sequence[float] = ()
    zero_points: Sequence[int] = ()
    axis: int = 0
    data: np.ndarray | None = None


@dataclass
class FbOp:
    code: int
    version: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    options: Any = None  # callable(builder) -> offset


@dataclass
class FbGraph:
    """Tensors and operators in the order the flatbuffer lists them."""

    tensors: list[FbTensor] = field(default_factory=list)
    ops: list[FbOp] = field(default_factory=list)

    def tensor(self, t: FbTensor) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1


def int_vector(builder: Any, start: Any, values: Sequence[int], prepend: str) -> int:
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


def serialize(graph: FbGraph, inputs: list[int], outputs: list[int], description: str) -> bytes:
    flatbuffers, _ = schema()
    b = flatbuffers.Builder(1024)
    ten, qp, buf = table("Tensor"), table("QuantizationParameters"), table("Buffer")
    opm, occ, sgm, mdl = (
        table("Operator"),
        table("OperatorCode"),
        table("SubGraph"),
        table("Model"),
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
        shape = int_vector(b, ten.TensorStartShapeVector, t.shape, "PrependInt32")
        quant = None
        if t.scales:
            scale = _vector_f32(b, qp.QuantizationParametersStartScaleVector, t.scales)
            zp = int_vector(
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
        ins = int_vector(b, opm.OperatorStartInputsVector, op.inputs, "PrependInt32")
        outs = int_vector(b, opm.OperatorStartOutputsVector, op.outputs, "PrependInt32")
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
    sg_in = int_vector(b, sgm.SubGraphStartInputsVector, inputs, "PrependInt32")
    sg_out = int_vector(b, sgm.SubGraphStartOutputsVector, outputs, "PrependInt32")
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


def options(name: str, **fields: Any) -> Any:
    """A builder of the ``name`` options table: ``fields`` are its fields in CamelCase (lists become
    int32 vectors)."""
    mod = table(name)

    def build(b: Any) -> int:
        vectors = {
            k: int_vector(b, getattr(mod, f"{name}Start{k}Vector"), v, "PrependInt32")
            for k, v in fields.items()
            if isinstance(v, list | tuple)
        }
        getattr(mod, f"{name}Start")(b)
        for k, v in fields.items():
            getattr(mod, f"{name}Add{k}")(b, vectors.get(k, v))
        return getattr(mod, f"{name}End")(b)

    return build
