"""Shared fixtures: a seeded rng per test, a tiny architecture and a tiny int8 network."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from accelsim.config.checks import Ctx
from accelsim.functional.layers import Dense
from accelsim.functional.network import Network
from accelsim.functional.quantize import quantize_network
from accelsim.functional.reference import quantize_multiplier

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]

TINY_ARCH = {
    "dataset": "mnist",
    "input_shape": [1, 9, 9],
    "mean": [0.1],
    "std": [0.5],
    "layers": [
        {
            "type": "conv2d",
            "name": "c1",
            "in_channels": 1,
            "out_channels": 3,
            "kernel": 3,
            "stride": 1,
            "padding": 1,
            "relu": True,
        },
        {"type": "maxpool2d", "name": "p1", "size": 2, "stride": 2},
        {
            "type": "conv2d",
            "name": "c2",
            "in_channels": 3,
            "out_channels": 4,
            "kernel": 3,
            "stride": 2,
            "padding": 1,
            "relu": True,
        },
        {"type": "flatten", "name": "flat"},
        {"type": "dense", "name": "d1", "in_features": 16, "out_features": 7, "relu": True},
        {"type": "dense", "name": "d2", "in_features": 7, "out_features": 5, "relu": False},
    ],
}


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name, so every test is reproducible on its own."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def random_float_weights(arch: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    weights = {}
    for spec in arch["layers"]:
        if spec["type"] == "conv2d":
            shape = (spec["out_channels"], spec["in_channels"], spec["kernel"], spec["kernel"])
        elif spec["type"] == "dense":
            shape = (spec["out_features"], spec["in_features"])
        else:
            continue
        fan_in = int(np.prod(shape[1:]))
        weights[f"{spec['name']}.weight"] = rng.normal(0, 1.5 / np.sqrt(fan_in), shape).astype(
            np.float32
        )
        weights[f"{spec['name']}.bias"] = rng.normal(0, 0.1, shape[0]).astype(np.float32)
    return weights


@pytest.fixture
def tiny_images(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(40, 1, 9, 9), dtype=np.uint8)


@pytest.fixture
def tiny_net(tiny_images: np.ndarray) -> Network:
    """A 4-weighted-layer int8 network on 9x9 single-channel images (built in code, ms)."""
    weights = random_float_weights(TINY_ARCH, np.random.default_rng(7))
    return quantize_network("tiny", TINY_ARCH, weights, tiny_images)


@pytest.fixture
def ctx(tmp_path: Path) -> Ctx:
    return Ctx(tmp_path / "x.yaml")


def data_dir_or_fail() -> Path:
    """ACCELSIM_DATA for integration tests: under CI a missing variable fails, never skips."""
    env = os.environ.get("ACCELSIM_DATA")
    if env and Path(env).is_dir():
        return Path(env)
    if os.environ.get("CI"):
        pytest.fail(
            "ACCELSIM_DATA is not set to a dataset folder; CI must set it (../shared/datasets)"
        )
    pytest.skip("ACCELSIM_DATA not set: real-data integration tests need MNIST/CIFAR-10")


def make_dense(name: str, weight: object, bias: object, real_m: float, relu: bool) -> Dense:
    """A Dense layer with unit input/output scales and one real multiplier for every channel."""
    weight, bias = np.asarray(weight, np.int8), np.asarray(bias, np.int32)
    q, s = quantize_multiplier(real_m)
    o = weight.shape[0]
    return Dense(
        name,
        (weight.shape[1],),
        weight,
        bias,
        np.full(o, q, np.int32),
        np.full(o, s, np.int32),
        np.full(o, real_m),
        1.0,
        1.0,
        relu,
    )
