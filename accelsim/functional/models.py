"""What the study needs of a network, for chains (``Network``) and graphs (``Graph``) alike.

A chain's neuron layers are indices into ``net.layers``; a graph's are indices into
``g.nodes`` (its weighted nodes except the classifier). Everything downstream (NVF results,
protection plans, fault populations, campaigns, overheads, timing) is keyed by that index.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accelsim.config.checks import read_yaml
from accelsim.functional.graph import Graph, graph_forward, quantize_graph_images
from accelsim.functional.graphio import graph_hash, load_graph
from accelsim.functional.modelio import load_network, network_hash, resolve_model_path
from accelsim.functional.network import (
    DEFAULT_BATCH,
    Network,
    classify,
    forward,
    predict,
    quantize_images,
)

AnyNetwork = Network | Graph
I8 = npt.NDArray[np.int8]


def load_model(source: str | Path) -> AnyNetwork:
    """A zoo name or model file: a ``Network`` for version 1 files, a ``Graph`` for version 2."""
    path = resolve_model_path(source)
    raw = read_yaml(path)
    if isinstance(raw, dict) and raw.get("version") == 2:
        return load_graph(path)
    return load_network(path)


def neuron_layers(m: AnyNetwork) -> tuple[int, ...]:
    """Indices of the layers (chain) or nodes (graph) whose outputs are neurons."""
    return m.neuron_layers


def layer_shape(m: AnyNetwork, i: int) -> tuple[int, ...]:
    """Output shape (batch axis excluded) of layer or node ``i``."""
    if isinstance(m, Network):
        return tuple(m.layers[i].out_shape)
    return tuple(m.tensors[m.nodes[i].output].shape)


def layer_sizes(m: AnyNetwork) -> dict[int, int]:
    """{neuron layer index: neuron count}."""
    return {i: int(np.prod(layer_shape(m, i))) for i in neuron_layers(m)}


def layer_name(m: AnyNetwork, i: int) -> str:
    return m.layers[i].name if isinstance(m, Network) else m.nodes[i].name


def n_neurons(m: AnyNetwork) -> int:
    return sum(layer_sizes(m).values())


def model_hash(m: AnyNetwork) -> str:
    return network_hash(m) if isinstance(m, Network) else graph_hash(m)


def input_shape(m: AnyNetwork) -> tuple[int, ...]:
    """The (C, H, W) images the network takes."""
    return tuple(m.input_shape if isinstance(m, Network) else m.input_info.shape)


def quantize_inputs(m: AnyNetwork, images: npt.NDArray[np.uint8]) -> I8:
    """uint8 images (N, C, H, W) -> the network's int8 input."""
    if isinstance(m, Network):
        return quantize_images(m, images)
    return quantize_graph_images(m, images)


def model_logits(m: AnyNetwork, x: I8) -> I8:
    """The int8 logits of int8 inputs ``x``."""
    return forward(m, x) if isinstance(m, Network) else graph_forward(m, x)


def model_predict(
    m: AnyNetwork,
    images: npt.NDArray[np.uint8],
    *,
    batch_size: int = DEFAULT_BATCH,
    on_batch: Callable[[int], None] | None = None,
) -> npt.NDArray[np.int64]:
    """Predicted classes of uint8 images (``functional.network.predict`` for chains and
    graphs); ``on_batch(n)`` after every n images."""
    if isinstance(m, Network):
        return predict(m, images, batch_size=batch_size, on_batch=on_batch)
    preds = []
    for start in range(0, len(images), batch_size):
        part = images[start : start + batch_size]
        preds.append(classify(graph_forward(m, quantize_graph_images(m, part))))
        if on_batch is not None:
            on_batch(len(part))
    return np.concatenate(preds) if preds else np.empty(0, np.int64)
