"""Incremental propagation of single-neuron changes equals a naive full re-run, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.functional.incremental import single_change_classes
from accelsim.functional.modelio import load_network
from accelsim.functional.network import Network, classify, forward_all, quantize_images


def _naive(
    net: Network, outs: tuple, layer: int, index: np.ndarray, values: np.ndarray
) -> np.ndarray:
    changed = np.repeat(outs[layer], index.size, axis=0)
    changed.reshape(index.size, -1)[np.arange(index.size), index] = values
    return classify(forward_all(net, changed, start=layer + 1)[-1])


def _check_all_layers(
    net: Network, images: np.ndarray, rng: np.random.Generator, per_layer: int
) -> int:
    outs_all = forward_all(net, quantize_images(net, images))
    changed_classes = 0
    for b in range(len(images)):
        outs = tuple(o[b : b + 1] for o in outs_all)
        for layer in net.neuron_layers:
            n = outs[layer][0].size
            index = rng.integers(0, n, per_layer)
            bits = rng.integers(0, 8, per_layer)
            flips = (outs[layer].reshape(-1)[index].astype(np.int64) ^ (1 << bits)).astype(np.int8)
            values = np.where(
                rng.random(per_layer) < 0.5, flips, rng.integers(-128, 128, per_layer)
            )
            values[:3] = outs[layer].reshape(-1)[index[:3]]  # unchanged values keep the class
            got = single_change_classes(net, outs, layer, index, values)
            want = _naive(net, outs, layer, index, values.astype(np.int8))
            np.testing.assert_array_equal(got, want)
            changed_classes += int(np.sum(want != classify(outs[-1])[0]))
    return changed_classes


def test_incremental_equals_naive_on_tiny_net(tiny_net, tiny_images, rng) -> None:
    assert _check_all_layers(tiny_net, tiny_images[:8], rng, 300) > 0


@pytest.mark.parametrize("name", ["lenet5", "mlp7"])
def test_incremental_equals_naive_on_zoo(name: str, rng: np.random.Generator) -> None:
    net = load_network(name)
    images = rng.integers(
        0, 256, (3, *net.input_shape), dtype=np.uint8
    )  # random: many flips matter
    assert _check_all_layers(net, images, rng, 400) > 0
