"""Post-training quantisation of float graph architectures to TFLite's full int8 scheme.

    g = quantize_graph("resnet20", GRAPH_ARCHITECTURES["resnet20"], weights, calibration)

Architectures are the node lists of ``accelsim.zoo.graph_architectures`` (``conv``, ``dwconv``,
``fc``, ``add``, ``mean``; BatchNorm already folded into the weights). What the converter writes
for int8 (TFLite's quantisation spec):

- activations per tensor, asymmetric: the calibrated range ``[min(0, lo), max(0, hi)]`` (lo, hi
  the ``percentile`` and ``100 - percentile`` of the float values on the calibration images)
  gives ``scale = (hi - lo) / 255`` and ``zero_point = round(-128 - lo / scale)``; an output
  after RELU / RELU6 therefore has zero point -128;
- weights symmetric per output channel, ``s_w = max |W[c]| / 127``, int8 in [-127, 127];
- biases int32 at ``s_in * s_w[c]``;
- the input covers every value the pixel normalisation can produce.

Every scale is a float32 value. Float inference here is float64 (``float_graph_forward``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.errors import ShapeError
from accelsim.functional.graph import Graph, Node, TensorInfo
from accelsim.functional.network import Accuracy
from accelsim.functional.quantize import _conv_float, batched_accuracy, normalize_images
from accelsim.functional.reference import float32

F64 = npt.NDArray[np.float64]
_SAME_QUANT = {"maxpool": "MAX_POOL_2D", "avgpool": "AVERAGE_POOL_2D", "flatten": "RESHAPE",
               "pad": "PAD"}  # fmt: skip
_ACT = {
    "none": lambda v: v,
    "relu": lambda v: np.maximum(v, 0.0),
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
}


def _pad4(p: int | Sequence[int]) -> tuple[int, int, int, int]:
    """A padding as (top, bottom, left, right)."""
    if isinstance(p, int | np.integer):
        return (int(p),) * 4
    t, b, left, r = p
    return int(t), int(b), int(left), int(r)


def _pad_float(x: F64, p: tuple[int, int, int, int], value: float = 0.0) -> F64:
    t, b, left, r = p
    return np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=value)


def _dwconv_float(x: F64, w: F64, b: F64, stride: int, padding: int | Sequence[int]) -> F64:
    """Depthwise convolution: w (C * dm, 1, KH, KW) in PyTorch's layout, output channel
    ``c dm + m`` filtering input channel c."""
    dm = w.shape[0] // x.shape[1]
    xp = _pad_float(np.repeat(x, dm, axis=1) if dm > 1 else x, _pad4(padding))
    kh, kw = w.shape[2], w.shape[3]
    oh = (xp.shape[2] - kh) // stride + 1
    ow = (xp.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += patch * w[None, :, 0, i, j, None, None]
    return out + b.reshape(1, -1, 1, 1)


def _pool_float(x: F64, node: Mapping[str, Any]) -> F64:
    """Max or average pooling over the in-bounds elements of each window (TFLite's)."""
    kh, kw = node["size"]
    s, p = node["stride"], _pad4(node.get("padding", 0))
    is_max = node["op"] == "maxpool"
    xp = _pad_float(x, p, -np.inf if is_max else 0.0)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    if is_max:
        return win.max(axis=(4, 5))
    ones = _pad_float(np.ones((1, 1, *x.shape[2:])), p)
    count = np.lib.stride_tricks.sliding_window_view(ones, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    return win.sum(axis=(4, 5)) / count.sum(axis=(4, 5))


def float_graph_forward(
    arch: Mapping[str, Any], weights: Mapping[str, np.ndarray], x: F64
) -> dict[str, F64]:
    """Float64 value of every node's output (activations applied) for normalised input x.

    Ops: ``conv``, ``dwconv`` (``stride``, ``padding`` an int or (top, bottom, left, right)),
    ``fc``, ``add``, ``mean`` (global average pooling), ``maxpool`` / ``avgpool`` (``size``
    (kh, kw), ``stride``, ``padding``), ``flatten`` (C-H-W order), ``concat`` (channels),
    ``pad`` (zeros, ``padding``)."""
    values: dict[str, F64] = {"input": x}
    for node in arch["nodes"]:
        ins = [values[t] for t in node["inputs"]]
        op, name = node["op"], node["name"]
        if op in ("conv", "dwconv", "fc"):
            w = weights[f"{name}.weight"].astype(np.float64)
            b = weights[f"{name}.bias"].astype(np.float64)
            if op == "conv":
                xp = _pad_float(ins[0], _pad4(node["padding"]))
                y = _conv_float(xp, w, b, node["stride"], 0)
            elif op == "dwconv":
                y = _dwconv_float(ins[0], w, b, node["stride"], node["padding"])
            else:
                y = ins[0] @ w.T + b
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "mean":
            y = ins[0].mean(axis=(2, 3))
        elif op in ("maxpool", "avgpool"):
            y = _pool_float(ins[0], node)
        elif op == "flatten":
            y = ins[0].reshape(len(ins[0]), -1)
        elif op == "concat":
            y = np.concatenate(ins, axis=1)
        elif op == "pad":
            y = _pad_float(ins[0], _pad4(node["padding"]))
        else:
            raise ShapeError(f"unknown float op {op!r} in node {name!r}")
        values[name] = _ACT[node.get("activation", "none")](y)
    return values


def float_graph_accuracy(
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.uint8],
    *,
    batch_size: int = 250,
) -> float:
    """Top-1 accuracy of the float graph (float64 inference)."""
    last = arch["nodes"][-1]["name"]
    return batched_accuracy(
        lambda x: float_graph_forward(arch, weights, x)[last],
        arch["mean"], arch["std"], images, labels, batch_size,
    )  # fmt: skip


def asymmetric_params(lo: float, hi: float) -> tuple[float, int]:
    """TFLite's int8 (scale, zero point) of the float range [lo, hi], widened to hold 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = float32((hi - lo) / 255.0)
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero_point


def _ranges(
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    images: npt.NDArray[np.uint8],
    percentile: float,
    batch_size: int = 250,
) -> dict[str, tuple[float, float]]:
    samples: dict[str, list[F64]] = {}
    for i in range(0, len(images), batch_size):
        x = normalize_images(images[i : i + batch_size], arch["mean"], arch["std"])
        for name, v in float_graph_forward(arch, weights, x).items():
            if name != "input":
                samples.setdefault(name, []).append(v.ravel())
    out = {}
    for name, parts in samples.items():
        v = np.concatenate(parts)
        out[name] = (float(np.percentile(v, 100 - percentile)), float(np.percentile(v, percentile)))
    return out


def _shape(arch: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Shape of every node's output, from the architecture's geometry."""
    shapes = {"input": tuple(arch["input_shape"])}
    for node in arch["nodes"]:
        src = shapes[node["inputs"][0]]
        op, name = node["op"], node["name"]
        if op in ("conv", "dwconv", "maxpool", "avgpool", "pad"):
            t, b, left, r = _pad4(node.get("padding", 0))
            if op == "pad":
                shapes[name] = (src[0], src[1] + t + b, src[2] + left + r)
                continue
            kh, kw = node["size"] if "size" in node else _kernel(node["kernel"])
            s = node["stride"]
            c = src[0] if "size" in node else node["out_channels"]
            shapes[name] = (c, (src[1] + t + b - kh) // s + 1, (src[2] + left + r - kw) // s + 1)
        elif op == "fc":
            shapes[name] = (node["out_features"],)
        elif op == "mean":
            shapes[name] = (src[0],)
        elif op == "flatten":
            shapes[name] = (int(np.prod(src)),)
        elif op == "concat":
            parts = [shapes[t] for t in node["inputs"]]
            shapes[name] = (sum(p[0] for p in parts), *src[1:])
        else:
            shapes[name] = src
    return shapes


def _kernel(k: int | Sequence[int]) -> tuple[int, int]:
    return (int(k), int(k)) if isinstance(k, int | np.integer) else (int(k[0]), int(k[1]))


def quantize_graph(
    name: str,
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    calibration: npt.NDArray[np.uint8] | None,
    *,
    percentile: float = 100.0,
    accuracy: Accuracy | None = None,
    requantization: str = "tflm",
    per_tensor: bool = False,
    fixed: Mapping[str, tuple[float, int]] | None = None,
    quantized: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] | None = None,
) -> Graph:
    """The int8 graph of float ``weights`` (``<node>.weight`` / ``.bias``, PyTorch layouts) of
    ``arch``, calibrated on uint8 ``calibration`` images (N, C, H, W); weights symmetric per
    output channel, or with ``per_tensor`` one scale per weight tensor.

    An already-quantised model (ONNX QDQ) gives every tensor's (scale, zero point) in ``fixed``
    (``"input"`` and each node; no calibration then) and, per weighted node, ``quantized``:
    its int8 weights, their scales and its int32 bias (None: quantised from the float one)."""
    if fixed is None:
        if calibration is None or calibration.shape[1:] != tuple(arch["input_shape"]):
            raise ShapeError(
                f"calibration images {getattr(calibration, 'shape', None)} do not fit input "
                f"{arch['input_shape']}"
            )
        ranges = _ranges(arch, weights, calibration, percentile)
    mean, std = np.asarray(arch["mean"]), np.asarray(arch["std"])
    shapes = _shape(arch)
    lo_in, hi_in = float(np.min((0 - mean) / std)), float(np.max((1 - mean) / std))
    in_quant = fixed["input"] if fixed else asymmetric_params(lo_in, hi_in)
    tensors = {"input": TensorInfo("input", shapes["input"], *in_quant)}
    nodes: list[Node] = []
    for spec in arch["nodes"]:
        nm, op, ins = spec["name"], spec["op"], tuple(spec["inputs"])
        if op in _SAME_QUANT and not fixed:  # TFLite's pools, PAD and RESHAPE keep their input's
            src = tensors[ins[0]]
            tensors[nm] = TensorInfo(nm, shapes[nm], src.scale, src.zero_point)
        else:
            quant = fixed[nm] if fixed else asymmetric_params(*ranges[nm])
            tensors[nm] = TensorInfo(nm, shapes[nm], *quant)
        act = spec.get("activation", "none")
        if op in ("conv", "dwconv", "fc") and quantized and nm in quantized:
            nodes.append(_prequantized(spec, quantized[nm], weights, tensors[ins[0]].scale, act))
        elif op in ("conv", "dwconv", "fc"):
            s_in = tensors[ins[0]].scale
            nodes.append(_weighted(spec, weights, s_in, act, per_tensor))
        elif op == "add":
            nodes.append(Node(nm, "ADD", ins, nm, {"activation": act}))
        elif op == "mean":
            nodes.append(Node(nm, "MEAN", ins, nm, {}))
        elif op in ("maxpool", "avgpool"):
            attrs = {"size": tuple(spec["size"]), "stride": spec["stride"],
                     "padding": _pad4(spec.get("padding", 0)), "activation": act}  # fmt: skip
            nodes.append(Node(nm, _SAME_QUANT[op], ins, nm, attrs))
        elif op == "flatten":
            nodes.append(Node(nm, "RESHAPE", ins, nm, {"shape": shapes[nm], "order": "chw"}))
        elif op == "concat":
            nodes.append(Node(nm, "CONCATENATION", ins, nm, {"axis": 0}))
        else:
            nodes.append(Node(nm, "PAD", ins, nm, {"padding": _pad4(spec["padding"])}))
    return Graph(
        name,
        arch["dataset"],
        "input",
        arch["nodes"][-1]["name"],
        tensors,
        tuple(nodes),
        tuple(arch["mean"]),
        tuple(arch["std"]),
        requantization,
        f"quantised {name}",
        accuracy,
    )


def _prequantized(
    spec: Mapping[str, Any], q: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    weights: Mapping[str, np.ndarray], s_in: float, act: str,
) -> Node:  # fmt: skip
    wq, w_scale, bq = q
    wq = wq[:, 0] if spec["op"] == "dwconv" else wq
    w_scale = np.asarray(w_scale, np.float32).astype(np.float64).reshape(-1)
    if bq is None:
        b = weights[f"{spec['name']}.bias"].astype(np.float64)
        bq = np.clip(np.round(b / (s_in * w_scale)), -(2**31), 2**31 - 1).astype(np.int32)
    return _node(spec, act, np.asarray(wq, np.int8), np.asarray(bq, np.int32), w_scale)


def _weighted(
    spec: Mapping[str, Any], weights: Mapping[str, np.ndarray], s_in: float, act: str,
    per_tensor: bool = False,
) -> Node:  # fmt: skip
    nm = spec["name"]
    w = weights[f"{nm}.weight"].astype(np.float64)
    b = weights[f"{nm}.bias"].astype(np.float64)
    if spec["op"] == "dwconv":
        w = w[:, 0]  # (C dm, 1, KH, KW) -> (C dm, KH, KW)
    out = w.shape[0]
    absmax = np.abs(w.reshape(out, -1)).max(axis=1)
    if per_tensor:
        absmax = absmax.max(keepdims=True)
    w_scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32).astype(np.float64)
    wq = np.clip(np.round(w / w_scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(
        np.int8
    )
    bq = np.clip(np.round(b / (s_in * w_scale)), -(2**31), 2**31 - 1).astype(np.int32)
    return _node(spec, act, wq, bq, w_scale)


def _node(spec: Mapping[str, Any], act: str, wq: np.ndarray, bq: np.ndarray,
          w_scale: np.ndarray) -> Node:  # fmt: skip
    nm = spec["name"]
    if spec["op"] == "fc":
        return Node(
            nm, "FULLY_CONNECTED", tuple(spec["inputs"]), nm, {"activation": act}, wq, bq, w_scale
        )
    attrs = {"stride": spec["stride"], "padding": _pad4(spec["padding"]), "activation": act}
    op = "CONV_2D" if spec["op"] == "conv" else "DEPTHWISE_CONV_2D"
    if op == "DEPTHWISE_CONV_2D":
        attrs["depth_multiplier"] = spec.get("depth_multiplier", 1)
    return Node(nm, op, tuple(spec["inputs"]), nm, attrs, wq, bq, w_scale)


def random_graph_weights(
    arch: Mapping[str, Any], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Random float weights of a graph architecture (He-normal weights, small biases): for
    tests and for benchmarks whose results depend on the geometry only."""
    weights = {}
    for n in arch["nodes"]:
        if n["op"] == "conv":
            shape: tuple[int, ...] = (n["out_channels"], n["in_channels"], n["kernel"], n["kernel"])
        elif n["op"] == "dwconv":
            shape = (n["out_channels"], 1, n["kernel"], n["kernel"])
        elif n["op"] == "fc":
            shape = (n["out_features"], n["in_features"])
        else:
            continue
        std = np.sqrt(2 / np.prod(shape[1:]))
        weights[f"{n['name']}.weight"] = rng.normal(0, std, shape).astype(np.float32)
        weights[f"{n['name']}.bias"] = rng.normal(0, 0.05, shape[0]).astype(np.float32)
    return weights


__all__ = [
    "asymmetric_params",
    "float_graph_accuracy",
    "float_graph_forward",
    "quantize_graph",
    "random_graph_weights",
]
