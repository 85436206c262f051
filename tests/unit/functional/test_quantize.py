"""Post-training quantisation: per-channel weights, int32 biases, calibrated activation scales."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.errors import ShapeError
from accelsim.functional.layers import Conv2D, Dense
from accelsim.functional.network import forward_all, quantize_images
from accelsim.functional.quantize import float_forward_all, normalize_images, quantize_network
from tests.conftest import TINY_ARCH, random_float_weights


def test_weights_are_symmetric_per_channel(tiny_net) -> None:
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    for layer in tiny_net.layers:
        if not isinstance(layer, Conv2D | Dense):
            continue
        w = weights[f"{layer.name}.weight"].astype(np.float64)
        flat = np.abs(layer.weight.reshape(layer.out_channels, -1))
        assert flat.max(axis=1).tolist() == [127] * layer.out_channels
        np.testing.assert_allclose(
            layer.weight_scale, np.abs(w.reshape(len(w), -1)).max(axis=1) / 127
        )
        per_channel = layer.weight_scale.reshape(-1, *[1] * (w.ndim - 1))
        assert np.all(np.abs(layer.weight * per_channel - w) <= per_channel / 2 + 1e-12)
        b = weights[f"{layer.name}.bias"].astype(np.float64)
        np.testing.assert_array_equal(
            layer.bias, np.round(b / (layer.input_scale * layer.weight_scale))
        )


def test_first_layer_is_within_one_lsb_of_real_arithmetic(tiny_net, tiny_images) -> None:
    """int8 output vs the exact real value of the same quantised operands."""
    x = quantize_images(tiny_net, tiny_images)
    layer = tiny_net.layers[0]
    got = forward_all(tiny_net, x, stop=1)[0].astype(np.float64)
    fw = {
        f"{layer.name}.weight": layer.weight.astype(np.float64),
        f"{layer.name}.bias": layer.bias.astype(np.float64),
    }
    spec = dict(TINY_ARCH["layers"][0], relu=False)
    acc = float_forward_all([spec], fw, x.astype(np.float64))[0]
    real = acc * (layer.input_scale * layer.weight_scale.reshape(1, -1, 1, 1)) / layer.output_scale
    want = np.clip(real, 0, 127)
    # TFLite rounds twice (high multiply, then divide by 2^-shift): at most 2^(shift-1) past 0.5
    assert np.abs(got - want).max() <= 0.5 + 2.0 ** (int(layer.shift.max()) - 1)
    assert len(np.unique(got)) > 20


def test_activation_scale_covers_calibration_max(tiny_net, tiny_images) -> None:
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    x = normalize_images(tiny_images, TINY_ARCH["mean"], TINY_ARCH["std"])
    outs = float_forward_all(TINY_ARCH["layers"], weights, x)
    for spec, out in zip(TINY_ARCH["layers"], outs, strict=True):
        if spec["type"] in ("conv2d", "dense"):
            layer = tiny_net.layers[tiny_net.layer_index(spec["name"])]
            assert layer.output_scale == pytest.approx(np.abs(out).max() / 127)


def test_percentile_calibration_clips_outliers(tiny_images) -> None:
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    full = quantize_network("t", TINY_ARCH, weights, tiny_images, percentile=100.0)
    clipped = quantize_network("t", TINY_ARCH, weights, tiny_images, percentile=90.0)
    assert clipped.layers[0].output_scale < full.layers[0].output_scale


def test_int8_network_tracks_float_network(tiny_net, tiny_images) -> None:
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    real = float_forward_all(
        TINY_ARCH["layers"],
        weights,
        normalize_images(tiny_images, TINY_ARCH["mean"], TINY_ARCH["std"]),
    )[-1]
    q = (
        forward_all(tiny_net, quantize_images(tiny_net, tiny_images))[-1].astype(np.float64)
        * tiny_net.layers[-1].output_scale
    )
    assert np.corrcoef(real.ravel(), q.ravel())[0, 1] > 0.98


def test_calibration_shape_is_checked(tiny_images) -> None:
    with pytest.raises(ShapeError, match="do not fit input"):
        quantize_network(
            "t",
            TINY_ARCH,
            random_float_weights(TINY_ARCH, np.random.default_rng(0)),
            tiny_images[:, :, :8],
        )
