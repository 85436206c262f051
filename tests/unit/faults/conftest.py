"""Fixtures of the fault-injection tests."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from accelsim.functional.network import Network
from accelsim.functional.quantize import quantize_network
from tests.conftest import TINY_ARCH, random_float_weights


@pytest.fixture
def pool_net(tiny_images: np.ndarray) -> Network:
    """The tiny net with an overlapping 3x3/2 max-pool (AlexNet's kind) instead of 2x2/2."""
    arch = copy.deepcopy(TINY_ARCH)
    arch["layers"][1] = {"type": "maxpool2d", "name": "p1", "size": 3, "stride": 2}
    arch["layers"][4]["in_features"] = 4 * 2 * 2
    weights = random_float_weights(arch, np.random.default_rng(11))
    return quantize_network("tiny-pool", arch, weights, tiny_images)


@pytest.fixture
def deep_net(tiny_images: np.ndarray) -> Network:
    """LeNet-5's pattern in small: conv, pool, conv, overlapping pool, dense, dense, so that a
    fault's first convolution runs fused with the max-pool after it."""
    arch = copy.deepcopy(TINY_ARCH)
    arch["layers"][2].update(stride=1)  # 4x4 -> 4x4
    arch["layers"][3:3] = [{"type": "maxpool2d", "name": "p2", "size": 3, "stride": 1}]
    weights = random_float_weights(arch, np.random.default_rng(13))
    return quantize_network("tiny-deep", arch, weights, tiny_images)
