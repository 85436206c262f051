"""``.tflite`` import against the runtimes that run the same file.

The models under ``tests/data/models`` come from TFLite's own converter (TensorFlow 2.21.0,
Keras 3: ``experiments/models/make_test_models.py``); the expected logits are TFLite Micro's
interpreter's (``tflm`` mode) and LiteRT's default XNNPACK path's (``xnnpack`` mode) on the same
int8 inputs: random ones, and the real test images when ``ACCELSIM_DATA`` is set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim import load_dataset, load_graph, load_network
from accelsim.functional.graph import graph_forward, graph_from_network, quantize_graph_images
from accelsim.interop.flatbuffer import FbGraph, FbOp, FbTensor, schema, serialize
from accelsim.interop.tflite_file import graph_to_tflite, to_nhwc
from accelsim.interop.tflite_import import ModelImportError, import_tflite
from tests.conftest import DATA, data_dir_or_fail
from tests.unit.interop.test_graph_tflite_micro import Builder
from tests.unit.interop.test_litert_xnnpack import litert_outputs
from tests.unit.interop.test_tflite_micro import _runtime, tflm_logits

MODELS = DATA / "models"
INT8_IO = {"lenet5_keras": "mnist", "resdw_keras": "cifar10"}


def _random_inputs(g, rng, n):
    return rng.integers(-128, 128, size=(n, *g.input_info.shape)).astype(np.int8)


def _real_inputs(g, dataset, n):
    data = load_dataset(dataset, "test", data_dir=data_dir_or_fail(), n_images=n)
    return quantize_graph_images(g, data.images), data.labels


@pytest.mark.parametrize("name", sorted(INT8_IO))
def test_converter_models_equal_tflite_micro_on_random_inputs(name, rng) -> None:
    path = MODELS / f"{name}.tflite"
    g = import_tflite(path, dataset=INT8_IO[name]).graph
    x = _random_inputs(g, rng, 40)
    ours = graph_forward(g, x)
    assert len(np.unique(ours)) > 5
    np.testing.assert_array_equal(tflm_logits(path.read_bytes(), x), ours)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(INT8_IO))
def test_converter_models_equal_tflite_micro_on_test_images(name) -> None:
    path = MODELS / f"{name}.tflite"
    g = import_tflite(path, dataset=INT8_IO[name]).graph
    x, labels = _real_inputs(g, INT8_IO[name], 300)
    ours = graph_forward(g, x)
    np.testing.assert_array_equal(tflm_logits(path.read_bytes(), x), ours)
    assert np.mean(ours.argmax(1) == labels) > 0.15  # a real classifier (10 classes), not noise


@pytest.mark.parametrize("name", sorted(INT8_IO))
def test_converter_models_in_xnnpack_mode_equal_litert(name, rng) -> None:
    path = MODELS / f"{name}.tflite"
    g = import_tflite(path, dataset=INT8_IO[name], requantization="xnnpack").graph
    x = _random_inputs(g, rng, 64)
    ours = graph_forward(g, x)
    np.testing.assert_array_equal(litert_outputs(path.read_bytes(), x).reshape(ours.shape), ours)
    tflm = import_tflite(path, dataset=INT8_IO[name]).graph
    assert not np.array_equal(graph_forward(tflm, x), ours)  # the modes really differ here


def test_float_edges_become_the_int8_input_and_the_logits(rng) -> None:
    """concat_keras takes float32 (QUANTIZE first) and gives DEQUANTIZE(SOFTMAX(logits)):
    accelsim's input is the QUANTIZE output and its output the logits, so TFLite Micro's class
    equals accelsim's wherever the int8 softmax has one largest value."""
    path = MODELS / "concat_keras.tflite"
    result = import_tflite(path)
    g = result.graph
    assert [n.op for n in g.nodes].count("CONCATENATION") == 1
    assert any("SOFTMAX" in e for e in result.edges)
    assert any("QUANTIZE" in e for e in result.edges)
    x = _random_inputs(g, rng, 60)
    info = g.input_info
    floats = (to_nhwc(x).astype(np.float32) - info.zero_point) * np.float32(info.scale)
    interpreter = _runtime().Interpreter.from_bytes(path.read_bytes())
    probs = []
    for i in range(len(x)):
        interpreter.set_input(floats[i : i + 1].astype(np.float32), 0)
        interpreter.invoke()
        probs.append(interpreter.get_output(0).reshape(-1).copy())
    probs = np.stack(probs)
    ours = graph_forward(g, x)
    unique = (probs == probs.max(1, keepdims=True)).sum(1) == 1
    assert unique.sum() >= 30
    np.testing.assert_array_equal(probs.argmax(1)[unique], ours.argmax(1)[unique])


@pytest.mark.parametrize("name", ["lenet5", "mlp7", "resnet20", "mobilenetv2"])
def test_exported_zoo_networks_import_back_to_the_same_logits(name, rng) -> None:
    g = load_graph(name)
    back = import_tflite(graph_to_tflite(g), dataset=g.dataset).graph
    assert back.n_neurons == g.n_neurons
    assert back.macs == g.macs
    assert back.n_parameters == g.n_parameters
    x = _random_inputs(g, rng, 16)
    np.testing.assert_array_equal(graph_forward(back, x), graph_forward(g, x))


def test_import_of_a_chain_keeps_the_chain_graphs_shape() -> None:
    net = load_network("lenet5")
    back = import_tflite(graph_to_tflite(graph_from_network(net))).graph
    assert [n.op for n in back.nodes] == [
        "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
        "FULLY_CONNECTED", "FULLY_CONNECTED",
    ]  # fmt: skip
    assert back.nodes[4].attrs["order"] == "hwc"


def _one_op_model(op_name: str) -> bytes:
    """An int8 (1, 2, 2, 1) -> (1, 2, 2, 1) model of one op (no options)."""
    _, tfl = schema()
    g = FbGraph()
    a = g.tensor(FbTensor("a", (1, 2, 2, 1), tfl.TensorType.INT8, [0.1], [0]))
    b = g.tensor(FbTensor("b", (1, 2, 2, 1), tfl.TensorType.INT8, [1 / 256], [-128]))
    g.ops.append(FbOp(getattr(tfl.BuiltinOperator, op_name), 1, [a], [b]))
    return serialize(g, [a], [b], "one op")


def test_an_unsupported_op_is_refused_with_its_name_and_index() -> None:
    with pytest.raises(ModelImportError, match=r"op 0 \(LOGISTIC\): not supported; supported"):
        import_tflite(_one_op_model("LOGISTIC"))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "no TFL3 identifier"),
        (b"0123456789abcdef", "no TFL3 identifier"),
        ((MODELS / "lenet5_keras.tflite").read_bytes()[:3000], "truncated or corrupt"),
    ],
)
def test_corrupt_files_are_refused_in_one_line(blob, message) -> None:
    with pytest.raises(ModelImportError, match=message) as info:
        import_tflite(blob)
    assert "\n" not in str(info.value)


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelImportError, match=r"missing\.tflite: cannot read"):
        import_tflite(tmp_path / "missing.tflite")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("concat_float.tflite", r"a float model \(input '.*' is float32 and no QUANTIZE"),
        ("concat_int16.tflite", r"holds int16 activations \(16x8 quantisation\)"),
    ],
)
def test_converter_files_of_another_scheme_are_refused(model, message) -> None:
    """The converter's float and 16x8 outputs of the concatenation network."""
    with pytest.raises(ModelImportError, match=message) as info:
        import_tflite(MODELS / model)
    assert model in str(info.value)


def test_a_model_whose_input_is_not_an_image_is_refused(rng) -> None:

    b = Builder(rng, (12,))
    b.weighted("FULLY_CONNECTED", "fc", "x", (5, 12), (5,), activation="none")
    with pytest.raises(ModelImportError, match=r"has shape \[1, 12\]: accelsim imports image"):
        import_tflite(graph_to_tflite(b.graph("fc")))


def test_a_requantising_concatenation_round_trips_through_its_int8_quantize(rng) -> None:
    """The exporter writes an int8 -> int8 QUANTIZE in front of each CONCATENATION input of
    another quantisation; the importer folds it back into the concatenation, which requantises:
    the same graph, the same logits (and TFLite Micro's)."""
    b = Builder(rng, (2, 6, 6))
    b.weighted("CONV_2D", "c1", "x", (3, 2, 3, 3), (3, 6, 6), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.weighted("CONV_2D", "c2", "x", (4, 2, 1, 1), (4, 6, 6))
    b.op("CONCATENATION", "cat", ["c1", "c2", "x"], (9, 6, 6), scale=b.tensors["c1"].scale,
         zp=b.tensors["c1"].zero_point, axis=0)  # fmt: skip
    b.op("MEAN", "gap", ["cat"], (9,), scale=b.tensors["c1"].scale / 2, zp=-100)
    b.weighted("FULLY_CONNECTED", "fc", "gap", (5, 9), (5,))
    g = b.graph("fc")
    blob = graph_to_tflite(g)
    result = import_tflite(blob)
    assert result.folded["QUANTIZE (into CONCATENATION)"] == 2  # c2 and x differ from cat
    assert [n.op for n in result.graph.nodes].count("CONCATENATION") == 1
    x = _random_inputs(g, rng, 32)
    ours = graph_forward(result.graph, x)
    np.testing.assert_array_equal(ours, graph_forward(g, x))
    np.testing.assert_array_equal(tflm_logits(blob, x), ours)
