"""Post-training quantisation: float weights (numpy) -> int8 ``Network``.

Weights: symmetric per output channel, ``s_w[c] = max|W[c]| / 127``, values in [-127, 127].
Biases: int32 at ``s_in * s_w[c]``. Every scale is a float32 value (a
``.tflite`` holds float32) and the multipliers are TFLite's derivation from them
(``tflite_multiplier``). Activations: symmetric per tensor; each Conv2D/Dense
output scale is calibrated on float activations of sample images as ``q / 127``, where q is the
``percentile`` of the absolute activations (100 = the maximum). The input scale covers every
value the pixel normalisation can produce. Float inference here (float64) gives the float
accuracy the int8 network is compared against.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.errors import ShapeError
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, Shape
from accelsim.functional.network import Accuracy, Network
from accelsim.functional.reference import float32, tflite_multiplier

F64 = npt.NDArray[np.float64]


def normalize_images(
    images: npt.NDArray[np.uint8], mean: Sequence[float], std: Sequence[float]
) -> F64:
    """uint8 (N, C, H, W) -> float64 ``(p / 255 - mean[c]) / std[c]``."""
    m = np.asarray(mean, np.float64).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float64).reshape(1, -1, 1, 1)
    return (images.astype(np.float64) / 255.0 - m) / s


def _conv_float(x: F64, w: F64, b: F64, stride: int, padding: int) -> F64:
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    view = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    view = view[:, :, ::stride, ::stride][:, :, :oh, :ow]  # (n, c, oh, ow, kh, kw)
    cols = view.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    out = cols @ w.reshape(o, -1).T + b
    return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)


def float_forward_all(
    layers: Sequence[Mapping[str, Any]], weights: Mapping[str, np.ndarray], x: F64
) -> list[F64]:
    """Float64 output of every layer (descriptions as in a model YAML), ReLU applied."""
    outs = []
    for spec in layers:
        kind, name = spec["type"], spec["name"]
        if kind == "conv2d":
            x = _conv_float(
                x,
                weights[f"{name}.weight"].astype(np.float64),
                weights[f"{name}.bias"].astype(np.float64),
                spec["stride"],
                spec["padding"],
            )
        elif kind == "dense":
            x = x @ weights[f"{name}.weight"].astype(np.float64).T + weights[f"{name}.bias"]
        elif kind == "maxpool2d":
            k, s = spec["size"], spec["stride"]
            view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
            x = view.max(axis=(4, 5))
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        if spec.get("relu"):
            x = np.maximum(x, 0.0)
        outs.append(x)
    return outs


def batched_accuracy(
    logits_of: Callable[[F64], F64],
    mean: Sequence[float],
    std: Sequence[float],
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.uint8],
    batch_size: int,
) -> float:
    """Top-1 accuracy of ``logits_of`` (normalised float64 images -> logits), batch by batch."""
    correct = 0
    for i in range(0, len(labels), batch_size):
        logits = logits_of(normalize_images(images[i : i + batch_size], mean, std))
        correct += int(np.sum(np.argmax(logits, axis=1) == labels[i : i + batch_size]))
    return correct / max(len(labels), 1)


def float_accuracy(
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    images: npt.NDArray[np.uint8],
    labels: npt.NDArray[np.uint8],
    *,
    batch_size: int = 500,
) -> float:
    """Top-1 accuracy of the float network (float64 inference)."""
    return batched_accuracy(
        lambda x: float_forward_all(arch["layers"], weights, x)[-1],
        arch["mean"], arch["std"], images, labels, batch_size,
    )  # fmt: skip


def _activation_ranges(
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    images: npt.NDArray[np.uint8],
    percentile: float,
    batch_size: int = 500,
) -> dict[str, float]:
    """Calibrated |activation| bound per Conv2D/Dense layer name."""
    samples: dict[str, list[F64]] = {}
    for i in range(0, len(images), batch_size):
        x = normalize_images(images[i : i + batch_size], arch["mean"], arch["std"])
        for spec, out in zip(
            arch["layers"], float_forward_all(arch["layers"], weights, x), strict=True
        ):
            if spec["type"] in ("conv2d", "dense"):
                samples.setdefault(spec["name"], []).append(np.abs(out).ravel())
    return {
        name: float(np.percentile(np.concatenate(v), percentile)) for name, v in samples.items()
    }


def _quantize_layer(
    spec: Mapping[str, Any], w: F64, b: F64, s_in: float, s_out: float, shape: Shape
) -> Layer:
    out = w.shape[0]
    absmax = np.abs(w.reshape(out, -1)).max(axis=1)
    w_scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32).astype(np.float64)
    wq = np.clip(np.round(w / w_scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(
        np.int8
    )
    bq = np.clip(np.round(b / (s_in * w_scale)), -(2**31), 2**31 - 1).astype(np.int32)
    mult_shift = [tflite_multiplier(s_in, float(ws), s_out) for ws in w_scale]
    common = dict(
        name=spec["name"],
        in_shape=shape,
        weight=wq,
        bias=bq,
        multiplier=np.array([m for m, _ in mult_shift], np.int32),
        shift=np.array([s for _, s in mult_shift], np.int32),
        weight_scale=w_scale.astype(np.float64),
        input_scale=s_in,
        output_scale=s_out,
        relu=bool(spec["relu"]),
    )
    if spec["type"] == "conv2d":
        return Conv2D(**common, stride=spec["stride"], padding=spec["padding"])
    return Dense(**common)


def quantize_network(
    name: str,
    arch: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    calibration: npt.NDArray[np.uint8],
    *,
    percentile: float = 100.0,
    accuracy: Accuracy | None = None,
) -> Network:
    """Quantise float ``weights`` (``<layer>.weight`` / ``.bias``, PyTorch layouts) of ``arch``
    (a zoo architecture: dataset, input_shape, mean, std, layers) using ``calibration`` images."""
    if calibration.shape[1:] != tuple(arch["input_shape"]):
        raise ShapeError(
            f"calibration images {calibration.shape} do not fit input {arch['input_shape']}"
        )
    ranges = _activation_ranges(arch, weights, calibration, percentile)
    mean, std = np.asarray(arch["mean"]), np.asarray(arch["std"])
    extremes = np.abs(np.stack([(0 - mean) / std, (1 - mean) / std]))
    s_in = input_scale = float32(extremes.max() / 127.0)
    shape: Shape = tuple(arch["input_shape"])
    layers: list[Layer] = []
    for spec in arch["layers"]:
        if spec["type"] in ("conv2d", "dense"):
            s_out = float32(max(ranges[spec["name"]], 1e-8) / 127.0)
            w = weights[f"{spec['name']}.weight"].astype(np.float64)
            b = weights[f"{spec['name']}.bias"].astype(np.float64)
            layer: Layer = _quantize_layer(spec, w, b, s_in, s_out, shape)
            s_in = s_out
        elif spec["type"] == "maxpool2d":
            layer = MaxPool2D(spec["name"], shape, spec["size"], spec["stride"])
        else:
            layer = Flatten(spec["name"], shape)
        layers.append(layer)
        shape = layer.out_shape
    return Network(
        name,
        arch["dataset"],
        tuple(arch["input_shape"]),
        input_scale,
        tuple(arch["mean"]),
        tuple(arch["std"]),
        tuple(layers),
        accuracy,
    )


def with_tflite_multipliers(net: Network) -> Network:
    """``net`` with every scale rounded to float32 and every multiplier/shift re-derived from
    them as TFLite does (``tflite_multiplier``); weights and biases unchanged.

    Networks quantised before accelsim followed that rule derived multipliers from float64
    scales, which differ in the low bits (every channel of the shipped LeNet-5) and move a few
    images' logits by one step against TFLite Micro.
    """
    layers: list[Layer] = []
    s_in = float32(net.input_scale)
    for layer in net.layers:
        if isinstance(layer, Conv2D | Dense):
            w_scale = layer.weight_scale.astype(np.float32).astype(np.float64)
            s_out = float32(layer.output_scale)
            pairs = [tflite_multiplier(s_in, float(ws), s_out) for ws in w_scale]
            layer = dataclasses.replace(
                layer,
                multiplier=np.array([m for m, _ in pairs], np.int32),
                shift=np.array([s for _, s in pairs], np.int32),
                weight_scale=w_scale,
                input_scale=s_in,
                output_scale=s_out,
            )
            s_in = s_out
        layers.append(layer)
    return dataclasses.replace(net, input_scale=float32(net.input_scale), layers=tuple(layers))
