"""Post-training quantisation of graph architectures to TFLite's asymmetric int8 scheme."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.functional.graph import graph_forward, quantize_graph_images
from accelsim.functional.graph_quantize import (
    asymmetric_params,
    float_graph_forward,
    quantize_graph,
    random_graph_weights,
)
from accelsim.functional.quantize import normalize_images
from accelsim.interop.tflite_file import graph_to_tflite
from accelsim.zoo.graph_architectures import GRAPH_ARCHITECTURES
from tests.unit.interop.test_tflite_micro import tflm_logits


def test_asymmetric_params_by_hand() -> None:
    # [0, 6]: scale 6/255, zero point -128 (a RELU6 output)
    scale, zp = asymmetric_params(0.0, 6.0)
    assert scale == float(np.float32(6 / 255))
    assert zp == -128
    # [-1, 3]: scale 4/255; -128 - (-1)/(4/255) = -128 + 63.75 -> -64
    assert asymmetric_params(-1.0, 3.0) == (float(np.float32(4 / 255)), -64)
    # a range that excludes 0 is widened to hold it
    assert asymmetric_params(2.0, 5.0)[1] == -128


@pytest.mark.parametrize("name", sorted(GRAPH_ARCHITECTURES))
def test_quantised_graph_follows_the_float_graph(name: str, rng) -> None:
    arch = GRAPH_ARCHITECTURES[name]
    weights = random_graph_weights(arch, rng)
    images = rng.integers(0, 256, size=(72, 3, 32, 32), dtype=np.uint8)
    g = quantize_graph(name, arch, weights, images[:48])
    relu_outputs = [n.output for n in g.nodes if n.attr("activation") in ("relu", "relu6")]
    assert all(g.tensors[t].zero_point == -128 for t in relu_outputs)
    q = graph_forward(g, quantize_graph_images(g, images[48:])).astype(float)
    out = g.tensors[g.output]
    dequantised = (q - out.zero_point) * out.scale
    x = normalize_images(images[48:], arch["mean"], arch["std"])
    expected = float_graph_forward(arch, weights, x)[arch["nodes"][-1]["name"]]
    assert np.corrcoef(dequantised.ravel(), expected.ravel())[0, 1] > 0.99
    assert np.mean(dequantised.argmax(1) == expected.argmax(1)) >= 0.9
    # the quantised graph is one TFLite Micro runs with the same logits
    x8 = quantize_graph_images(g, images[48:52])
    np.testing.assert_array_equal(tflm_logits(graph_to_tflite(g), x8), graph_forward(g, x8))
