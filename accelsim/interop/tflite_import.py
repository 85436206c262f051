"""Read an int8 ``.tflite`` model (TFLite's converter output) into an accelsim ``Graph``.

    result = import_tflite("model.tflite", dataset="mnist")
    result.graph          # the Graph, bit-identical to TFLite Micro on the same int8 inputs
    print(result.summary())

Supported: every op of ``accelsim.Graph`` (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
MAX_POOL_2D, AVERAGE_POOL_2D, MEAN over H and W, ADD, CONCATENATION, PAD / PADV2, RESHAPE /
SQUEEZE), fused NONE / RELU / RELU6. At the graph's edges a float QUANTIZE becomes the input's
preprocessing (the int8 tensor it writes is the graph input), and DEQUANTIZE / SOFTMAX after the
last weighted op become the classifier output (the class is the argmax of the int8 logits). An
int8 -> int8 QUANTIZE feeding only a CONCATENATION of the same output quantisation folds into
it (TFLite's concatenation requantises). Shape arithmetic on constants (SHAPE, STRIDED_SLICE,
PACK, CONCATENATION of int32 vectors, as Keras 3 emits for a variable batch) is folded. Anything
else is refused with the op's name, its index and what is supported.

The flatbuffer is parsed with the ``tflite`` package's generated schema bindings (``pip install
accelsim[tflite]``), imported when a file is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.errors import ModelFormatError
from accelsim.functional.graph import Graph, Node, TensorInfo
from accelsim.functional.graph_check import OPS
from accelsim.interop.flatbuffer import schema, table
from accelsim.interop.tflite_file import _same_padding

_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}
_ACTIVATIONS = {0: "none", 1: "relu", 3: "relu6"}
_SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION", "RESHAPE", "SQUEEZE")
_SHORT = {
    "CONV_2D": "conv",
    "DEPTHWISE_CONV_2D": "dwconv",
    "FULLY_CONNECTED": "fc",
    "MAX_POOL_2D": "maxpool",
    "AVERAGE_POOL_2D": "avgpool",
    "MEAN": "mean",
    "ADD": "add",
    "CONCATENATION": "concat",
    "PAD": "pad",
    "RESHAPE": "reshape",
}
SUPPORTED = (*OPS, "PADV2", "SQUEEZE", "QUANTIZE (edges)", "DEQUANTIZE (output)",
             "SOFTMAX (output)")  # fmt: skip


class ModelImportError(ModelFormatError):
    """A model file accelsim cannot map: names the file, the op and its index."""


@dataclass(frozen=True)
class _Tensor:
    index: int
    name: str
    shape: tuple[int, ...]  # with the batch axis, as stored (batch 1)
    dtype: Any
    scales: np.ndarray
    zero_points: np.ndarray
    axis: int
    data: np.ndarray | None


@dataclass
class ImportResult:
    """The imported graph and what the import found (``summary()`` prints it)."""

    graph: Graph
    source: str
    ops: dict[str, int] = field(default_factory=dict)
    folded: dict[str, int] = field(default_factory=dict)
    edges: list[str] = field(default_factory=list)
    tensor_names: dict[str, str] = field(default_factory=dict)  # accelsim name -> the file's

    def summary(self) -> str:
        g = self.graph
        t = g.input_info
        lines = [
            f"{self.source}: {len(g.nodes)} ops "
            + ", ".join(f"{k} x{v}" for k, v in self.ops.items()),
            f"  neurons {g.n_neurons:,}, parameters {g.n_parameters:,}, MACs {g.macs:,} per image",
            f"  input {g.input} {list(t.shape)} int8, scale {t.scale:.6g}, zero point "
            f"{t.zero_point}; output {g.output} {list(g.tensors[g.output].shape)}",
        ]
        if self.folded:
            lines.append(
                "  folded at import: " + ", ".join(f"{k} x{v}" for k, v in self.folded.items())
            )
        lines += [f"  {e}" for e in self.edges]
        return "\n".join(lines)


def op_counts(g: Graph) -> dict[str, int]:
    """How many nodes of each op ``g`` has, in order of first appearance."""
    return dict(Counter(n.op for n in g.nodes))


def _enum_names(module: Any) -> dict[int, str]:
    return {v: k for k, v in vars(module).items() if not k.startswith("_") and isinstance(v, int)}


class _Reader:
    def __init__(self, blob: bytes, source: str) -> None:
        _, self.tfl = schema()
        self.source = source
        if len(blob) < 8 or blob[4:8] != b"TFL3":
            raise self.fail("not a .tflite file (no TFL3 identifier at bytes 4..8)")
        try:
            self.model = self.tfl.Model.GetRootAsModel(blob, 0)
            if self.model.SubgraphsLength() < 1:
                raise self.fail("the model has no subgraph")
            self.sub = self.model.Subgraphs(0)
            self.op_names = _enum_names(self.tfl.BuiltinOperator)
            self.tensors = [self._tensor(i) for i in range(self.sub.TensorsLength())]
        except ModelImportError:
            raise
        except Exception as exc:  # a corrupt flatbuffer raises anything from struct to index
            raise self.fail(
                f"truncated or corrupt flatbuffer ({type(exc).__name__}: {exc})"
            ) from None

    def fail(self, problem: str) -> ModelImportError:
        return ModelImportError(self.source, problem)

    def _tensor(self, i: int) -> _Tensor:
        t = self.sub.Tensors(i)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        dtype = _TYPES.get(t.Type())
        q = t.Quantization()
        scales = np.zeros(0)
        zps = np.zeros(0, np.int64)
        axis = 0
        if q is not None and q.ScaleLength():
            scales = np.asarray(q.ScaleAsNumpy(), np.float32).astype(np.float64)
            zps = np.asarray(q.ZeroPointAsNumpy(), np.int64)
            axis = int(q.QuantizedDimension())
        data = None
        buf = self.model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() and dtype is not None:
            raw = buf.DataAsNumpy().tobytes()
            data = np.frombuffer(raw, dtype=dtype).reshape(shape)
        elif buf is not None and buf.Offset() > 1:
            raise self.fail(f"tensor {i} keeps its data outside the flatbuffer (not supported)")
        return _Tensor(i, t.Name().decode(errors="replace"), shape, dtype, scales, zps, axis, data)

    def opcode(self, op: Any) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        value = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        return self.op_names.get(value, f"builtin {value}")

    def options(self, op: Any, name: str) -> Any:
        raw = op.BuiltinOptions()
        opts = getattr(table(name), name)()
        if raw is None:
            return None
        opts.Init(raw.Bytes, raw.Pos)
        return opts


class _Importer:
    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.consts: dict[int, np.ndarray] = {
            t.index: t.data for t in reader.tensors if t.data is not None
        }
        self.names: dict[int, str] = {}  # .tflite tensor index -> accelsim tensor name
        self.infos: dict[str, TensorInfo] = {}
        self.nodes: list[Node] = []
        self.counts: dict[str, int] = {}
        self.folded: dict[str, int] = {}
        self.edges: list[str] = []
        self.requant: dict[int, int] = {}  # int8 -> int8 QUANTIZE output -> its input

    # --- tensors ----------------------------------------------------------------------------
    def fail_op(self, index: int, opname: str, problem: str) -> ModelImportError:
        return self.r.fail(problem if index < 0 else f"op {index} ({opname}): {problem}")

    def quant(self, t: _Tensor, index: int, opname: str) -> tuple[float, int]:
        if t.dtype is not np.int8:
            kind = "unknown" if t.dtype is None else np.dtype(t.dtype).name
            hint = " (16x8 quantisation)" if t.dtype is np.int16 else ""
            raise self.fail_op(
                index, opname, f"tensor {t.name!r} holds {kind} activations{hint}: accelsim "
                "imports TFLite's int8 scheme (convert with TFLITE_BUILTINS_INT8)"
            )  # fmt: skip
        if t.scales.size != 1:
            raise self.fail_op(
                index, opname, f"activation tensor {t.name!r} needs one scale, has {t.scales.size}"
            )
        return float(t.scales[0]), int(t.zero_points[0])

    @staticmethod
    def shape_of(t: _Tensor) -> tuple[int, ...]:
        """accelsim's shape without batch: (C, H, W) for NHWC, (F,) for (N, F)."""
        s = t.shape[1:]
        if len(s) == 3:
            return (s[2], s[0], s[1])
        if len(s) == 1:
            return s
        raise ValueError(f"rank {len(t.shape)}")

    def declare(self, t: _Tensor, index: int, opname: str, name: str) -> str:
        scale, zp = self.quant(t, index, opname)
        try:
            shape = self.shape_of(t)
        except ValueError:
            raise self.fail_op(
                index,
                opname,
                f"tensor {t.name!r} has shape {list(t.shape)}: accelsim takes "
                "(1, H, W, C) feature maps and (1, F) vectors",
            ) from None
        if t.shape[0] != 1:
            raise self.fail_op(index, opname, f"tensor {t.name!r} has batch {t.shape[0]}, not 1")
        self.infos[name] = TensorInfo(name, shape, scale, zp)
        self.names[t.index] = name
        return name

    def name_in(self, i: int, index: int, opname: str) -> str:
        if i not in self.names:
            t = self.r.tensors[i]
            raise self.fail_op(index, opname, f"input {t.name!r} is not produced by a supported op")
        return self.names[i]

    def node_name(self, op: str) -> str:
        self.counts[op] = self.counts.get(op, 0) + 1
        return f"{_SHORT[op]}{self.counts[op]}"

    def const(self, i: int, index: int, opname: str, what: str) -> np.ndarray:
        if i < 0 or i not in self.consts:
            raise self.fail_op(index, opname, f"{what} must be a constant tensor")
        return self.consts[i]

    # --- ops --------------------------------------------------------------------------------
    def fold(self, opname: str, ins: Sequence[int], outs: Sequence[int], op: Any) -> bool:
        """Evaluate shape arithmetic on constants; False when the op is not foldable here."""
        r = self.r
        if opname == "SHAPE":
            src = r.tensors[ins[0]]
            value = np.array(src.shape, np.int32)
        elif not all(i in self.consts for i in ins if i >= 0):
            return False
        elif opname == "STRIDED_SLICE":
            o = r.options(op, "StridedSliceOptions")
            x, begin, end, strides = (self.consts[i] for i in ins)
            if o is not None and (o.EllipsisMask() or o.NewAxisMask() or x.ndim != 1):
                return False
            b, e, s = int(begin[0]), int(end[0]), int(strides[0])
            if o is not None and o.BeginMask() & 1:
                b = 0 if s > 0 else len(x) - 1
            if o is not None and o.EndMask() & 1:
                e = len(x) if s > 0 else -len(x) - 1
            value = x[b:e:s]
            if o is not None and o.ShrinkAxisMask() & 1:
                value = value[0]
        elif opname == "PACK":
            value = np.stack([self.consts[i] for i in ins])
        elif opname == "CONCATENATION":
            value = np.concatenate([np.atleast_1d(self.consts[i]) for i in ins])
        else:
            return False
        self.consts[outs[0]] = np.asarray(value)
        self.folded[opname] = self.folded.get(opname, 0) + 1
        return True

    def padding(self, mode: int, in_hw: tuple[int, int], k: tuple[int, int], s: int):
        """(top, bottom, left, right) of TFLite's SAME (the exporter's rule) or VALID."""
        if mode == self.r.tfl.Padding.VALID:
            return (0, 0, 0, 0)
        return _same_padding(in_hw[0], k[0], s) + _same_padding(in_hw[1], k[1], s)

    def activation(self, value: int, index: int, opname: str) -> str:
        if value not in _ACTIVATIONS:
            names = _enum_names(self.r.tfl.ActivationFunctionType)
            raise self.fail_op(
                index,
                opname,
                f"fused activation {names.get(value, value)} is not supported (NONE, RELU, RELU6)",
            )
        return _ACTIVATIONS[value]

    def stride(self, o: Any, index: int, opname: str) -> int:
        if o.StrideH() != o.StrideW():
            raise self.fail_op(
                index, opname, f"strides {o.StrideH()} x {o.StrideW()}: accelsim takes equal ones"
            )
        return int(o.StrideH())

    def weights(self, ins: Sequence[int], index: int, opname: str, axis: int):
        w_t = self.r.tensors[ins[1]]
        w = self.const(ins[1], index, opname, "the weight")
        if w_t.dtype is not np.int8:
            raise self.fail_op(index, opname, f"weights are {np.dtype(w_t.dtype)}, not int8")
        if np.any(w_t.zero_points != 0):
            raise self.fail_op(index, opname, "weights have a nonzero zero point (not symmetric)")
        if np.any(w == -128):
            raise self.fail_op(index, opname, "weights hold -128 (TFLite's int8 spec: -127..127)")
        n_out = w.shape[axis]
        scales = w_t.scales
        if scales.size not in (1, n_out) or (scales.size > 1 and w_t.axis != axis):
            raise self.fail_op(
                index,
                opname,
                f"{scales.size} weight scales on axis {w_t.axis} for {n_out} "
                f"output channels on axis {axis}",
            )
        if len(ins) > 2 and ins[2] >= 0:
            bias = self.const(ins[2], index, opname, "the bias")
            if bias.dtype != np.int32:
                raise self.fail_op(index, opname, f"bias is {bias.dtype}, not int32")
        else:
            bias = np.zeros(n_out, np.int32)
        return w, np.array(bias, np.int32), np.array(scales, np.float64)

    def add(self, op: str, ins: Sequence[str], out: _Tensor, index: int, opname: str,
            **kw: Any) -> None:  # fmt: skip
        name = self.node_name(op)
        self.declare(out, index, opname, name)
        self.nodes.append(Node(name, op, tuple(ins), name, **kw))

    def internal(self, op: str, src: str, shape: tuple[int, ...], quant: tuple[float, int],
                 attrs: dict[str, Any]) -> str:  # fmt: skip
        """A node accelsim adds that the file has no tensor for; its output's name."""
        name = self.node_name(op)
        self.infos[name] = TensorInfo(name, shape, *quant)
        self.nodes.append(Node(name, op, (src,), name, attrs))
        return name

    def reshape_to(self, src: str, out: _Tensor, index: int, opname: str) -> None:
        target = self.shape_of(out)
        self.add("RESHAPE", [src], out, index, opname, attrs={"shape": target, "order": "hwc"})

    def op(self, index: int, op: Any) -> None:
        r, opname = self.r, self.r.opcode(op)
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(i) for i in op.OutputsAsNumpy()]
        out = r.tensors[outs[0]]
        if opname in _SHAPE_OPS and self.fold(opname, ins, outs, op):
            return
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x = self.name_in(ins[0], index, opname)
            dw = opname == "DEPTHWISE_CONV_2D"
            o = r.options(op, "DepthwiseConv2DOptions" if dw else "Conv2DOptions")
            if o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                raise self.fail_op(index, opname, "dilation other than 1 is not supported")
            w, b, s = self.weights(ins, index, opname, 3 if dw else 0)
            _, h, w_ = self.infos[x].shape
            stride = self.stride(o, index, opname)
            k = (w.shape[1], w.shape[2])
            attrs = {
                "stride": stride,
                "padding": self.padding(o.Padding(), (h, w_), k, stride),
                "activation": self.activation(o.FusedActivationFunction(), index, opname),
            }
            if dw:
                attrs["depth_multiplier"] = w.shape[3] // self.infos[x].shape[0]
                weight = np.ascontiguousarray(w[0].transpose(2, 0, 1))
            else:
                weight = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
            self.add(opname, [x], out, index, opname, attrs=attrs, weight=weight, bias=b,
                     weight_scale=s)  # fmt: skip
        elif opname == "FULLY_CONNECTED":
            x = self.name_in(ins[0], index, opname)
            o = r.options(op, "FullyConnectedOptions")
            if o is not None and o.WeightsFormat() != 0:
                raise self.fail_op(index, opname, "shuffled weights format is not supported")
            w, b, s = self.weights(ins, index, opname, 0)
            info = self.infos[x]
            if len(info.shape) == 3:  # TFLite flattens the NHWC input itself
                shape = (int(np.prod(info.shape)),)
                x = self.internal("RESHAPE", x, shape, (info.scale, info.zero_point),
                                  {"shape": shape, "order": "hwc"})  # fmt: skip
            act = self.activation(o.FusedActivationFunction() if o else 0, index, opname)
            self.add(opname, [x], out, index, opname, attrs={"activation": act},
                     weight=np.ascontiguousarray(w), bias=b, weight_scale=s)  # fmt: skip
        elif opname in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            x = self.name_in(ins[0], index, opname)
            o = r.options(op, "Pool2DOptions")
            size = (int(o.FilterHeight()), int(o.FilterWidth()))
            stride = self.stride(o, index, opname)
            _, h, w_ = self.infos[x].shape
            attrs = {
                "size": size,
                "stride": stride,
                "padding": self.padding(o.Padding(), (h, w_), size, stride),
                "activation": self.activation(o.FusedActivationFunction(), index, opname),
            }
            self.add(opname, [x], out, index, opname, attrs=attrs)
        elif opname == "MEAN":
            x = self.name_in(ins[0], index, opname)
            axes = sorted(int(a) % 4 for a in np.atleast_1d(self.const(ins[1], index, opname,
                                                                       "the axis")))  # fmt: skip
            if axes != [1, 2] or len(self.infos[x].shape) != 3:
                raise self.fail_op(index, opname, f"MEAN over axes {axes}: only H and W (1, 2)")
            if len(out.shape) == 4:  # keep_dims: MEAN then a (C, 1, 1) reshape
                quant = self.quant(out, index, opname)
                mean = self.internal("MEAN", x, (out.shape[3],), quant, {})
                self.reshape_to(mean, out, index, opname)
            else:
                self.add("MEAN", [x], out, index, opname)
        elif opname == "ADD":
            a, b = (self.name_in(i, index, opname) for i in ins[:2])
            if self.infos[a].shape != self.infos[b].shape:
                raise self.fail_op(index, opname, "broadcasting ADD is not supported")
            o = r.options(op, "AddOptions")
            act = self.activation(o.FusedActivationFunction() if o else 0, index, opname)
            self.add("ADD", [a, b], out, index, opname, attrs={"activation": act})
        elif opname == "CONCATENATION":
            o = r.options(op, "ConcatenationOptions")
            rank = len(out.shape)
            if o.Axis() % rank != rank - 1:
                raise self.fail_op(index, opname, f"axis {o.Axis()}: only the channel axis")
            if o.FusedActivationFunction():
                raise self.fail_op(index, opname, "a fused activation on CONCATENATION")
            names = []
            for i in ins:
                if i in self.requant:  # fold the int8 QUANTIZE: concatenation requantises
                    q = r.tensors[i]
                    if self.quant(q, index, opname) != self.quant(out, index, opname):
                        raise self.fail_op(
                            index,
                            opname,
                            "an int8 QUANTIZE of another "
                            "quantisation than the concatenation's output",
                        )
                    i = self.requant[i]
                names.append(self.name_in(i, index, opname))
            self.add("CONCATENATION", names, out, index, opname, attrs={"axis": 0})
        elif opname in ("PAD", "PADV2"):
            x = self.name_in(ins[0], index, opname)
            pads = self.const(ins[1], index, opname, "the paddings").reshape(-1, 2)
            if pads.shape[0] != 4 or pads[0].any() or pads[3].any():
                raise self.fail_op(index, opname, "only H and W of a feature map are padded")
            if opname == "PADV2" and len(ins) > 2 and ins[2] >= 0:
                value = int(self.const(ins[2], index, opname, "the pad value").ravel()[0])
                if value != self.quant(out, index, opname)[1]:
                    raise self.fail_op(index, opname, f"pads with {value}, not the zero point")
            attrs = {"padding": (int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]),
                                 int(pads[2, 1]))}  # fmt: skip
            self.add("PAD", [x], out, index, opname, attrs=attrs)
        elif opname in ("RESHAPE", "SQUEEZE"):
            self.reshape_to(self.name_in(ins[0], index, opname), out, index, opname)
        elif opname == "QUANTIZE" and r.tensors[ins[0]].dtype is np.int8:
            users = self.consumers(outs[0])
            if users and all(c == "CONCATENATION" for c in users):
                self.requant[outs[0]] = ins[0]
                self.folded["QUANTIZE (into CONCATENATION)"] = (
                    self.folded.get("QUANTIZE (into CONCATENATION)", 0) + 1
                )
            else:
                raise self.fail_op(
                    index,
                    opname,
                    "an int8 -> int8 QUANTIZE is supported only in front of a CONCATENATION",
                )
        else:
            raise self.fail_op(
                index, opname, f"not supported; supported ops: {', '.join(SUPPORTED)}"
            )

    def consumers(self, tensor: int) -> list[str]:
        sub = self.r.sub
        return [
            self.r.opcode(sub.Operators(k))
            for k in range(sub.OperatorsLength())
            if tensor in sub.Operators(k).InputsAsNumpy()
        ]


def _edges(imp: _Importer) -> tuple[list[int], int, int]:
    """The operator indices to map, the int8 input tensor and the int8 output tensor."""
    r = imp.r
    sub = r.sub
    n_ops = sub.OperatorsLength()
    if sub.InputsLength() != 1 or sub.OutputsLength() != 1:
        raise r.fail(
            f"{sub.InputsLength()} inputs and {sub.OutputsLength()} outputs: accelsim maps "
            "a model with one image input and one output"
        )
    todo = list(range(n_ops))
    x = int(sub.Inputs(0))
    y = int(sub.Outputs(0))
    producers = {int(o): k for k in todo for o in sub.Operators(k).OutputsAsNumpy()}
    if len(r.tensors[x].shape) != 4:
        raise r.fail(
            f"input {r.tensors[x].name!r} has shape {list(r.tensors[x].shape)}: accelsim "
            "imports image models (a 1 x H x W x C input)"
        )
    if r.tensors[x].dtype is np.float32:
        first = [k for k in todo if x in sub.Operators(k).InputsAsNumpy()]
        if len(first) != 1 or r.opcode(sub.Operators(first[0])) != "QUANTIZE":
            raise r.fail(
                f"a float model (input {r.tensors[x].name!r} is float32 and no QUANTIZE "
                "follows it): accelsim imports int8 .tflite files (TFLite's full-integer "
                "quantisation: representative_dataset, TFLITE_BUILTINS_INT8), or the float "
                "model as ONNX"
            )
        todo.remove(first[0])
        x_float, x = x, int(sub.Operators(first[0]).Outputs(0))
        s, z = imp.quant(r.tensors[x], first[0], "QUANTIZE")
        imp.edges.append(
            f"input: float32 {r.tensors[x_float].name!r} quantised by op {first[0]} "
            f"(QUANTIZE, scale {s:.6g}, zero point {z}); accelsim takes the int8 tensor"
        )
    while y in producers and r.opcode(sub.Operators(producers[y])) in ("DEQUANTIZE", "SOFTMAX"):
        k = producers[y]
        name = r.opcode(sub.Operators(k))
        todo.remove(k)
        y = int(sub.Operators(k).Inputs(0))
        imp.edges.append(
            f"output: op {k} ({name}) dropped; the classifier output is its input "
            f"{r.tensors[y].name!r} (argmax unchanged"
            + (", ties of the int8 softmax aside)" if name == "SOFTMAX" else ")")
        )
    return todo, x, y


def import_tflite(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    dataset: str = "mnist",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    requantization: str = "tflm",
) -> ImportResult:
    """Map an int8 ``.tflite`` model onto an accelsim ``Graph`` (see the module docstring).

    ``mean`` / ``std`` (per channel; default 0 and 1) say how pixels became the model's float
    input: ``(p / 255 - mean) / std``, then the input tensor's scale and zero point.
    """
    if isinstance(source, bytes):
        blob, label = source, "<bytes>"
    else:
        path = Path(source)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ModelImportError(str(path), f"cannot read: {exc.strerror or exc}") from None
        label = str(path)
    reader = _Reader(blob, label)
    imp = _Importer(reader)
    todo, x, y = _edges(imp)
    imp.declare(reader.tensors[x], -1, "input", "input")
    for k in todo:
        imp.op(k, reader.sub.Operators(k))
    if y not in imp.names:
        raise reader.fail(f"the output {reader.tensors[y].name!r} is not produced by a mapped op")
    channels = imp.infos["input"].shape[0] if len(imp.infos["input"].shape) == 3 else 1
    stem = name or (Path(label).stem if label != "<bytes>" else "imported")
    graph = Graph(
        stem,
        dataset,
        "input",
        imp.names[y],
        dict(imp.infos),
        tuple(imp.nodes),
        tuple(mean) if mean is not None else (0.0,) * channels,
        tuple(std) if std is not None else (1.0,) * channels,
        requantization,
        label,
    )
    names = {v: reader.tensors[k].name for k, v in imp.names.items()}
    return ImportResult(graph, label, op_counts(graph), imp.folded, imp.edges, names)


__all__ = ["SUPPORTED", "ImportResult", "ModelImportError", "import_tflite"]
