"""Model files: a YAML description plus an ``.npz`` of int8/int32/float64 arrays.

    version: 1
    network:
      name: lenet5
      dataset: mnist                      # mnist | cifar10
      input: {shape: [1, 28, 28], mean: [0.0], std: [1.0]}
      weights: lenet5.npz                 # relative to this file
      weights_sha256: 3f...               # optional; checked when present
      accuracy: {float: 0.99, int8: 0.99, split: test, images: 10000}   # optional
      layers:
        - {type: conv2d, name: conv1, in_channels: 1, out_channels: 6, kernel: 5,
           stride: 1, padding: 0, relu: true}
        - {type: maxpool2d, name: pool1, size: 2, stride: 2}
        - {type: flatten, name: flatten}
        - {type: dense, name: fc1, in_features: 256, out_features: 120, relu: true}

The ``.npz`` holds ``input_scale`` and, per Conv2D/Dense layer L, ``L.weight`` (int8, in
[-127, 127]), ``L.bias``, ``L.multiplier``, ``L.shift`` (int32, per output channel),
``L.weight_scale`` (float64, per channel) and ``L.output_scale`` (float64 scalar). It is read
with ``allow_pickle=False``. The multiplier and shift must be TFLite's derivation from the
scales rounded to float32 (``tflite_multiplier``: what TFLite Micro computes from a ``.tflite``);
files written before that rule, whose multipliers quantise the float64 product
``input_scale * weight_scale / output_scale``, still load as written.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import files
from accelsim.config.checks import (
    Ctx,
    boolean,
    float_in,
    header,
    int_in,
    number_list,
    one_of,
    only_keys,
    read_yaml,
    string,
    write_yaml,
)
from accelsim.config.workload import GRAPH_ZOO_NAMES, ZOO_NAMES
from accelsim.errors import ConfigError, ModelFormatError
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, Shape
from accelsim.functional.network import Accuracy, Network
from accelsim.functional.reference import quantize_multiplier, tflite_multiplier

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
DATASETS = ("mnist", "cifar10")
LAYER_TYPES = ("conv2d", "dense", "maxpool2d", "flatten")
_PER_LAYER = ("weight", "bias", "multiplier", "shift", "weight_scale", "output_scale")


def resolve_model_path(source: str | Path) -> Path:
    """A zoo name (``lenet5``) or a path to a model description."""
    shipped = (*ZOO_NAMES, *(n for n in GRAPH_ZOO_NAMES if (ZOO_DIR / f"{n}.yaml").is_file()))
    if str(source) in shipped:
        return ZOO_DIR / f"{source}.yaml"
    path = Path(source)
    if not path.is_file():
        raise ModelFormatError(path, f"no such model file (zoo names: {', '.join(shipped)})")
    return path


def load_network(source: str | Path) -> Network:
    """Load and validate a network by zoo name or description path."""
    path = resolve_model_path(source)
    ctx = Ctx(path)
    raw = read_yaml(path)
    if isinstance(raw, Mapping) and raw.get("version") == 2:
        raise ModelFormatError(
            path,
            "a graph network (model file version 2): load_graph or load_model reads it",
        )
    body = only_keys(
        header(raw, ctx, "network"),
        ctx.at("network"),
        required=("name", "dataset", "input", "weights", "layers"),
        optional=("weights_sha256", "accuracy"),
    )
    ctx = ctx.at("network")
    dataset = one_of(body, "dataset", ctx, DATASETS)
    raw_input = only_keys(body["input"], ctx.at("input"), required=("shape", "mean", "std"))
    shape = tuple(
        int(v) for v in number_list(raw_input, "shape", ctx.at("input"), 1, 4096, integer=True)
    )
    if len(shape) != 3:
        ctx.at("input").at("shape").fail("[channels, height, width]", list(shape))
    mean = number_list(raw_input, "mean", ctx.at("input"), -1e6, 1e6)
    std = number_list(raw_input, "std", ctx.at("input"), 1e-12, 1e6)
    if len(mean) != shape[0] or len(std) != shape[0]:
        ctx.at("input").fail(f"mean and std with {shape[0]} entries (one per channel)", raw_input)
    npz_path = path.parent / string(body, "weights", ctx)
    if not npz_path.exists():
        ctx.at("weights").fail(
            f"a weights file beside the description ({npz_path} does not exist)", body["weights"]
        )
    arrays = _read_npz(npz_path, body.get("weights_sha256"), ctx)
    input_scale = _scalar(arrays, "input_scale", npz_path)
    layers = _build_layers(body["layers"], shape, input_scale, arrays, ctx.at("layers"), npz_path)
    accuracy = _accuracy(body["accuracy"], ctx.at("accuracy")) if "accuracy" in body else None
    return Network(
        string(body, "name", ctx),
        dataset,
        shape,
        input_scale,
        tuple(mean),
        tuple(std),
        layers,
        accuracy,
    )


def _read_npz(path: Path, sha256: Any, ctx: Ctx) -> dict[str, np.ndarray]:
    if path.exists() and not path.is_file():  # a folder, FIFO or device
        raise ModelFormatError(path, "cannot read weights file: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(path, f"cannot read weights file: {exc.strerror or exc}") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ModelFormatError(path, f"SHA-256 differs from {ctx.path}: network.weights_sha256")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise ModelFormatError(path, f"not a plain-array .npz ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ModelFormatError(path, f"corrupt .npz ({exc})") from exc


def _scalar(arrays: Mapping[str, np.ndarray], key: str, path: Path) -> float:
    arr = _array(arrays, key, path, np.float64, ())
    value = float(arr)
    if not np.isfinite(value) or value <= 0:
        raise ModelFormatError(path, f"{key} must be a positive finite scale, got {value}")
    return value


def _array(
    arrays: Mapping[str, np.ndarray], key: str, path: Path, dtype: type, shape: Shape
) -> np.ndarray:
    if key not in arrays:
        raise ModelFormatError(path, f"missing array {key!r}")
    arr = arrays[key]
    if arr.dtype != dtype:
        raise ModelFormatError(path, f"{key}: expected dtype {np.dtype(dtype)}, got {arr.dtype}")
    if arr.shape != shape:
        raise ModelFormatError(path, f"{key}: expected shape {shape}, got {arr.shape}")
    return arr


def _accuracy(raw: Any, ctx: Ctx) -> Accuracy:
    raw = only_keys(raw, ctx, required=("float", "int8", "split", "images"))
    return Accuracy(
        float_in(raw, "float", ctx, 0.0, 1.0),
        float_in(raw, "int8", ctx, 0.0, 1.0),
        one_of(raw, "split", ctx, ("train", "test", "sample")),
        int_in(raw, "images", ctx, 1, 10**9),
    )


def _layer_spec(raw: Any, ctx: Ctx, shape: Shape) -> dict[str, Any]:
    """Validate one layer entry against the shape flowing into it."""
    kind = one_of(
        only_keys(raw, ctx, required=("type", "name"), optional=_ALL_LAYER_KEYS),
        "type",
        ctx,
        LAYER_TYPES,
    )
    keys = _LAYER_KEYS[kind]
    raw = only_keys(raw, ctx, required=("type", "name", *keys[0]), optional=keys[1])
    spec: dict[str, Any] = {"type": kind, "name": string(raw, "name", ctx)}
    if kind in ("conv2d", "maxpool2d") and len(shape) != 3:
        ctx.fail(f"a flatten before a {kind} layer? its input must be (C, H, W)", f"input {shape}")
    if kind == "dense" and len(shape) != 1:
        ctx.fail("a flatten before this dense layer (its input must be a vector)", f"input {shape}")
    if kind == "conv2d":
        spec["in_channels"] = int_in(raw, "in_channels", ctx, shape[0], shape[0])
        spec["out_channels"] = int_in(raw, "out_channels", ctx, 1, 65536)
        spec["padding"] = int_in(raw, "padding", ctx, 0, 64, 0)
        spec["kernel"] = int_in(
            raw, "kernel", ctx, 1, min(shape[1], shape[2]) + 2 * spec["padding"]
        )
        spec["stride"] = int_in(raw, "stride", ctx, 1, 64, 1)
        spec["relu"] = boolean(raw, "relu", ctx)
    elif kind == "dense":
        spec["in_features"] = int_in(raw, "in_features", ctx, shape[0], shape[0])
        spec["out_features"] = int_in(raw, "out_features", ctx, 1, 1 << 20)
        spec["relu"] = boolean(raw, "relu", ctx)
    elif kind == "maxpool2d":
        spec["size"] = int_in(raw, "size", ctx, 1, min(shape[1], shape[2]))
        spec["stride"] = int_in(raw, "stride", ctx, 1, 64, spec["size"])
    return spec


_LAYER_KEYS = {
    "conv2d": (("in_channels", "out_channels", "kernel", "relu"), ("stride", "padding")),
    "dense": (("in_features", "out_features", "relu"), ()),
    "maxpool2d": (("size",), ("stride",)),
    "flatten": ((), ()),
}
_ALL_LAYER_KEYS = tuple(sorted({k for req, opt in _LAYER_KEYS.values() for k in (*req, *opt)}))


def _build_layers(
    raw: Any, shape: Shape, input_scale: float, arrays: dict[str, np.ndarray], ctx: Ctx, npz: Path
) -> tuple[Layer, ...]:
    if not isinstance(raw, list) or not raw:
        ctx.fail("a non-empty list of layers", raw)
    layers: list[Layer] = []
    names: set[str] = set()
    scale, used = input_scale, {"input_scale"}
    for i, item in enumerate(raw):
        spec = _layer_spec(item, ctx.at(i), shape)
        if spec["name"] in names:
            ctx.at(i).at("name").fail("a name not used by an earlier layer", spec["name"])
        names.add(spec["name"])
        layer = _make_layer(spec, shape, scale, arrays, npz)
        if isinstance(layer, Conv2D | Dense):
            scale = layer.output_scale
            used.update(f"{spec['name']}.{key}" for key in _PER_LAYER)
        layers.append(layer)
        shape = layer.out_shape
    if not isinstance(layers[-1], Dense):
        ctx.fail("a dense classifier as the last layer", raw[-1].get("type"))
    extra = sorted(set(arrays) - used)
    if extra:
        raise ModelFormatError(npz, f"arrays not used by any layer: {', '.join(extra)}")
    return tuple(layers)


def _make_layer(
    spec: dict[str, Any], shape: Shape, scale: float, arrays: dict[str, np.ndarray], npz: Path
) -> Layer:
    name, kind = spec["name"], spec["type"]
    if kind == "maxpool2d":
        return MaxPool2D(name, shape, spec["size"], spec["stride"])
    if kind == "flatten":
        return Flatten(name, shape)
    if kind == "conv2d":
        wshape: Shape = (spec["out_channels"], spec["in_channels"], spec["kernel"], spec["kernel"])
    else:
        wshape = (spec["out_features"], spec["in_features"])
    out = wshape[0]
    weight = _array(arrays, f"{name}.weight", npz, np.int8, wshape)
    if weight.size and weight.min() < -127:
        raise ModelFormatError(
            npz, f"{name}.weight: symmetric int8 weights lie in [-127, 127], found -128"
        )
    fields = {
        "bias": _array(arrays, f"{name}.bias", npz, np.int32, (out,)),
        "multiplier": _array(arrays, f"{name}.multiplier", npz, np.int32, (out,)),
        "shift": _array(arrays, f"{name}.shift", npz, np.int32, (out,)),
        "weight_scale": _array(arrays, f"{name}.weight_scale", npz, np.float64, (out,)),
    }
    output_scale = _scalar(arrays, f"{name}.output_scale", npz)
    _check_requant(name, scale, fields, output_scale, npz)
    common = dict(
        name=name,
        in_shape=shape,
        weight=weight,
        input_scale=scale,
        output_scale=output_scale,
        relu=spec["relu"],
        **fields,
    )
    if kind == "conv2d":
        return Conv2D(**common, stride=spec["stride"], padding=spec["padding"])
    return Dense(**common)


def _check_requant(
    name: str, s_in: float, f: dict[str, np.ndarray], s_out: float, npz: Path
) -> None:
    ws = f["weight_scale"]
    if not np.all(np.isfinite(ws)) or np.any(ws <= 0):
        raise ModelFormatError(npz, f"{name}.weight_scale: scales must be positive and finite")
    for c, w_scale in enumerate(ws):
        real = s_in * float(w_scale) / s_out
        try:
            want = tflite_multiplier(s_in, float(w_scale), s_out)
            legacy = quantize_multiplier(real)
        except ValueError:  # a multiplier int32 fixed point cannot hold
            raise ModelFormatError(
                npz,
                f"{name} channel {c}: requantisation multiplier {real:.6g} is out of range "
                f"(input {s_in:.6g} x weight {w_scale:.6g} / output {s_out:.6g})",
            ) from None
        got = (int(f["multiplier"][c]), int(f["shift"][c]))
        if got not in (want, legacy):
            raise ModelFormatError(
                npz,
                f"{name} channel {c}: multiplier/shift {got} do not match the scales "
                f"(input {s_in:.6g} x weight {w_scale:.6g} / output {s_out:.6g} gives {want})",
            )


def save_network(net: Network, path: Path | str) -> Path:
    """Write ``path`` (YAML) and the ``.npz`` beside it; returns the YAML path."""
    path = Path(path)
    npz_path = path.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {"input_scale": np.float64(net.input_scale)}
    layers = []
    for layer in net.layers:
        layers.append(layer_description(layer))
        if isinstance(layer, Conv2D | Dense):
            for key in _PER_LAYER:
                value = getattr(layer, key)
                arrays[f"{layer.name}.{key}"] = (
                    np.float64(value) if key == "output_scale" else value
                )
    body: dict[str, Any] = {
        "name": net.name,
        "dataset": net.dataset,
        "input": {"shape": list(net.input_shape), "mean": list(net.mean), "std": list(net.std)},
        **write_arrays(npz_path, arrays, net.accuracy),
        "layers": layers,
    }
    write_yaml(path, {"version": 1, "network": body})
    return path


def write_arrays(
    npz_path: Path, arrays: Mapping[str, np.ndarray], accuracy: Accuracy | None
) -> dict[str, Any]:
    """Write the ``.npz`` of a model file; its description keys: ``weights``,
    ``weights_sha256`` and (when known) ``accuracy``."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    files.write_bytes(npz_path, buffer.getvalue())
    keys: dict[str, Any] = {
        "weights": npz_path.name,
        "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
    }
    if accuracy is not None:
        keys["accuracy"] = {
            "float": accuracy.float_accuracy,
            "int8": accuracy.int8_accuracy,
            "split": accuracy.split,
            "images": accuracy.n_images,
        }
    return keys


def layer_description(layer: Layer) -> dict[str, Any]:
    """The YAML entry of one layer."""
    if isinstance(layer, Conv2D):
        o, c, k, _ = layer.weight.shape
        return {
            "type": "conv2d",
            "name": layer.name,
            "in_channels": c,
            "out_channels": o,
            "kernel": k,
            "stride": layer.stride,
            "padding": layer.padding,
            "relu": layer.relu,
        }
    if isinstance(layer, Dense):
        o, f = layer.weight.shape
        return {
            "type": "dense",
            "name": layer.name,
            "in_features": f,
            "out_features": o,
            "relu": layer.relu,
        }
    if isinstance(layer, MaxPool2D):
        return {"type": "maxpool2d", "name": layer.name, "size": layer.size, "stride": layer.stride}
    return {"type": "flatten", "name": layer.name}


def network_hash(net: Network) -> str:
    """SHA-256 of everything that determines the network's arithmetic (structure and arrays)."""
    h = hashlib.sha256()
    h.update(repr((net.input_shape, net.input_scale, net.mean, net.std)).encode())
    for layer in net.layers:
        h.update(repr(sorted(layer_description(layer).items())).encode())
        if isinstance(layer, Conv2D | Dense):
            for key in ("weight", "bias", "multiplier", "shift"):
                h.update(np.ascontiguousarray(getattr(layer, key)).tobytes())
    return h.hexdigest()


__all__ = ["ConfigError", "ModelFormatError", "load_network", "network_hash", "save_network"]
