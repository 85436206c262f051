"""accelsim's int8 logits against TFLite Micro's interpreter on the same ``.tflite`` file.

The expected values come from a foreign runtime (``tflite-micro``, TFLite Micro's reference
kernels: fixed-point requantisation, multipliers derived from the file's float32 scales), so
these tests fail on any difference in accelsim's arithmetic, its multiplier derivation or the
exporter's layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from accelsim import (
    export_tflite,
    forward,
    load_dataset,
    load_network,
    network_to_tflite,
    quantize_images,
    quantize_multiplier,
    tflite_multiplier,
)
from accelsim.functional.quantize import quantize_network
from accelsim.interop.tflite_file import to_nhwc
from tests.conftest import data_dir_or_fail, random_float_weights


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("tflite-micro is not installed; the test extra must install it")
        pytest.skip("tflite-micro not installed (pip install -e '.[test]')")
    return runtime


def tflm_logits(blob: bytes, x: np.ndarray) -> np.ndarray:
    """Run every image of int8 ``x`` (N, C, H, W) or (N, F) through TFLite Micro."""
    interpreter = _runtime().Interpreter.from_bytes(blob)
    x = to_nhwc(x)
    out = []
    for i in range(x.shape[0]):
        interpreter.set_input(x[i : i + 1], 0)
        interpreter.invoke()
        out.append(interpreter.get_output(0).reshape(-1).copy())
    return np.stack(out)


def _conv(name, c_in, c_out, k, stride, padding, relu=True):
    return dict(
        type="conv2d", name=name, in_channels=c_in, out_channels=c_out, kernel=k,
        stride=stride, padding=padding, relu=relu,
    )  # fmt: skip


# Chains covering every exported case: VALID, SAME-equivalent padding (stride 1, odd kernel),
# explicit PAD (even kernel, stride 2 with asymmetric SAME), pooling with stride < size, a
# Flatten of a multi-channel map (the HWC weight permutation), dense after dense, no ReLU.
CHAINS = {
    "same-and-pad": [
        _conv("c1", 2, 5, 3, 1, 1),
        _conv("c2", 5, 4, 4, 2, 1),
        {"type": "maxpool2d", "name": "p1", "size": 3, "stride": 2},
        {"type": "flatten", "name": "f"},
        {"type": "dense", "name": "d1", "in_features": 16, "out_features": 9, "relu": True},
        {"type": "dense", "name": "d2", "in_features": 9, "out_features": 6, "relu": False},
    ],
    "strided-valid": [
        _conv("c1", 2, 3, 5, 2, 0),
        _conv("c2", 3, 6, 3, 1, 2, relu=False),
        {"type": "maxpool2d", "name": "p1", "size": 2, "stride": 2},
        {"type": "flatten", "name": "f"},
        {"type": "dense", "name": "d1", "in_features": 54, "out_features": 4, "relu": False},
    ],
}


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_random_chains_equal_tflite_micro(chain: str, rng: np.random.Generator) -> None:
    arch = {
        "dataset": "mnist",
        "input_shape": [2, 13, 13],
        "mean": [0.3, 0.5],
        "std": [0.25, 0.2],
        "layers": CHAINS[chain],
    }
    images = rng.integers(0, 256, size=(120, 2, 13, 13), dtype=np.uint8)
    net = quantize_network(chain, arch, random_float_weights(arch, rng), images[:60])
    x = quantize_images(net, images)
    ours = forward(net, x)
    assert np.ptp(ours.astype(int)) > 20  # the logits vary: a constant network would prove nothing
    np.testing.assert_array_equal(tflm_logits(network_to_tflite(net), x), ours)


def _zoo_images(name: str, n: int) -> tuple[object, np.ndarray]:
    net = load_network(name)
    data = load_dataset(net.dataset, "test", data_dir=data_dir_or_fail())
    return net, quantize_images(net, data.images[:n])


@pytest.mark.integration
@pytest.mark.parametrize(("name", "n"), [("lenet5", 2000), ("mlp7", 1000), ("alexnet", 60)])
def test_zoo_logits_equal_tflite_micro(name: str, n: int) -> None:
    net, x = _zoo_images(name, n)
    np.testing.assert_array_equal(tflm_logits(network_to_tflite(net), x), forward(net, x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet5", "mlp7", "alexnet"])
def test_zoo_logits_equal_tflite_micro_on_the_whole_test_set(name: str) -> None:
    net, x = _zoo_images(name, 10_000)
    np.testing.assert_array_equal(tflm_logits(network_to_tflite(net), x), forward(net, x))


def test_export_writes_the_file(tiny_net, tiny_images, tmp_path: Path) -> None:
    path = export_tflite(tiny_net, tmp_path / "tiny.tflite")
    assert path.read_bytes()[4:8] == b"TFL3"  # the flatbuffer's file identifier
    x = quantize_images(tiny_net, tiny_images)
    np.testing.assert_array_equal(tflm_logits(path.read_bytes(), x), forward(tiny_net, x))


def test_tflite_multiplier_uses_float32_scales() -> None:
    # 0.1 is not a float32: its float32 is 0.100000001490116..., so the products differ in the
    # low bits and the two derivations give different int32 multipliers.
    s_in, s_w, s_out = 0.1, 0.003, 0.07
    legacy = quantize_multiplier(s_in * s_w / s_out)
    f32 = [float(np.float32(v)) for v in (s_in, s_w, s_out)]
    assert tflite_multiplier(s_in, s_w, s_out) == quantize_multiplier(f32[0] * f32[1] / f32[2])
    assert tflite_multiplier(s_in, s_w, s_out) != legacy
