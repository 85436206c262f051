"""The zoo's graph networks (model files version 2): load, match TFLite Micro, keep their
recorded accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim import (
    GRAPH_ZOO_NAMES,
    ZOO_DIR,
    classify,
    graph_forward,
    graph_n_neurons,
    graph_to_tflite,
    load_dataset,
    load_graph,
    quantize_graph_images,
)
from tests.conftest import data_dir_or_fail
from tests.unit.interop.test_tflite_micro import tflm_logits

SHIPPED = [n for n in GRAPH_ZOO_NAMES if (ZOO_DIR / f"{n}.yaml").is_file()]


@pytest.mark.integration
@pytest.mark.parametrize("name", SHIPPED)
def test_graph_zoo_network_equals_tflite_micro(name: str) -> None:
    g = load_graph(name)
    assert g.accuracy is not None
    assert abs(g.accuracy.int8_accuracy - g.accuracy.float_accuracy) <= 0.01  # within 1 point
    assert graph_n_neurons(g) > 0
    data = load_dataset(g.dataset, "test", data_dir=data_dir_or_fail(), n_images=24)
    x = quantize_graph_images(g, data.images)
    np.testing.assert_array_equal(tflm_logits(graph_to_tflite(g), x), graph_forward(g, x))


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_graph_zoo_accuracy_is_what_the_file_records(name: str) -> None:
    g = load_graph(name)
    data = load_dataset(g.dataset, "test", data_dir=data_dir_or_fail())
    preds = classify(graph_forward(g, quantize_graph_images(g, data.images)))
    assert float(np.mean(preds == data.labels)) == g.accuracy.int8_accuracy


@pytest.mark.integration
@pytest.mark.parametrize("name", SHIPPED)
def test_graph_zoo_network_in_xnnpack_mode_equals_litert(name: str) -> None:
    """The zoo graph in ``requantization: xnnpack`` (its MEAN and convolutions in XNNPACK's
    arithmetic) against LiteRT's default interpreter, and differing from ``tflm`` mode."""
    from accelsim import Graph
    from tests.unit.interop.test_litert_xnnpack import litert_outputs

    g = load_graph(name)
    xg = Graph(g.name, g.dataset, g.input, g.output, g.tensors, g.nodes, g.mean, g.std,
               requantization="xnnpack")  # fmt: skip
    data = load_dataset(g.dataset, "test", data_dir=data_dir_or_fail(), n_images=64)
    x = quantize_graph_images(g, data.images)
    ours = graph_forward(xg, x)
    np.testing.assert_array_equal(litert_outputs(graph_to_tflite(xg), x), ours)
    assert not np.array_equal(ours, graph_forward(g, x))
