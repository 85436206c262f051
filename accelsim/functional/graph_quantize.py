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

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.errors import ShapeError
from accelsim.functional.graph import Graph, Node, TensorInfo
from accelsim.functional.network import Accuracy
from accelsim.functional.quantize import _conv_float, batched_accuracy, normalize_images
from accelsim.functional.reference import float32

F64 = npt.NDArray[np.float64]
_ACT = {
    "none": lambda v: v,
    "relu": lambda v: np.maximum(v, 0.0),
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
}


def _dwconv_float(x: F64, w: F64, b: F64, stride: int, padding: int) -> F64:
    """Depthwise convolution (depth multiplier 1): w (C, 1, K, K) in PyTorch's layout."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = w.shape[2]
    oh = (x.shape[2] + 2 * padding - k) // stride + 1
    ow = (x.shape[3] + 2 * padding - k) // stride + 1
    out = np.zeros((x.shape[0], x.shape[1], oh, ow))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += patch * w[None, :, 0, i, j, None, None]
    return out + b.reshape(1, -1, 1, 1)


def float_graph_forward(
    arch: Mapping[str, Any], weights: Mapping[str, np.ndarray], x: F64
) -> dict[str, F64]:
    """Float64 value of every node's output (activations applied) for normalised input x."""
    values: dict[str, F64] = {"input": x}
    for node in arch["nodes"]:
        ins = [values[t] for t in node["inputs"]]
        op, name = node["op"], node["name"]
        if op in ("conv", "dwconv", "fc"):
            w = weights[f"{name}.weight"].astype(np.float64)
            b = weights[f"{name}.bias"].astype(np.float64)
            if op == "conv":
                y = _conv_float(ins[0], w, b, node["stride"], node["padding"])
            elif op == "dwconv":
                y = _dwconv_float(ins[0], w, b, node["stride"], node["padding"])
            else:
                y = ins[0] @ w.T + b
        elif op == "add":
            y = ins[0] + ins[1]
        elif op == "mean":
            y = ins[0].mean(axis=(2, 3))
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
        if node["op"] in ("conv", "dwconv"):
            k, s, p = node["kernel"], node["stride"], node["padding"]
            shapes[node["name"]] = (
                node["out_channels"],
                (src[1] + 2 * p - k) // s + 1,
                (src[2] + 2 * p - k) // s + 1,
            )
        elif node["op"] == "fc":
            shapes[node["name"]] = (node["out_features"],)
        elif node["op"] == "mean":
            shapes[node["name"]] = (src[0],)
        else:
            shapes[node["name"]] = src
    return shapes


def quantize_graph(
    name: str,
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    calibration: npt.NDArray[np.uint8],
    *,
    percentile: float = 100.0,
    accuracy: Accuracy | None = None,
    requantization: str = "tflm",
    per_tensor: bool = False,
) -> Graph:
    """The int8 graph of float ``weights`` (``<node>.weight`` / ``.bias``, PyTorch layouts) of
    ``arch``, calibrated on uint8 ``calibration`` images (N, C, H, W); weights symmetric per
    output channel, or with ``per_tensor`` one scale per weight tensor."""
    if calibration.shape[1:] != tuple(arch["input_shape"]):
        raise ShapeError(
            f"calibration images {calibration.shape} do not fit input {arch['input_shape']}"
        )
    ranges = _ranges(arch, weights, calibration, percentile)
    mean, std = np.asarray(arch["mean"]), np.asarray(arch["std"])
    shapes = _shape(arch)
    lo_in, hi_in = float(np.min((0 - mean) / std)), float(np.max((1 - mean) / std))
    tensors = {"input": TensorInfo("input", shapes["input"], *asymmetric_params(lo_in, hi_in))}
    nodes: list[Node] = []
    for spec in arch["nodes"]:
        nm = spec["name"]
        tensors[nm] = TensorInfo(nm, shapes[nm], *asymmetric_params(*ranges[nm]))
        act = spec.get("activation", "none")
        if spec["op"] in ("conv", "dwconv", "fc"):
            s_in = tensors[spec["inputs"][0]].scale
            nodes.append(_weighted(spec, weights, s_in, act, per_tensor))
        elif spec["op"] == "add":
            nodes.append(Node(nm, "ADD", tuple(spec["inputs"]), nm, {"activation": act}))
        else:
            nodes.append(Node(nm, "MEAN", tuple(spec["inputs"]), nm, {}))
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


def _weighted(
    spec: Mapping[str, Any], weights: Mapping[str, np.ndarray], s_in: float, act: str,
    per_tensor: bool = False,
) -> Node:  # fmt: skip
    nm = spec["name"]
    w = weights[f"{nm}.weight"].astype(np.float64)
    b = weights[f"{nm}.bias"].astype(np.float64)
    if spec["op"] == "dwconv":
        w = w[:, 0]  # (C, 1, K, K) -> (C, K, K)
    out = w.shape[0]
    absmax = np.abs(w.reshape(out, -1)).max(axis=1)
    if per_tensor:
        absmax = absmax.max(keepdims=True)
    w_scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32).astype(np.float64)
    wq = np.clip(np.round(w / w_scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(
        np.int8
    )
    bq = np.clip(np.round(b / (s_in * w_scale)), -(2**31), 2**31 - 1).astype(np.int32)
    if spec["op"] == "fc":
        return Node(
            nm, "FULLY_CONNECTED", tuple(spec["inputs"]), nm, {"activation": act}, wq, bq, w_scale
        )
    p = spec["padding"]
    attrs = {"stride": spec["stride"], "padding": (p, p, p, p), "activation": act}
    op = "CONV_2D" if spec["op"] == "conv" else "DEPTHWISE_CONV_2D"
    if op == "DEPTHWISE_CONV_2D":
        attrs["depth_multiplier"] = 1
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
