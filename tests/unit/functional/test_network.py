"""Batched inference, capture of every layer, resuming from a layer with neurons replaced."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.errors import ShapeError
from accelsim.functional import reference as ref
from accelsim.functional.layers import Conv2D, Dense, MaxPool2D
from accelsim.functional.network import (
    classify,
    forward,
    forward_all,
    predict,
    quantize_images,
    replace_neurons,
    resume,
)
from accelsim.functional.quantize import quantize_network
from accelsim.zoo.architectures import ARCHITECTURES
from tests.conftest import random_float_weights


def _reference_forward(net, x):
    """The whole network through reference.py only."""
    outs = []
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            x = ref.conv2d_ref(
                x,
                layer.weight,
                layer.bias,
                layer.multiplier,
                layer.shift,
                stride=layer.stride,
                padding=layer.padding,
                relu=layer.relu,
            )
        elif isinstance(layer, Dense):
            x = ref.dense_ref(
                x, layer.weight, layer.bias, layer.multiplier, layer.shift, relu=layer.relu
            )
        elif isinstance(layer, MaxPool2D):
            x = ref.maxpool2d_ref(x, size=layer.size, stride=layer.stride)
        else:
            x = x.reshape(x.shape[0], -1)
        outs.append(x)
    return outs


def test_forward_all_equals_reference_network(tiny_net, tiny_images) -> None:
    x = quantize_images(tiny_net, tiny_images)
    got = forward_all(tiny_net, x, batch_size=7)
    want = _reference_forward(tiny_net, x)
    assert len(got) == len(tiny_net.layers)
    for g, w, layer in zip(got, want, tiny_net.layers, strict=True):
        assert g.shape == (len(x), *layer.out_shape)
        np.testing.assert_array_equal(g, w)
    # the fixture is meaningful: activations vary, predictions are not constant
    assert len(np.unique(got[0])) > 20
    assert len(np.unique(classify(got[-1]))) > 1


def test_forward_from_any_layer_matches_full_run(tiny_net, tiny_images) -> None:
    x = quantize_images(tiny_net, tiny_images)
    outs = forward_all(tiny_net, x)
    for layer in range(len(tiny_net.layers) - 1):
        np.testing.assert_array_equal(resume(tiny_net, layer, outs[layer]), outs[-1])
        np.testing.assert_array_equal(
            forward(tiny_net, outs[layer], start=layer + 1, stop=layer + 2), outs[layer + 1]
        )


def test_resume_with_replaced_neurons_equals_reference(tiny_net, tiny_images) -> None:
    x = quantize_images(tiny_net, tiny_images)
    outs = forward_all(tiny_net, x)
    layer = 0  # conv c1 output (3, 9, 9)
    changed = replace_neurons(outs[layer], [0, 100, 242], [127, 64, 0])
    assert changed.reshape(len(x), -1)[:, 100].tolist() == [64] * len(x)
    assert np.sum(changed != outs[layer]) > 0
    np.testing.assert_array_equal(
        outs[layer].reshape(len(x), -1)[:, 1:100], changed.reshape(len(x), -1)[:, 1:100]
    )
    expected = _reference_forward_from(tiny_net, layer + 1, changed)[-1]
    np.testing.assert_array_equal(resume(tiny_net, layer, changed), expected)
    np.testing.assert_array_equal(forward_all(tiny_net, x)[layer], outs[layer])


def _reference_forward_from(net, start, x):
    sub = type(net)(
        net.name,
        net.dataset,
        net.input_shape,
        net.input_scale,
        net.mean,
        net.std,
        net.layers[start:],
    )
    return _reference_forward(sub, x)


def test_predict_batches_agree(tiny_net, tiny_images) -> None:
    seen = []
    a = predict(tiny_net, tiny_images, batch_size=3, on_batch=seen.append)
    b = predict(tiny_net, tiny_images, batch_size=1000)
    np.testing.assert_array_equal(a, b)
    assert sum(seen) == len(tiny_images)
    assert seen[0] == 3


def test_classify_breaks_ties_to_lowest_index() -> None:
    logits = np.array([[3, 7, 7, 1], [-128, -128, -128, -128]], dtype=np.int8)
    assert classify(logits).tolist() == [1, 0]


def test_quantize_images_uses_normalisation(tiny_net) -> None:
    px = np.array([0, 51, 255], dtype=np.uint8).reshape(1, 1, 1, 3)
    real = (px / 255.0 - 0.1) / 0.5
    want = np.clip(np.round(real / tiny_net.input_scale), -128, 127)
    img = np.zeros((1, 1, 9, 9), np.uint8)
    img[0, 0, 0, :3] = px.ravel()
    got = quantize_images(tiny_net, img)[0, 0, 0, :3]
    np.testing.assert_array_equal(got, want.ravel())
    assert got.max() == 127  # the input scale covers the largest normalised pixel exactly
    with pytest.raises(ShapeError, match=r"expected uint8 images of shape \(N, 1, 9, 9\)"):
        quantize_images(tiny_net, img.astype(np.int8))


def test_forward_rejects_bad_input(tiny_net) -> None:
    with pytest.raises(ShapeError, match="layer c1: expected input"):
        forward(tiny_net, np.zeros((2, 1, 8, 8), np.int8))
    with pytest.raises(ShapeError, match=r"layer range 3\.\.2"):
        forward_all(tiny_net, np.zeros((2, 1, 9, 9), np.int8), start=3, stop=2)


@pytest.mark.parametrize(
    ("name", "neurons"), [("lenet5", 4684), ("mlp7", 2816), ("alexnet", 103168)]
)
def test_zoo_architectures_have_the_papers_neuron_counts(
    name: str, neurons: int, rng: np.random.Generator
) -> None:
    arch = ARCHITECTURES[name]
    calib = rng.integers(0, 256, (2, *arch["input_shape"]), dtype=np.uint8)
    net = quantize_network(name, arch, random_float_weights(arch, rng), calib)
    assert net.n_neurons == neurons
    assert net.neuron_layers[-1] < len(net.layers) - 1  # the classifier is not a neuron layer


def test_layer_records_are_read_only(tiny_net) -> None:
    layer = tiny_net.layers[0]
    with pytest.raises(ValueError, match="read-only"):
        layer.weight[0, 0, 0, 0] = 1
    with pytest.raises(AttributeError):
        layer.relu = False


@pytest.mark.parametrize(("size", "stride"), [(2, 2), (3, 2), (3, 1)])
def test_maxpool_windows_are_the_pooled_inputs(size, stride) -> None:
    """Reducing the flat input over ``MaxPool2D.windows`` gives the max-pool of the input."""
    pool = MaxPool2D("p", (3, 7, 6), size, stride)
    x = np.random.default_rng(size * 10 + stride).integers(-128, 128, (3, 7, 6))
    c, oh, ow = pool.out_shape
    want = np.array(
        [
            [
                [x[k, y * stride : y * stride + size, v * stride : v * stride + size].max()
                 for v in range(ow)]
                for y in range(oh)
            ]
            for k in range(c)
        ]
    )  # fmt: skip
    assert pool.windows().shape == (c * oh * ow, size * size)
    np.testing.assert_array_equal(x.ravel()[pool.windows()].max(axis=1), want.ravel())
