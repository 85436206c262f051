"""Read a float ONNX model (e.g. from ``torch.onnx.export``) and quantise it to TFLite's int8
scheme with accelsim's post-training quantiser.

    arch, weights, notes = read_onnx("model.onnx", mean=[0.1307], std=[0.3081])
    result = import_onnx("model.onnx", calibration_images, dataset="mnist", ...)

The ONNX graph becomes a float architecture of ``accelsim.functional.graph_quantize`` (``conv``,
``dwconv``, ``fc``, ``add``, ``mean``, ``maxpool``, ``avgpool``, ``flatten``, ``concat``,
``pad``), then ``quantize_graph`` calibrates it on the images the user names (activations per
tensor, asymmetric; weights per output channel, symmetric; multipliers from float32 scales).

Mapped: Conv (group 1, or depthwise: group = input channels), BatchNormalization after a Conv
(folded into its weights), Gemm / MatMul (+ Add of a constant), Relu and Clip(0, 6) / Clip(0)
after an op that TFLite fuses activations into (fused), MaxPool / AveragePool (no ceil mode,
padding excluded from averages), GlobalAveragePool / ReduceMean over H and W, Add, Concat over
channels, Pad (zeros over H and W), Flatten / Reshape to (N, features), Identity / Dropout, a
Softmax at the output (dropped: the class is the argmax of the logits). Anything else is refused
with the node's op type, name and index.

**QDQ models** (onnxruntime's static quantisation, ``QuantFormat.QDQ``): the QuantizeLinear /
DequantizeLinear pairs give every tensor's scale and zero point and the weights' int8 codes
(per channel or per tensor, symmetric) and int32 biases, which the graph keeps as they are
(uint8 activations shift to int8: the same real values); no calibration. The arithmetic is then
TFLite's (``tflm``) or XNNPACK's (``xnnpack``), not onnxruntime's own kernels': the logits can
differ from onnxruntime's by a step (measured in the tests). Operator-oriented models
(QLinearConv, ConvInteger) are refused.

Needs the ``onnx`` package (``pip install accelsim[onnx]``), imported when a file is read.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.functional.graph_quantize import float_graph_forward, quantize_graph
from accelsim.functional.quantize import normalize_images
from accelsim.interop.flatbuffer import MissingExtraError
from accelsim.interop.tflite_import import ImportResult, ModelImportError, op_counts

_FUSES = ("conv", "dwconv", "fc", "add", "maxpool", "avgpool")
SUPPORTED = (
    "Conv", "BatchNormalization", "Gemm", "MatMul", "Add", "Relu", "Clip", "MaxPool",
    "AveragePool", "GlobalAveragePool", "ReduceMean", "Concat", "Pad", "Flatten", "Reshape",
    "Identity", "Dropout", "Softmax (output)",
)  # fmt: skip


def _onnx() -> Any:
    try:
        return importlib.import_module("onnx")
    except ImportError:
        raise MissingExtraError(
            "reading ONNX files needs the onnx extra (onnx is not installed): "
            "pip install 'accelsim[onnx]'"
        ) from None


@dataclass
class FloatModel:
    """A float architecture (``graph_quantize``'s node list) and its weights."""

    arch: dict[str, Any]
    weights: dict[str, np.ndarray]
    ops: dict[str, int] = field(default_factory=dict)
    edges: list[str] = field(default_factory=list)
    fixed: dict[str, tuple[float, int]] | None = None  # a QDQ model's tensor quantisation
    quantized: dict[str, Any] | None = None  # a QDQ model's int8 weights per node

    @property
    def is_quantized(self) -> bool:
        return self.fixed is not None

    def logits(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return float_graph_forward(self.arch, self.weights, x)[self.arch["nodes"][-1]["name"]]


class _Reader:
    def __init__(self, model: Any, source: str) -> None:
        self.onnx = _onnx()
        self.source = source
        g = model.graph
        helper = self.onnx.numpy_helper
        self.consts: dict[str, np.ndarray] = {t.name: helper.to_array(t) for t in g.initializer}
        self.nodes: list[dict[str, Any]] = []
        self.weights: dict[str, np.ndarray] = {}
        self.alias: dict[str, str] = {}  # ONNX value -> architecture node (or "input")
        self.shapes: dict[str, tuple[int, ...]] = {}  # architecture node -> shape, no batch
        self.spatial_one: set[str] = set()  # ONNX values of shape (N, C, 1, 1) held as (C,)
        self.counts: dict[str, int] = {}
        self.quant: dict[str, tuple[float, int]] = {}  # QDQ: architecture node -> (scale, zp)
        self.qconst: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # DQ'd constant -> (q, s)
        self.qweights: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self.qconst_bias_scale: dict[str, np.ndarray] = {}
        self.users: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                self.users[i] = self.users.get(i, 0) + 1
        for o in g.output:
            self.users[o.name] = self.users.get(o.name, 0) + 1
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise self.fail(f"{len(inputs)} inputs and {len(g.output)} outputs: accelsim maps "
                            "one image input and one output")  # fmt: skip
        dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) not in (2, 4) or any(d <= 0 for d in dims[1:]):
            raise self.fail(f"input {inputs[0].name!r} has shape {dims}: accelsim takes "
                            "N x C x H x W images with fixed C, H, W")  # fmt: skip
        self.alias[inputs[0].name] = "input"
        self.shapes["input"] = tuple(dims[1:])
        self.output = g.output[0].name
        self.edges: list[str] = []

    def fail(self, problem: str) -> ModelImportError:
        return ModelImportError(self.source, problem)

    def attrs(self, node: Any) -> dict[str, Any]:
        get = self.onnx.helper.get_attribute_value
        return {a.name: get(a) for a in node.attribute}

    def src(self, name: str, where: str) -> str:
        if name not in self.alias:
            raise self.fail(f"{where}: input {name!r} is not produced by a mapped node")
        return self.alias[name]

    def const(self, name: str, where: str) -> np.ndarray:
        if name not in self.consts:
            raise self.fail(f"{where}: {name!r} must be a constant (an initializer)")
        return self.consts[name]

    def emit(self, op: str, out: str, inputs: Sequence[str], shape: tuple[int, ...],
             **spec: Any) -> dict[str, Any]:  # fmt: skip
        self.counts[op] = self.counts.get(op, 0) + 1
        name = f"{op}{self.counts[op]}"
        node = {"name": name, "op": op, "inputs": list(inputs), **spec}
        self.nodes.append(node)
        self.alias[out] = name
        self.shapes[name] = shape
        return node

    def producer(self, value: str) -> dict[str, Any] | None:
        name = self.alias.get(value)
        return next((n for n in self.nodes if n["name"] == name), None)


def _pads(attrs: dict[str, Any], where: str, fail) -> tuple[int, int, int, int]:
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        raise fail(f"{where}: auto_pad {attrs['auto_pad']!r}: write explicit pads")
    p = list(attrs.get("pads", [0, 0, 0, 0]))
    return int(p[0]), int(p[2]), int(p[1]), int(p[3])  # ONNX: (t, l, b, r)


def _stride(attrs: dict[str, Any], where: str, fail) -> int:
    s = list(attrs.get("strides", [1, 1]))
    if s[0] != s[1]:
        raise fail(f"{where}: strides {s}: accelsim takes equal ones")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise fail(f"{where}: dilation other than 1 is not supported")
    return int(s[0])


def _out_hw(shape, k, s, p) -> tuple[int, int]:
    return (shape[1] + p[0] + p[1] - k[0]) // s + 1, (shape[2] + p[2] + p[3] - k[1]) // s + 1


def _int8(q: np.ndarray, zp: np.ndarray, where: str, fail) -> tuple[np.ndarray, np.ndarray]:
    """(q, zp) as int8: uint8 codes shift by 128 (the same real values)."""
    if q.dtype == np.uint8:
        return (q.astype(np.int16) - 128).astype(np.int8), zp.astype(np.int16) - 128
    if q.dtype != np.int8:
        raise fail(f"{where}: {q.dtype} quantisation; accelsim maps int8 / uint8 QDQ models")
    return q, zp.astype(np.int16)


def _quantize_linear(r: _Reader, node: Any, where: str) -> None:
    """An activation's QuantizeLinear: its scale and zero point become the tensor's."""
    x = r.src(node.input[0], where)
    scale = r.const(node.input[1], where)
    zp = r.const(node.input[2], where) if len(node.input) > 2 and node.input[2] else np.int8(0)
    if np.size(scale) != 1:
        raise r.fail(f"{where}: activations need one scale per tensor")
    _, z = _int8(np.zeros(1, np.asarray(zp).dtype), np.asarray(zp).reshape(-1), where, r.fail)
    quant = (float(np.float32(scale)), int(z[0]))
    if r.quant.get(x, quant) != quant:
        raise r.fail(f"{where}: a tensor quantised twice with different parameters")
    r.quant[x] = quant
    r.alias[node.output[0]] = x


def _dequantize_linear(r: _Reader, node: Any, where: str, a: dict[str, Any]) -> None:
    if node.input[0] not in r.consts:  # an activation: the value it was quantised from
        r.alias[node.output[0]] = r.src(node.input[0], where)
        return
    q = r.consts[node.input[0]]
    scale = np.asarray(r.const(node.input[1], where), np.float64)
    zp = (r.const(node.input[2], where) if len(node.input) > 2 and node.input[2]
          else np.zeros_like(scale, np.int64))  # fmt: skip
    axis = int(a.get("axis", 1)) % max(q.ndim, 1)
    shape = [1] * q.ndim
    if scale.size > 1:
        shape[axis] = -1
    if q.dtype == np.int32:  # a bias
        r.consts[node.output[0]] = ((q - zp.reshape(shape)) * scale.reshape(shape)).astype(
            np.float32
        )
        r.qconst[node.output[0]] = (q, scale)
        return
    q, zp = _int8(q, np.asarray(zp).reshape(-1), where, r.fail)
    if np.any(zp != 0):
        raise r.fail(f"{where}: weights with a nonzero zero point (TFLite's are symmetric)")
    if np.any(q == -128):
        raise r.fail(f"{where}: weights hold -128 (TFLite's int8 spec: -127..127)")
    r.consts[node.output[0]] = (q * scale.reshape(shape)).astype(np.float32)
    r.qconst[node.output[0]] = (q, scale)


def _record_int_weights(r: _Reader, name: str, inputs: Sequence[str], out_axis: int,
                        where: str) -> None:  # fmt: skip
    """A QDQ weight's int8 codes (and an int32 bias) for ``quantize_graph``."""
    if len(inputs) < 2 or inputs[1] not in r.qconst:
        return
    q, scale = r.qconst[inputs[1]]
    if out_axis == 1:  # (F, O) as stored for MatMul / Gemm without transB
        q = q.T
    n_out = q.shape[0]
    scale = np.broadcast_to(scale.reshape(-1), (n_out,)) if scale.size in (1, n_out) else None
    if scale is None:
        raise r.fail(f"{where}: weight scales must be per tensor or per output channel")
    bias = None
    if len(inputs) > 2 and inputs[2] in r.qconst:
        bias = r.qconst[inputs[2]][0].reshape(-1)
        r.qconst_bias_scale[name] = np.broadcast_to(r.qconst[inputs[2]][1].reshape(-1), (n_out,))
    r.qweights[name] = (np.ascontiguousarray(q), np.array(scale), bias)


def _map_node(r: _Reader, index: int, node: Any) -> None:
    op, out = node.op_type, node.output[0]
    where = f"node {index} ({op} {node.name!r})"
    a = r.attrs(node)
    if op == "Constant":
        r.consts[out] = r.onnx.numpy_helper.to_array(a["value"])
    elif op in ("Identity", "Dropout"):
        r.alias[out] = r.src(node.input[0], where)
        if node.input[0] in r.spatial_one:
            r.spatial_one.add(out)
    elif op == "Conv":
        x = r.src(node.input[0], where)
        w = r.const(node.input[1], where).astype(np.float32)
        b = (r.const(node.input[2], where) if len(node.input) > 2 and node.input[2]
             else np.zeros(w.shape[0], np.float32))  # fmt: skip
        c_in = r.shapes[x][0]
        group = int(a.get("group", 1))
        if group == 1:
            kind = "conv"
        elif group == c_in and w.shape[1] == 1:
            kind = "dwconv"
        else:
            raise r.fail(f"{where}: grouped convolution (group {group}) is not supported")
        s, p = _stride(a, where, r.fail), _pads(a, where, r.fail)
        k = (w.shape[2], w.shape[3])
        shape = (w.shape[0], *_out_hw(r.shapes[x], k, s, p))
        spec = {"out_channels": int(w.shape[0]), "in_channels": int(c_in), "kernel": k,
                "stride": s, "padding": p, "activation": "none"}  # fmt: skip
        if kind == "dwconv":
            spec["depth_multiplier"] = int(w.shape[0] // c_in)
        n = r.emit(kind, out, [x], shape, **spec)
        r.weights[f"{n['name']}.weight"], r.weights[f"{n['name']}.bias"] = w, b.astype(np.float32)
        _record_int_weights(r, n["name"], node.input, 0, where)
    elif op == "BatchNormalization":
        n = r.producer(node.input[0])
        if n is None or n["op"] not in ("conv", "dwconv") or r.users[node.input[0]] != 1:
            raise r.fail(f"{where}: BatchNormalization is folded only right after a Conv")
        gamma, beta, mean, var = (r.const(i, where).astype(np.float64) for i in node.input[1:5])
        scale = gamma / np.sqrt(var + float(a.get("epsilon", 1e-5)))
        w, b = r.weights[f"{n['name']}.weight"], r.weights[f"{n['name']}.bias"]
        r.weights[f"{n['name']}.weight"] = (w * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
        r.weights[f"{n['name']}.bias"] = ((b - mean) * scale + beta).astype(np.float32)
        r.alias[out] = n["name"]
    elif op in ("Relu", "Clip"):
        act = "relu"
        if op == "Clip":
            lo = r.const(node.input[1], where) if len(node.input) > 1 and node.input[1] else None
            hi = r.const(node.input[2], where) if len(node.input) > 2 and node.input[2] else None
            lo = float(lo) if lo is not None else float(a.get("min", -np.inf))
            hi = float(hi) if hi is not None else float(a.get("max", np.inf))
            if lo != 0 or hi not in (6.0, np.inf):
                raise r.fail(f"{where}: Clip({lo:g}, {hi:g}): only Clip(0, 6) and Clip(0)")
            act = "relu6" if hi == 6.0 else "relu"
        n = r.producer(node.input[0])
        if (n is None or n["op"] not in _FUSES or n.get("activation", "none") != "none"
                or r.users[node.input[0]] != 1):  # fmt: skip
            raise r.fail(f"{where}: an activation is fused only into a Conv, Gemm, Add or "
                         "pool that nothing else reads")  # fmt: skip
        n["activation"] = act
        r.alias[out] = n["name"]
    elif op in ("Gemm", "MatMul"):
        x = r.src(node.input[0], where)
        if len(r.shapes[x]) != 1:
            raise r.fail(f"{where}: input of shape {list(r.shapes[x])}; flatten it first")
        w = r.const(node.input[1], where).astype(np.float32)
        if op == "Gemm":
            if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise r.fail(f"{where}: only transA 0, alpha 1, beta 1")
            w = w if a.get("transB", 0) else w.T
            b = r.const(node.input[2], where) if len(node.input) > 2 and node.input[2] else None
        else:
            w, b = w.T, None
        if w.shape[1] != r.shapes[x][0]:
            raise r.fail(f"{where}: weights {list(w.shape)} (as out x in) for "
                         f"{r.shapes[x][0]} input features")  # fmt: skip
        b = np.zeros(w.shape[0], np.float32) if b is None else np.broadcast_to(b, w.shape[:1])
        n = r.emit("fc", out, [x], (int(w.shape[0]),), in_features=int(w.shape[1]),
                   out_features=int(w.shape[0]), activation="none")  # fmt: skip
        r.weights[f"{n['name']}.weight"] = np.ascontiguousarray(w)
        r.weights[f"{n['name']}.bias"] = np.array(b, np.float32)
        transposed = op == "MatMul" or not a.get("transB", 0)
        _record_int_weights(r, n["name"], node.input, 1 if transposed else 0, where)
    elif op == "Add":
        ins = list(node.input)
        const = [i for i in ins if i in r.consts]
        if const:  # a bias after MatMul
            n = r.producer(next(i for i in ins if i not in r.consts))
            if n is None or n["op"] != "fc" or n["activation"] != "none":
                raise r.fail(f"{where}: adding a constant is supported only as a MatMul's bias")
            bias = r.weights[f"{n['name']}.bias"] + np.broadcast_to(
                r.consts[const[0]].astype(np.float32).ravel(), (n["out_features"],)
            )
            r.weights[f"{n['name']}.bias"] = bias.astype(np.float32)
            r.alias[out] = n["name"]
            return
        x, y = (r.src(i, where) for i in ins)
        if r.shapes[x] != r.shapes[y]:
            raise r.fail(f"{where}: broadcasting Add ({r.shapes[x]} + {r.shapes[y]})")
        r.emit("add", out, [x, y], r.shapes[x], activation="none")
    elif op in ("MaxPool", "AveragePool"):
        x = r.src(node.input[0], where)
        if a.get("ceil_mode", 0):
            raise r.fail(f"{where}: ceil_mode 1 is not supported")
        p = _pads(a, where, r.fail)
        if op == "AveragePool" and a.get("count_include_pad", 0) and any(p):
            raise r.fail(f"{where}: count_include_pad 1 with padding (TFLite averages the "
                         "in-bounds elements)")  # fmt: skip
        k = tuple(int(v) for v in a["kernel_shape"])
        s = _stride(a, where, r.fail)
        shape = (r.shapes[x][0], *_out_hw(r.shapes[x], k, s, p))
        kind = "maxpool" if op == "MaxPool" else "avgpool"
        r.emit(kind, out, [x], shape, size=k, stride=s, padding=p, activation="none")
    elif op in ("GlobalAveragePool", "ReduceMean"):
        x = r.src(node.input[0], where)
        keep = True if op == "GlobalAveragePool" else bool(a.get("keepdims", 1))
        if op == "ReduceMean":
            axes = a.get("axes") or (list(r.const(node.input[1], where)) if len(node.input) > 1
                                     else None)  # fmt: skip
            if axes is None or sorted(int(v) % 4 for v in axes) != [2, 3]:
                raise r.fail(f"{where}: a mean over axes {axes}: only H and W (2, 3)")
        if len(r.shapes[x]) != 3:
            raise r.fail(f"{where}: needs a feature map")
        r.emit("mean", out, [x], (r.shapes[x][0],))
        if keep:
            r.spatial_one.add(out)
    elif op in ("Flatten", "Reshape"):
        x = r.src(node.input[0], where)
        if op == "Flatten" and int(a.get("axis", 1)) != 1:
            raise r.fail(f"{where}: Flatten axis {a.get('axis')}: only 1")
        size = int(np.prod(r.shapes[x]))
        if op == "Reshape":
            target = [int(v) for v in r.const(node.input[1], where)]
            if len(target) != 2 or target[1] not in (-1, size) or target[0] not in (-1, 0, 1):
                raise r.fail(f"{where}: reshape to {target}: only (N, features) is supported")
        if len(r.shapes[x]) == 1 or node.input[0] in r.spatial_one:
            r.alias[out] = x  # already a vector
        else:
            r.emit("flatten", out, [x], (size,))
    elif op == "Concat":
        ins = [r.src(i, where) for i in node.input]
        rank = len(r.shapes[ins[0]]) + 1
        if int(a["axis"]) % rank != 1:
            raise r.fail(f"{where}: Concat axis {a['axis']}: only the channel axis 1")
        shape = (sum(r.shapes[i][0] for i in ins), *r.shapes[ins[0]][1:])
        r.emit("concat", out, ins, shape)
    elif op == "Pad":
        x = r.src(node.input[0], where)
        pads = [int(v) for v in r.const(node.input[1], where)] if len(node.input) > 1 else (
            list(a.get("pads", [])))  # fmt: skip
        value = r.const(node.input[2], where) if len(node.input) > 2 and node.input[2] else 0
        mode = a.get("mode", b"constant")
        if (
            len(pads) != 8
            or any(pads[i] for i in (0, 1, 4, 5))
            or float(value) != 0
            or mode not in (b"constant", "constant")
        ):
            raise r.fail(f"{where}: only zero padding of H and W is supported")
        p = (pads[2], pads[6], pads[3], pads[7])
        c, h, w = r.shapes[x]
        r.emit("pad", out, [x], (c, h + p[0] + p[1], w + p[2] + p[3]), padding=p)
    elif op == "Softmax" and out == r.output:
        r.alias[out] = r.src(node.input[0], where)
        r.edges.append(f"output: {where} dropped; the classifier output is its input (the "
                       "class is the argmax of the logits)")  # fmt: skip
    elif op == "QuantizeLinear":
        _quantize_linear(r, node, where)
    elif op == "DequantizeLinear":
        _dequantize_linear(r, node, where, a)
    elif op.startswith("QLinear") or op in ("ConvInteger", "MatMulInteger"):
        raise r.fail(
            f"{where}: operator-oriented quantised ONNX (QLinear* / *Integer) is not "
            "supported; quantise to the QDQ format, or import the float model"
        )
    else:
        raise r.fail(f"{where}: not supported; supported: {', '.join(SUPPORTED)}")


def read_onnx(
    source: str | Path, *, dataset: str = "mnist", mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> FloatModel:  # fmt: skip
    """The float architecture and weights of an ONNX model (see the module docstring);
    ``mean`` / ``std`` say how pixels became its input, ``(p / 255 - mean) / std``."""
    onnx = _onnx()
    path = Path(source)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise ModelImportError(str(path), "cannot read: no such file") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelImportError(str(path), f"not a readable ONNX file ({exc})") from None
    r = _Reader(model, str(path))
    for index, node in enumerate(model.graph.node):
        _map_node(r, index, node)
    last = r.src(r.output, "the graph output")
    if not r.nodes or r.nodes[-1]["name"] != last:
        raise r.fail("the graph output must be the last mapped node's output")
    channels = r.shapes["input"][0] if len(r.shapes["input"]) == 3 else 1
    arch = {
        "dataset": dataset,
        "input_shape": list(r.shapes["input"]),
        "mean": list(mean) if mean is not None else [0.0] * channels,
        "std": list(std) if std is not None else [1.0] * channels,
        "nodes": r.nodes,
    }
    fm = FloatModel(arch, r.weights, dict(Counter(n["op"] for n in r.nodes)), r.edges)
    if r.quant:
        fm.fixed, fm.quantized = _qdq_params(r)
    return fm


_SAME = ("maxpool", "avgpool", "flatten", "pad")


def _qdq_params(r: _Reader):
    """Every tensor's (scale, zero point) and the weighted nodes' int8 codes of a QDQ model.
    An op TFLite keeps the quantisation of (pools, PAD, RESHAPE) takes its input's when no
    QuantizeLinear follows it; a ReLU the quantiser folded into the output range (zero point
    -128, no Relu node left) becomes a fused RELU, which clamps exactly as the range does."""
    if "input" not in r.quant:
        raise r.fail("a QDQ model must quantise its input with a QuantizeLinear")
    fixed = {"input": r.quant["input"]}
    for n in r.nodes:
        name, src = n["name"], n["inputs"][0]
        if n["op"] in _SAME:
            if r.quant.get(name, fixed[src]) != fixed[src]:
                raise r.fail(f"{name} ({n['op']}): quantised apart from its input (TFLite's "
                             "pools, PAD and RESHAPE keep their input's quantisation)")  # fmt: skip
            fixed[name] = fixed[src]
            continue
        if name not in r.quant:
            raise r.fail(f"{name} ({n['op']}): no QuantizeLinear after it (a partly quantised "
                         "model)")  # fmt: skip
        fixed[name] = r.quant[name]
        if n.get("activation") == "none" and fixed[name][1] == -128 and n["op"] in _FUSES:
            n["activation"] = "relu"
    quantized = {}
    for name, (q, w_scale, bias) in r.qweights.items():
        node = next(n for n in r.nodes if n["name"] == name)
        s_in = fixed[node["inputs"][0]][0]
        expected = np.float32(s_in) * w_scale.astype(np.float32)
        bias_scale = r.qconst_bias_scale.get(name)
        if bias is not None and not np.allclose(bias_scale, expected, rtol=1e-6, atol=0):
            bias = None  # another bias scale than s_in s_w: requantised from the float bias
        quantized[name] = (q, w_scale, bias)
    return fixed, quantized


def import_onnx(
    source: str | Path,
    calibration: npt.NDArray[np.uint8] | None,
    *,
    name: str | None = None,
    dataset: str = "mnist",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    requantization: str = "tflm",
    percentile: float = 100.0,
) -> tuple[ImportResult, FloatModel]:
    """Read an ONNX model and quantise it (``quantize_onnx``): the int8 graph, with what the
    import found, and the float model."""
    fm = read_onnx(source, dataset=dataset, mean=mean, std=std)
    result = quantize_onnx(fm, calibration, name=name or Path(source).stem, source=str(source),
                           requantization=requantization, percentile=percentile)  # fmt: skip
    return result, fm


def quantize_onnx(
    fm: FloatModel, calibration: npt.NDArray[np.uint8] | None, *, name: str, source: str,
    requantization: str = "tflm", percentile: float = 100.0,
) -> ImportResult:  # fmt: skip
    """The int8 graph of a float model read by ``read_onnx``, calibrated on uint8
    ``calibration`` images (N, C, H, W); a QDQ model keeps its own quantisation (no images)."""
    try:
        g = quantize_graph(name, fm.arch, fm.weights, None if fm.is_quantized else calibration,
                           percentile=percentile, requantization=requantization,
                           fixed=fm.fixed, quantized=fm.quantized)  # fmt: skip
    except ValueError as exc:
        raise ModelImportError(source, f"cannot quantise: {exc}") from None
    if fm.is_quantized:
        edges = [*fm.edges, "a QDQ model: its own int8 weights, biases and activation "
                 f"quantisation, computed in accelsim's {requantization} arithmetic"]  # fmt: skip
    else:
        edges = [*fm.edges, f"quantised by accelsim on {len(calibration):,} calibration images "
                 "(per-tensor asymmetric activations, per-channel symmetric weights)"]  # fmt: skip
    return ImportResult(g, source, op_counts(g), {}, edges, {})


def float_logits(fm: FloatModel, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """The float model's logits on uint8 images (its own normalisation)."""
    return fm.logits(normalize_images(images, fm.arch["mean"], fm.arch["std"]))


__all__ = ["SUPPORTED", "FloatModel", "float_logits", "import_onnx", "quantize_onnx", "read_onnx"]
