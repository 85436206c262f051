"""The graph ops' fast kernels equal the numpy specification bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.functional.graph import graph_forward
from tests.unit.interop.test_graph_tflite_micro import Builder


def _equal(b: Builder, out: str, rng: np.random.Generator, n: int = 16) -> None:
    g = b.graph(out)
    shape = g.tensors[g.input].shape
    x = rng.integers(-128, 128, size=(n, *shape)).astype(np.int8)
    x[0] = -128  # the extremes, where an offset or a saturation would show
    x[1] = 127
    np.testing.assert_array_equal(graph_forward(g, x), graph_forward(g, x, reference=True))


@pytest.mark.parametrize("seed", range(6))
def test_conv_and_depthwise_with_random_geometry(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c, h = int(rng.integers(1, 12)), int(rng.integers(5, 11))
    k, stride = int(rng.choice([1, 3, 5])), int(rng.integers(1, 3))
    pad = tuple(int(v) for v in rng.integers(0, 3, size=4))
    b = Builder(rng, (c, h, h))
    oh = (h + pad[0] + pad[1] - k) // stride + 1
    ow = (h + pad[2] + pad[3] - k) // stride + 1
    act = str(rng.choice(["none", "relu", "relu6"]))
    b.weighted(
        "CONV_2D", "c", "x", (7, c, k, k), (7, oh, ow), stride=stride, padding=pad, activation=act
    )
    dm = int(rng.integers(1, 4))
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "d",
        "c",
        (7 * dm, 3, 3),
        (7 * dm, oh, ow),
        padding=(1, 1, 1, 1),
        depth_multiplier=dm,
        activation=act,
    )
    _equal(b, "d", rng)


def test_long_reductions_stay_exact() -> None:
    """K = 144 * 9 = 1,296 and 3,000 features: the chunked float32 GEMM with a zero point."""
    rng = np.random.default_rng(11)
    b = Builder(rng, (144, 5, 5))
    b.weighted("CONV_2D", "c", "x", (6, 144, 3, 3), (6, 5, 5), padding=(1, 1, 1, 1))
    b.op("RESHAPE", "r", ["c"], (150,), shape=(150,), order="hwc")
    b.weighted("FULLY_CONNECTED", "f", "r", (4, 150), (4,))
    _equal(b, "f", rng)
    b2 = Builder(rng, (3000,))
    b2.weighted("FULLY_CONNECTED", "f", "x", (5, 3000), (5,), activation="relu")
    _equal(b2, "f", rng)


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("seed", range(4))
def test_pools_with_random_geometry(op: str, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    h, size, stride = int(rng.integers(4, 10)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    pad = tuple(int(v) for v in rng.integers(0, size, size=4))
    b = Builder(rng, (3, h, h))
    oh = (h + pad[0] + pad[1] - size) // stride + 1
    ow = (h + pad[2] + pad[3] - size) // stride + 1
    b.op(
        op,
        "p",
        ["x"],
        (3, oh, ow),
        size=(size, size),
        stride=stride,
        padding=pad,
        activation=str(rng.choice(["none", "relu"])),
    )
    _equal(b, "p", rng)


@pytest.mark.parametrize("seed", range(6))
def test_add_with_random_quantisation(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    b = Builder(rng, (3, 6, 6))
    b.weighted("CONV_2D", "c", "x", (3, 3, 3, 3), (3, 6, 6), padding=(1, 1, 1, 1))
    scale = max(b.tensors["x"].scale, b.tensors["c"].scale) * float(rng.uniform(0.6, 3.0))
    act = str(rng.choice(["none", "relu", "relu6"]))
    b.op(
        "ADD",
        "a",
        ["c", "x"],
        (3, 6, 6),
        scale=scale,
        zp=int(rng.integers(-128, 100)),
        activation=act,
    )
    _equal(b, "a", rng, n=64)


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("seed", range(4))
def test_add_by_table_equals_the_specification(requantization: str, seed: int) -> None:
    """ADD's table (built once per parameter set) read at the codes of two tensors gives what
    the specification computes on them directly, in both requantisation modes; the numba
    lookup equals its numpy reference."""
    from accelsim.functional import graph_kernels, graph_ref

    rng = np.random.default_rng(300 + seed)
    scales = tuple(float(np.float32(s)) for s in rng.uniform(0.01, 0.2, 3))
    zps = tuple(int(z) for z in rng.integers(-128, 128, 3))
    act = (int(rng.integers(-128, 0)), int(rng.integers(0, 128)))
    table = graph_kernels.add_table(requantization, scales, zps, act)
    a = rng.integers(-128, 128, (5, 7, 9, 3)).astype(np.int8)
    b = rng.integers(-128, 128, (5, 7, 9, 3)).astype(np.int8)
    a[0], b[0], a[1], b[1] = -128, 127, 127, -128  # the corners of the table
    spec = graph_ref.add_xnnpack if requantization == "xnnpack" else graph_ref.add
    want = spec(a, b, scales=scales, zero_points=zps, act_range=act)
    got = graph_kernels.lookup_add(a, b, table)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, graph_kernels.lookup_add_ref(a, b, table))
    assert got.shape == a.shape
    assert not table.flags.writeable
