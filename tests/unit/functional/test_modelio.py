"""Model files: round trip, and an error naming the file and the problem for every corruption."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from accelsim.errors import ConfigError, ModelFormatError
from accelsim.functional.modelio import load_network, network_hash, save_network
from accelsim.functional.network import Accuracy, forward_all, quantize_images
from accelsim.functional.quantize import quantize_network
from tests.conftest import TINY_ARCH, random_float_weights


@pytest.fixture
def saved(tiny_net, tmp_path: Path) -> Path:
    return save_network(tiny_net, tmp_path / "tiny.yaml")


def _rewrite_npz(path: Path, **changes: object) -> None:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)


def _rewrite_yaml(path: Path, edit) -> None:
    doc = yaml.safe_load(path.read_text())
    edit(doc["network"])
    doc["network"].pop("weights_sha256", None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_round_trip_is_identical(tiny_net, tiny_images, saved: Path) -> None:
    loaded = load_network(saved)
    assert network_hash(loaded) == network_hash(tiny_net)
    x = quantize_images(tiny_net, tiny_images)
    for a, b in zip(forward_all(tiny_net, x), forward_all(loaded, x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hash_changes_with_one_weight(tiny_net, tiny_images) -> None:
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    weights["d2.weight"] = weights["d2.weight"].copy()
    weights["d2.weight"][0, 0] += 0.3
    other = quantize_network("tiny", TINY_ARCH, weights, tiny_images)
    assert network_hash(other) != network_hash(tiny_net)


def test_accuracy_is_saved(tiny_images, tmp_path: Path) -> None:
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    acc = Accuracy(0.5, 0.25, "test", 40)
    net = quantize_network("tiny", TINY_ARCH, weights, tiny_images, accuracy=acc)
    assert load_network(save_network(net, tmp_path / "a.yaml")).accuracy == acc


NPZ_CASES = [
    (
        {"c1__weight": np.zeros((3, 1, 3, 3), np.int16)},
        r"c1.weight: expected dtype int8, got int16",
    ),
    (
        {"c1__weight": np.zeros((3, 1, 5, 5), np.int8)},
        r"c1.weight: expected shape \(3, 1, 3, 3\), got \(3, 1, 5, 5\)",
    ),
    (
        {"c1__weight": np.full((3, 1, 3, 3), -128, np.int8)},
        r"symmetric int8 weights lie in \[-127, 127\]",
    ),
    ({"d1__bias": None}, r"missing array 'd1.bias'"),
    ({"d1__bias": np.zeros(7, np.int64)}, r"d1.bias: expected dtype int32, got int64"),
    (
        {"d1__multiplier": np.full(7, 12345, np.int32)},
        r"d1 channel 0: multiplier/shift \(12345, .*\) do not match the scales",
    ),
    ({"c2__weight_scale": np.zeros(4)}, r"c2.weight_scale: scales must be positive and finite"),
    ({"input_scale": np.float64(-1.0)}, r"input_scale must be a positive finite scale"),
    ({"c2__output_scale": np.zeros(2)}, r"c2.output_scale: expected shape \(\), got \(2,\)"),
    ({"stray": np.zeros(3)}, r"arrays not used by any layer: stray"),
]


@pytest.mark.parametrize(("changes", "message"), NPZ_CASES)
def test_corrupt_arrays_are_named(saved: Path, changes: dict, message: str) -> None:
    _rewrite_yaml(saved, lambda body: None)  # drop the checksum so the content checks run
    _rewrite_npz(saved.with_suffix(".npz"), **changes)
    with pytest.raises(ModelFormatError, match=message) as info:
        load_network(saved)
    assert str(saved.with_suffix(".npz")) in str(info.value)


def test_checksum_mismatch_is_refused(saved: Path) -> None:
    _rewrite_npz(saved.with_suffix(".npz"))  # same arrays, different bytes
    with pytest.raises(ModelFormatError, match=r"SHA-256 differs from .*network.weights_sha256"):
        load_network(saved)


def test_pickled_arrays_are_refused(saved: Path) -> None:
    _rewrite_yaml(saved, lambda body: None)
    _rewrite_npz(saved.with_suffix(".npz"), c1__weight=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ModelFormatError, match=r"not a plain-array .npz"):
        load_network(saved)


def test_corrupt_zip_and_missing_file(saved: Path) -> None:
    _rewrite_yaml(saved, lambda body: None)
    saved.with_suffix(".npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ModelFormatError, match=r"corrupt .npz"):
        load_network(saved)
    saved.with_suffix(".npz").unlink()
    with pytest.raises(
        ConfigError,
        match=r"tiny.yaml: network.weights: expected a weights file "
        r"beside the description \(.*tiny.npz does not exist\), got 'tiny.npz'",
    ):
        load_network(saved)
    with pytest.raises(
        ModelFormatError, match=r"no such model file \(zoo names: lenet5, mlp7, alexnet"
    ):
        load_network(saved.parent / "nothing.yaml")


def _set(path: str, value: object):
    def edit(body: dict) -> None:
        *head, last = path.split(".")
        cur = body
        for key in head:
            cur = cur[int(key)] if isinstance(cur, list) else cur[key]
        if value is None:
            del cur[int(last) if isinstance(cur, list) else last]
        else:
            cur[int(last) if isinstance(cur, list) else last] = value

    return edit


YAML_CASES = [
    (
        "layers.0.type",
        "conv3d",
        r"network.layers.0.type: expected one of \{conv2d, dense, maxpool2d, flatten\}, got 'conv3d'",
    ),
    (
        "layers.0.in_channels",
        2,
        r"network.layers.0.in_channels: expected an int in \[1, 1\], got 2",
    ),
    ("layers.0.relu", "yes", r"network.layers.0.relu: expected true or false, got 'yes'"),
    ("layers.0.dilation", 2, r"network.layers.0.dilation: expected one of the keys"),
    (
        "layers.4.in_features",
        17,
        r"network.layers.4.in_features: expected an int in \[16, 16\], got 17",
    ),
    ("layers.3", None, r"network.layers.3: expected a flatten before this dense layer"),
    (
        "layers.1.name",
        "c1",
        r"network.layers.1.name: expected a name not used by an earlier layer, got 'c1'",
    ),
    (
        "layers",
        [TINY_ARCH["layers"][0]],
        r"network.layers: expected a dense classifier as the last layer, got 'conv2d'",
    ),
    ("dataset", "imagenet", r"network.dataset: expected one of \{mnist, cifar10\}, got 'imagenet'"),
    (
        "input.shape",
        [1, 9],
        r"network.input.shape: expected \[channels, height, width\], got \[1, 9\]",
    ),
    ("input.std", [0.5, 0.5], r"network.input: expected mean and std with 1 entries"),
    ("layers", [], r"network.layers: expected a non-empty list of layers, got \[\]"),
    ("name", None, r"network.name: expected a value, got nothing \(missing key\)"),
    (
        "accuracy",
        {"float": 2.0, "int8": 0.5, "split": "test", "images": 3},
        r"network.accuracy.float: expected a number in \[0.0, 1.0\], got 2.0",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), YAML_CASES)
def test_description_errors_name_the_key(
    saved: Path, path: str, value: object, message: str
) -> None:
    _rewrite_yaml(saved, _set(path, value))
    with pytest.raises(ConfigError, match=message) as info:
        load_network(saved)
    assert str(saved) in str(info.value)


def test_zip_member_names_are_plain_arrays(saved: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(saved.with_suffix(".npz").read_bytes())) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())
