"""Model files, version 2: a graph network as a YAML description plus an ``.npz`` of arrays.

    version: 2
    network:
      name: resblock
      dataset: cifar10
      input: {tensor: x, mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}
      output: logits
      requantization: tflm
      weights: resblock.npz               # relative to this file
      weights_sha256: 3f...               # optional; checked when present
      accuracy: {float: 0.9, int8: 0.9, split: test, images: 10000}   # optional
      tensors:
        - {name: x, shape: [3, 32, 32], scale: 0.0186, zero_point: -14}
        - {name: c1, shape: [16, 32, 32], scale: 0.0421, zero_point: -128}
      nodes:
        - {name: c1, op: CONV_2D, inputs: [x], output: c1, stride: 1,
           padding: [1, 1, 1, 1], activation: relu}

The ``.npz`` holds, per weighted node N, ``N.weight`` (int8), ``N.bias`` (int32) and
``N.weight_scale`` (float64 holding float32 values). Multipliers are not stored: they are
TFLite's derivation from the scales. Read with ``allow_pickle=False``. ``load_graph`` also reads
version 1 files (chains), as ``graph_from_network`` of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.config.checks import (
    Ctx,
    float_in,
    int_in,
    number_list,
    one_of,
    only_keys,
    read_yaml,
    string,
    write_yaml,
)
from accelsim.errors import ModelFormatError
from accelsim.functional import graph_ref
from accelsim.functional.graph import Graph, Node, TensorInfo, graph_from_network
from accelsim.functional.graph_check import OPS, REQUANTIZATIONS, WEIGHTED
from accelsim.functional.modelio import (
    DATASETS,
    _accuracy,
    _read_npz,
    load_network,
    resolve_model_path,
    write_arrays,
)

# Per op: the attributes a node may carry, and which of them it must.
ATTRS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "CONV_2D": ((), ("stride", "padding", "activation")),
    "DEPTHWISE_CONV_2D": ((), ("stride", "padding", "activation", "depth_multiplier")),
    "FULLY_CONNECTED": ((), ("activation",)),
    "MAX_POOL_2D": (("size",), ("stride", "padding", "activation")),
    "AVERAGE_POOL_2D": (("size",), ("stride", "padding", "activation")),
    "MEAN": ((), ()),
    "ADD": ((), ("activation",)),
    "CONCATENATION": ((), ("axis",)),
    "PAD": (("padding",), ()),
    "RESHAPE": (("shape",), ("order",)),
}
_ARRAYS = ("weight", "bias", "weight_scale")


def load_graph(source: str | Path) -> Graph:
    """Load and validate a graph network by zoo name or path (model file version 1 or 2)."""
    path = resolve_model_path(source)
    ctx = Ctx(path)
    raw = only_keys(read_yaml(path), ctx, required=("version", "network"))
    version = raw["version"]
    if version not in (1, 2) or isinstance(version, bool):
        ctx.at("version").fail("1 (a chain) or 2 (a graph)", version)
    if version == 1:
        return graph_from_network(load_network(path))
    ctx = ctx.at("network")
    body = only_keys(
        raw["network"],
        ctx,
        required=("name", "dataset", "input", "output", "weights", "tensors", "nodes"),
        optional=("weights_sha256", "accuracy", "requantization"),
    )
    raw_input = only_keys(body["input"], ctx.at("input"), required=("tensor", "mean", "std"))
    npz_path = path.parent / string(body, "weights", ctx)
    if not npz_path.exists():
        ctx.at("weights").fail(
            f"a weights file beside the description ({npz_path} does not exist)", body["weights"]
        )
    arrays = _read_npz(npz_path, body.get("weights_sha256"), ctx)
    tensors = _tensors(body["tensors"], ctx.at("tensors"))
    nodes = _nodes(body["nodes"], ctx.at("nodes"), arrays, npz_path)
    used = {f"{n.name}.{k}" for n in nodes if n.op in WEIGHTED for k in _ARRAYS}
    stray = sorted(set(arrays) - used)
    if stray:
        raise ModelFormatError(npz_path, f"arrays no node uses: {', '.join(stray[:5])}")
    return Graph(
        string(body, "name", ctx),
        _dataset(body, ctx, path),
        string(raw_input, "tensor", ctx.at("input")),
        string(body, "output", ctx),
        tensors,
        tuple(nodes),
        tuple(number_list(raw_input, "mean", ctx.at("input"), -1e6, 1e6)),
        tuple(number_list(raw_input, "std", ctx.at("input"), 1e-12, 1e6)),
        one_of(body, "requantization", ctx, REQUANTIZATIONS, "tflm"),
        str(path),
        _accuracy(body["accuracy"], ctx.at("accuracy")) if "accuracy" in body else None,
    )


def _dataset(body: Any, ctx: Ctx, path: Path) -> str:
    """A built-in dataset name, or a user's ``.npz`` / image folder relative to the model file
    (kept as an absolute path)."""
    value = string(body, "dataset", ctx)
    if value in DATASETS:
        return value
    target = (path.parent / value).resolve()
    if not ((target.suffix == ".npz" and target.is_file()) or target.is_dir()):
        ctx.at("dataset").fail(
            f"one of {', '.join(DATASETS)}, or a .npz file or image folder relative to the model "
            f"file ({target} does not exist)",
            value,
        )
    return str(target)


def _dataset_entry(dataset: str, path: Path) -> str:
    """What ``save_graph`` writes: a built-in name, else the path relative to the model file
    when it can be, else absolute."""
    if dataset in DATASETS:
        return dataset
    try:
        return os.path.relpath(Path(dataset).resolve(), path.resolve().parent)
    except ValueError:  # another drive on Windows
        return str(Path(dataset).resolve())


def _tensors(raw: Any, ctx: Ctx) -> dict[str, TensorInfo]:
    if not isinstance(raw, list) or not raw:
        ctx.fail("a non-empty list of tensors", raw)
    out: dict[str, TensorInfo] = {}
    for i, item in enumerate(raw):
        c = ctx.at(i)
        item = only_keys(item, c, required=("name", "shape", "scale", "zero_point"))
        name = string(item, "name", c)
        if name in out:
            c.at("name").fail("a tensor name not used before", name)
        shape = tuple(int(v) for v in number_list(item, "shape", c, 1, 1 << 24, integer=True))
        if len(shape) not in (1, 3):
            c.at("shape").fail("[channels, height, width] or [features]", list(shape))
        scale = float_in(item, "scale", c, 0.0, 1e9, lo_open=True)
        out[name] = TensorInfo(name, shape, scale, int_in(item, "zero_point", c, -128, 127))
    return out


def _nodes(raw: Any, ctx: Ctx, arrays: Mapping[str, np.ndarray], npz: Path) -> list[Node]:
    if not isinstance(raw, list) or not raw:
        ctx.fail("a non-empty list of nodes", raw)
    nodes = []
    for i, item in enumerate(raw):
        c = ctx.at(i)
        op = one_of(item if isinstance(item, Mapping) else {}, "op", c, OPS)
        required, optional = ATTRS[op]
        item = only_keys(
            item,
            c,
            required=("name", "op", "inputs", "output", *required),
            optional=optional,
        )
        name = string(item, "name", c)
        inputs = item["inputs"]
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(t, str) for t in inputs)
        ):
            c.at("inputs").fail("a non-empty list of tensor names", inputs)
        attrs = {k: _attr(k, item, c) for k in (*required, *optional) if k in item}
        weights = (
            [_weight_array(arrays, f"{name}.{k}", npz) for k in _ARRAYS] if op in WEIGHTED else []
        )
        nodes.append(Node(name, op, tuple(inputs), string(item, "output", c), attrs, *weights))
    return nodes


def _attr(key: str, item: Mapping[str, Any], ctx: Ctx) -> Any:
    if key in ("stride", "depth_multiplier"):
        return int_in(item, key, ctx, 1, 64)
    if key == "axis":
        return int_in(item, key, ctx, 0, 0)
    if key == "activation":
        return one_of(item, key, ctx, graph_ref.ACTIVATIONS)
    if key == "order":
        return one_of(item, key, ctx, ("chw", "hwc"))
    if key == "padding":
        value = number_list(item, key, ctx, 0, 64, integer=True, min_len=4)
        if len(value) != 4:
            ctx.at(key).fail("[top, bottom, left, right]", list(value))
        return tuple(int(v) for v in value)
    if key == "size":
        value = number_list(item, key, ctx, 1, 64, integer=True, min_len=2)
        if len(value) != 2:
            ctx.at(key).fail("[height, width]", list(value))
        return tuple(int(v) for v in value)
    value = number_list(item, key, ctx, 1, 1 << 24, integer=True)  # RESHAPE shape
    if len(value) not in (1, 3):
        ctx.at(key).fail("[channels, height, width] or [features]", list(value))
    return tuple(int(v) for v in value)


def _weight_array(arrays: Mapping[str, np.ndarray], key: str, npz: Path) -> np.ndarray:
    if key not in arrays:
        raise ModelFormatError(npz, f"missing array {key}")
    arr = arrays[key]
    want = {"weight": np.int8, "bias": np.int32, "weight_scale": np.float64}[key.rsplit(".", 1)[1]]
    if arr.dtype != want:
        raise ModelFormatError(npz, f"{key}: expected {np.dtype(want)}, got {arr.dtype}")
    arr = np.array(arr, copy=True)
    arr.setflags(write=False)
    return arr


def graph_hash(g: Graph) -> str:
    """SHA-256 of everything that determines a graph's arithmetic: tensors, nodes, arrays and
    the requantisation mode."""
    h = hashlib.sha256(repr((g.input, g.output, g.requantization, g.mean, g.std)).encode())
    for t in g.tensors.values():
        h.update(repr((t.name, tuple(t.shape), float(t.scale), int(t.zero_point))).encode())
    for n in g.nodes:
        h.update(repr(_node_description(n)).encode())
        for key in _ARRAYS:
            arr = getattr(n, key)
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def save_graph(g: Graph, path: Path | str) -> Path:
    """Write ``path`` (YAML, version 2) and the ``.npz`` beside it; returns the YAML path."""
    path = Path(path)
    npz_path = path.with_suffix(".npz")
    arrays = {
        f"{n.name}.{k}": np.asarray(getattr(n, k))
        for n in g.nodes
        if n.op in WEIGHTED
        for k in _ARRAYS
    }
    body: dict[str, Any] = {
        "name": g.name,
        "dataset": _dataset_entry(g.dataset, path),
        "input": {"tensor": g.input, "mean": list(g.mean), "std": list(g.std)},
        "output": g.output,
        "requantization": g.requantization,
        **write_arrays(npz_path, arrays, g.accuracy),
    }
    body["tensors"] = [
        {
            "name": t.name,
            "shape": list(t.shape),
            "scale": float(t.scale),
            "zero_point": int(t.zero_point),
        }
        for t in g.tensors.values()
    ]
    body["nodes"] = [_node_description(n) for n in g.nodes]
    write_yaml(path, {"version": 2, "network": body})
    return path


def _node_description(n: Node) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "name": n.name,
        "op": n.op,
        "inputs": list(n.inputs),
        "output": n.output,
    }
    for key, value in n.attrs.items():
        desc[key] = list(value) if isinstance(value, tuple) else value
    return desc


__all__ = ["graph_hash", "load_graph", "save_graph"]
