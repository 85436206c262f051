"""Float ONNX import against onnxruntime, and accelsim's int8 quantisation of it.

The models under ``tests/data/models`` come from ``torch.onnx.export`` (PyTorch 2.13.0:
``experiments/models/make_onnx_models.py``); small ones with BatchNormalization, Clip and
unsupported nodes are built here with ``onnx.helper``. The expected float outputs are
onnxruntime's (CPU) on the same inputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from accelsim import load_dataset
from accelsim.functional.graph import graph_forward, quantize_graph_images
from accelsim.functional.quantize import normalize_images
from accelsim.interop.onnx_import import float_logits, import_onnx, read_onnx
from accelsim.interop.tflite_import import ModelImportError
from tests.conftest import DATA, data_dir_or_fail

MODELS = DATA / "models"
ALL = json.loads((MODELS / "models_onnx.json").read_text())["models"]
META = {k: v for k, v in ALL.items() if "from" not in v}  # the float models


def _needs(module: str):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed; the test extra must install it")
        pytest.skip(f"{module} not installed (pip install -e '.[test]')")


def _ort_logits(path_or_bytes, x: np.ndarray) -> np.ndarray:
    ort = _needs("onnxruntime")
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("name", sorted(META))
def test_exported_models_float_forward_equals_onnxruntime(name, rng) -> None:
    m = META[name]
    fm = read_onnx(MODELS / f"{name}.onnx", dataset=m["dataset"], mean=m["mean"], std=m["std"])
    images = rng.integers(0, 256, size=(32, *fm.arch["input_shape"]), dtype=np.uint8)
    x = normalize_images(images, m["mean"], m["std"])
    np.testing.assert_allclose(float_logits(fm, images), _ort_logits(MODELS / f"{name}.onnx", x),
                               rtol=1e-4, atol=1e-4)  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(META))
def test_int8_import_keeps_the_float_models_accuracy(name) -> None:
    m = META[name]
    root = data_dir_or_fail()
    calib = load_dataset(m["dataset"], "train", data_dir=root, n_images=300).images
    test = load_dataset(m["dataset"], "test", data_dir=root, n_images=500)
    result, _ = import_onnx(MODELS / f"{name}.onnx", calib, dataset=m["dataset"],
                             mean=m["mean"], std=m["std"])  # fmt: skip
    g = result.graph
    q = graph_forward(g, quantize_graph_images(g, test.images)).argmax(1)
    f = _ort_logits(MODELS / f"{name}.onnx", normalize_images(test.images, m["mean"], m["std"]))
    f = f.argmax(1)
    assert np.mean(q == f) >= 0.9  # int8 agrees with the float model on most images
    assert abs(np.mean(q == test.labels) - np.mean(f == test.labels)) <= 0.03


@pytest.mark.parametrize("mode", ["tflm", "xnnpack"])
def test_a_qdq_model_keeps_its_own_quantisation(rng, mode) -> None:
    """onnxruntime's QDQ quantisation of resdw_torch: accelsim keeps its int8 weights, biases and
    activation parameters and computes in TFLite's (or XNNPACK's) arithmetic, so the logits may
    differ from onnxruntime's kernels by a step; measured here on 200 random images."""
    m = ALL["resdw_torch_qdq"]
    path = MODELS / "resdw_torch_qdq.onnx"
    result, _ = import_onnx(path, None, dataset="cifar10", mean=m["mean"], std=m["std"],
                            requantization=mode)  # fmt: skip
    g = result.graph
    assert any("a QDQ model" in e for e in result.edges)
    import onnx

    inits = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    conv = next(n for n in g.nodes if n.op == "CONV_2D")
    np.testing.assert_array_equal(conv.weight, inits["stem.0.weight_quantized"])
    np.testing.assert_array_equal(conv.bias, inits["stem.0.bias_quantized"])
    images = rng.integers(0, 256, size=(200, 3, 32, 32), dtype=np.uint8)
    ours = graph_forward(g, quantize_graph_images(g, images))
    theirs = _ort_logits(path, normalize_images(images, m["mean"], m["std"]))
    out = g.tensors[g.output]
    codes = np.round(theirs / out.scale) + out.zero_point
    assert np.abs(codes - ours).max() <= 1
    assert np.mean(codes == ours) >= (0.99 if mode == "xnnpack" else 0.9)
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.97


def _helper_model(nodes, inits, in_shape, out_shape):
    onnx = _needs("onnx")
    h = onnx.helper
    graph = h.make_graph(
        nodes, "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", *in_shape])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", *out_shape])],
        [onnx.numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )  # fmt: skip
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _save(model, tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_batchnorm_is_folded_and_clip_becomes_relu6(tmp_path: Path, rng) -> None:
    h = _needs("onnx").helper
    c = 4
    inits = {
        "w": rng.normal(0, 0.5, (c, 2, 3, 3)), "b": rng.normal(0, 0.1, c),
        "g": rng.uniform(0.5, 2, c), "be": rng.normal(0, 0.2, c), "mu": rng.normal(0, 0.3, c),
        "var": rng.uniform(0.2, 2, c), "lo": np.array(0.0), "hi": np.array(6.0),
        "dw": rng.normal(0, 0.5, (c, 1, 3, 3)), "fw": rng.normal(0, 0.5, (c, 3)),
        "fb": rng.normal(0, 0.1, 3),
    }  # fmt: skip
    nodes = [
        h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 0, 1, 2], strides=[2, 2]),
        h.make_node("BatchNormalization", ["c", "g", "be", "mu", "var"], ["bn"], epsilon=1e-3),
        h.make_node("Clip", ["bn", "lo", "hi"], ["r"]),
        h.make_node("Conv", ["r", "dw"], ["d"], group=c, pads=[1, 1, 1, 1]),
        h.make_node("AveragePool", ["d"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("GlobalAveragePool", ["p"], ["gap"]),
        h.make_node("Flatten", ["gap"], ["f"]),
        h.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=0),
    ]
    path = _save(_helper_model(nodes, inits, (2, 9, 9), (3,)), tmp_path)
    fm = read_onnx(path, mean=[0.5, 0.5], std=[0.25, 0.25])
    assert [n["op"] for n in fm.arch["nodes"]] == ["conv", "dwconv", "avgpool", "mean", "fc"]
    assert fm.arch["nodes"][0]["activation"] == "relu6"
    images = rng.integers(0, 256, size=(16, 2, 9, 9), dtype=np.uint8)
    x = normalize_images(images, [0.5, 0.5], [0.25, 0.25])
    np.testing.assert_allclose(float_logits(fm, images), _ort_logits(path, x), atol=1e-4)
    result, _ = import_onnx(path, images, mean=[0.5, 0.5], std=[0.25, 0.25])
    assert [n.op for n in result.graph.nodes] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("node_args", "message"),
    [
        (("Sigmoid", ["x"], ["y"]), r"node 0 \(Sigmoid 'n'\): not supported; supported: Conv"),
        (("QLinearConv", ["x", "s"], ["y"]), r"operator-oriented quantised ONNX"),
        (("Conv", ["x", "gw"], ["y"], {"group": 2}), r"grouped convolution \(group 2\)"),
        (("MaxPool", ["x"], ["y"], {"kernel_shape": [2, 2], "ceil_mode": 1}), "ceil_mode 1"),
    ],
)
def test_unsupported_nodes_are_refused_with_their_index(tmp_path, rng, node_args, message):
    h = _needs("onnx").helper
    op, ins, outs, *kw = node_args
    node = h.make_node(op, ins, outs, name="n", **(kw[0] if kw else {}))
    inits = {"s": np.array(0.1), "gw": rng.normal(0, 1, (4, 2, 1, 1))}
    path = _save(_helper_model([node], inits, (4, 4, 4), (4, 4, 4)), tmp_path)
    with pytest.raises(ModelImportError, match=message):
        read_onnx(path)


def test_unreadable_files(tmp_path: Path) -> None:
    _needs("onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01garbage\xff\xff")
    with pytest.raises(ModelImportError, match="not a readable ONNX file"):
        read_onnx(tmp_path / "bad.onnx")
    with pytest.raises(ModelImportError, match="no such file"):
        read_onnx(tmp_path / "none.onnx")
