"""An int8 network as a tuple of layers, and bit-exact batched inference over it.

Layer outputs are int8 arrays of shape (N, *layer.out_shape). ``forward`` runs layers
``start .. stop-1`` from the input of layer ``start``; resuming after a layer whose outputs were
changed (a fault, a candidate delta) is ``forward(net, changed, start=layer + 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accelsim.errors import ShapeError
from accelsim.functional import kernels
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, Shape

I8 = npt.NDArray[np.int8]
DEFAULT_BATCH = 256


@dataclass(frozen=True)
class Accuracy:
    """Accuracies recorded when a network was quantised (fractions in [0, 1])."""

    float_accuracy: float
    int8_accuracy: float
    split: str
    n_images: int


@dataclass(frozen=True, eq=False)
class Network:
    """A quantised network: input quantisation plus layers in execution order.

    Pixels p (uint8) of channel c enter as ``clamp(round(((p / 255 - mean[c]) / std[c]) /
    input_scale), -128, 127)``; ``input_lut`` (C, 256) int8 holds that table.
    """

    name: str
    dataset: str
    input_shape: Shape
    input_scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layers: tuple[Layer, ...]
    accuracy: Accuracy | None = None
    input_lut: npt.NDArray[np.int8] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pixels = np.arange(256, dtype=np.float64) / 255.0
        real = (pixels[None, :] - np.asarray(self.mean)[:, None]) / np.asarray(self.std)[:, None]
        lut = np.clip(np.round(real / self.input_scale), -128, 127).astype(np.int8)
        lut.setflags(write=False)
        object.__setattr__(self, "input_lut", lut)

    @property
    def neuron_layers(self) -> tuple[int, ...]:
        """Indices of the layers whose outputs are neurons: Conv2D/Dense except the classifier."""
        weighted = [i for i, layer in enumerate(self.layers) if isinstance(layer, Conv2D | Dense)]
        return tuple(weighted[:-1])

    @property
    def n_neurons(self) -> int:
        return sum(int(np.prod(self.layers[i].out_shape)) for i in self.neuron_layers)

    @property
    def n_parameters(self) -> int:
        return sum(layer.n_parameters for layer in self.layers)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image."""
        return sum(layer.macs for layer in self.layers)

    def layer_index(self, name: str) -> int:
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(f"network {self.name!r} has no layer {name!r}")


def quantize_images(net: Network, images: npt.NDArray[np.uint8]) -> I8:
    """uint8 pixels (N, C, H, W) -> int8 network input, via the network's lookup table."""
    if images.dtype != np.uint8 or images.shape[1:] != net.input_shape:
        raise ShapeError(
            f"{net.name}: expected uint8 images of shape "
            f"(N, {', '.join(map(str, net.input_shape))}),"
            f" got {images.dtype} {images.shape}"
        )
    channels = np.arange(images.shape[1]).reshape(1, -1, 1, 1)
    return net.input_lut[channels, images]


def apply_layer(layer: Layer, x: I8) -> I8:
    """One layer on a batch: (N, *layer.in_shape) int8 -> (N, *layer.out_shape) int8."""
    if x.shape[1:] != layer.in_shape:
        raise ShapeError(f"layer {layer.name}: expected input (N, {layer.in_shape}), got {x.shape}")
    if isinstance(layer, Conv2D):
        return kernels.conv2d_int8(
            x,
            layer.weight,
            layer.bias,
            layer.multiplier,
            layer.shift,
            stride=layer.stride,
            padding=layer.padding,
            relu=layer.relu,
            weight_matrix=layer.weight_matrix,
        )
    if isinstance(layer, Dense):
        return kernels.dense_int8(
            x,
            layer.weight,
            layer.bias,
            layer.multiplier,
            layer.shift,
            relu=layer.relu,
            weight_matrix=layer.weight_matrix,
        )
    if isinstance(layer, MaxPool2D):
        return kernels.maxpool2d_int8(x, size=layer.size, stride=layer.stride)
    if isinstance(layer, Flatten):
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)
    raise TypeError(f"unknown layer type {type(layer).__name__}")


def _batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def forward_all(
    net: Network, x: I8, *, start: int = 0, stop: int | None = None, batch_size: int = DEFAULT_BATCH
) -> tuple[I8, ...]:
    """Every layer's output, layers ``start .. stop-1``; ``x`` is the input of layer ``start``."""
    stop = len(net.layers) if stop is None else stop
    if not 0 <= start <= stop <= len(net.layers):
        raise ShapeError(f"{net.name}: layer range {start}..{stop} outside 0..{len(net.layers)}")
    outs: list[list[I8]] = [[] for _ in range(start, stop)]
    for part in _batches(x.shape[0], batch_size):
        h = x[part]
        for k, layer in enumerate(net.layers[start:stop]):
            h = apply_layer(layer, h)
            outs[k].append(h)
    return tuple(
        np.concatenate(o) if o else np.empty((0, *net.layers[start + k].out_shape), np.int8)
        for k, o in enumerate(outs)
    )


def forward(
    net: Network, x: I8, *, start: int = 0, stop: int | None = None, batch_size: int = DEFAULT_BATCH
) -> I8:
    """Output of layer ``stop - 1`` (default: the logits) from the input of layer ``start``."""
    stop = len(net.layers) if stop is None else stop
    if start == stop:
        return x
    parts = []
    for part in _batches(x.shape[0], batch_size):
        h = x[part]
        for layer in net.layers[start:stop]:
            h = apply_layer(layer, h)
        parts.append(h)
    return (
        np.concatenate(parts) if parts else np.empty((0, *net.layers[stop - 1].out_shape), np.int8)
    )


def replace_neurons(outputs: I8, flat_index: npt.ArrayLike, values: npt.ArrayLike) -> I8:
    """A copy of a layer's outputs (N, ...) with neurons ``flat_index`` (C, H, W order) set to
    ``values`` (broadcast over images)."""
    changed = np.array(outputs, dtype=np.int8, copy=True)
    changed.reshape(changed.shape[0], -1)[:, np.asarray(flat_index)] = np.asarray(values, np.int8)
    return changed


def resume(net: Network, layer: int, outputs: I8, *, batch_size: int = DEFAULT_BATCH) -> I8:
    """Logits when layer ``layer`` produced ``outputs`` (e.g. with some neurons replaced)."""
    return forward(net, outputs, start=layer + 1, batch_size=batch_size)


def classify(logits: I8) -> npt.NDArray[np.int64]:
    """Predicted class per image: argmax of the logits, ties to the lowest index."""
    return np.argmax(logits, axis=1)


def predict(
    net: Network,
    images: npt.NDArray[np.uint8],
    *,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> npt.NDArray[np.int64]:
    """Predicted classes of uint8 images; ``on_batch(n)`` is called after every n images."""
    preds = []
    for part in _batches(images.shape[0], batch_size):
        preds.append(
            classify(forward(net, quantize_images(net, images[part]), batch_size=batch_size))
        )
        if on_batch is not None:
            on_batch(part.stop - part.start)
    return np.concatenate(preds) if preds else np.empty(0, np.int64)
