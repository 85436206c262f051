"""``requantization: xnnpack`` against LiteRT's default CPU path (the XNNPACK delegate).

LiteRT 2.3.0 (``ai-edge-litert``) runs the exported ``.tflite`` with its default op resolver,
which hands every supported int8 op to XNNPACK: fp32 requantisation, ``rint(float32(acc) *
scale)`` with ``scale = s_in * s_w / s_out`` in float32. The expected values are LiteRT's.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from accelsim import forward, graph_from_network, load_dataset, load_network, quantize_images
from accelsim.functional.graph import Graph, GraphError, graph_forward
from accelsim.interop.tflite_file import graph_to_tflite, to_nhwc
from tests.conftest import data_dir_or_fail
from tests.unit.interop.test_graph_tflite_micro import Builder


def litert_outputs(blob: bytes, x: np.ndarray) -> np.ndarray:
    """The output tensor of LiteRT's default interpreter (XNNPACK) for int8 ``x`` (N, ...)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ai-edge-litert is not installed; the test extra must install it")
        pytest.skip("ai-edge-litert not installed (pip install -e '.[test]')")
    it = Interpreter(model_content=blob)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], (len(x), *inp["shape"][1:]))
    it.allocate_tensors()
    it.set_tensor(inp["index"], to_nhwc(x))
    it.invoke()
    return it.get_tensor(out["index"])


def check(g: Graph, rng: np.random.Generator, n: int = 64, *, modes_differ: bool = True) -> None:
    x = rng.integers(-128, 128, size=(n, *g.tensors[g.input].shape)).astype(np.int8)
    ours = graph_forward(g, x)
    theirs = litert_outputs(graph_to_tflite(g), x)
    if ours.ndim == 4:
        n_, c, h, w = ours.shape
        theirs = theirs.reshape(n_, h, w, c).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(theirs.reshape(ours.shape), ours)
    # the two modes really differ on these inputs, or the test would not tell them apart
    weighted = ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")
    if modes_differ and any(nd.op in weighted for nd in g.nodes):
        tflm = Graph(
            g.name, g.dataset, g.input, g.output, g.tensors, g.nodes, requantization="tflm"
        )
        assert not np.array_equal(graph_forward(tflm, x), ours)


@pytest.mark.parametrize("act", ["none", "relu"])
def test_conv_depthwise_fc(rng, act) -> None:
    b = Builder(rng, (3, 9, 9))
    b.weighted(
        "CONV_2D", "c", "x", (6, 3, 3, 3), (6, 5, 5), stride=2, padding=(1, 1, 1, 1), activation=act
    )
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "d",
        "c",
        (12, 3, 3),
        (12, 5, 5),
        padding=(1, 1, 1, 1),
        depth_multiplier=2,
        activation=act,
    )
    b.op("RESHAPE", "r", ["d"], (300,), shape=(300,), order="hwc")
    b.weighted("FULLY_CONNECTED", "f", "r", (9, 300), (9,), activation=act)
    check(b.graph("f", "xnnpack"), rng)


def test_residual_add_pools_pad(rng) -> None:
    b = Builder(rng, (4, 8, 8))
    b.weighted(
        "CONV_2D", "c1", "x", (4, 4, 3, 3), (4, 8, 8), padding=(1, 1, 1, 1), activation="relu"
    )
    b.op(
        "ADD",
        "add",
        ["c1", "x"],
        (4, 8, 8),
        scale=b.tensors["x"].scale * 1.7,
        zp=-9,
        activation="relu",
    )
    b.op("AVERAGE_POOL_2D", "avg", ["add"], (4, 4, 4), size=(3, 3), stride=2, padding=(0, 1, 0, 1))
    b.op("PAD", "pad", ["avg"], (4, 6, 6), padding=(1, 1, 1, 1))
    b.op("MAX_POOL_2D", "max", ["pad"], (4, 3, 3), size=(2, 2), stride=2)
    b.op("CONCATENATION", "cat", ["max", "max"], (8, 3, 3), axis=0)
    check(b.graph("cat", "xnnpack"), rng)


def _differs_from_tflm(g: Graph, rng: np.random.Generator) -> bool:
    x = rng.integers(-128, 128, size=(256, *g.tensors[g.input].shape)).astype(np.int8)
    tflm = Graph(g.name, g.dataset, g.input, g.output, g.tensors, g.nodes, requantization="tflm")
    return not np.array_equal(graph_forward(tflm, x), graph_forward(g, x))


@pytest.mark.parametrize("seed", range(6))
def test_mean(seed) -> None:
    """XNNPACK's MEAN (fp32 scale s_in / s_out x 1 / n): LiteRT's outputs, which TFLite's
    fixed-point MEAN misses on some inputs."""
    rng = np.random.default_rng(seed)
    c, h, w = (int(v) for v in rng.integers(1, 12, size=3))
    b = Builder(rng, (c, h, w))
    b.op("MEAN", "m", ["x"], (c,), scale=b.tensors["x"].scale * rng.uniform(0.2, 2),
         zp=int(rng.integers(-60, 60)))  # fmt: skip
    g = b.graph("m", "xnnpack")
    check(g, rng, n=256)


def test_mean_differs_from_tflm_somewhere(rng) -> None:
    found = 0
    for seed in range(6):
        r = np.random.default_rng(seed)
        c, h, w = (int(v) for v in r.integers(1, 12, size=3))
        b = Builder(r, (c, h, w))
        b.op("MEAN", "m", ["x"], (c,), scale=b.tensors["x"].scale * r.uniform(0.2, 2),
             zp=int(r.integers(-60, 60)))  # fmt: skip
        found += _differs_from_tflm(b.graph("m", "xnnpack"), r)
    assert found > 0


@pytest.mark.parametrize("seed", range(4))
def test_requantising_concatenation(seed) -> None:
    """A CONCATENATION of another quantisation: XNNPACK's int8 convert (Q8 multiplier, halves
    up) on the requantised part, as LiteRT runs its QUANTIZE."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(1, 5))
    b = Builder(rng, (c, 4, 4))
    b.weighted("CONV_2D", "k", "x", (c, c, 1, 1), (c, 4, 4))
    b.op(
        "CONCATENATION",
        "cat",
        ["k", "x"],
        (2 * c, 4, 4),
        axis=0,
        scale=b.tensors["k"].scale * rng.uniform(0.3, 3),
        zp=int(rng.integers(-60, 60)),
    )
    g = b.graph("cat", "xnnpack")  # fmt: skip
    check(g, rng, n=256)


def test_add_in_xnnpacks_arithmetic() -> None:
    """XNNPACK's ADD (multipliers rint(s 2^shift), shift 20 minus the larger scale's exponent,
    an arithmetic shift) against LiteRT on 20 random conv + ADD graphs x 256 inputs; TFLite's
    ADD arithmetic missed LiteRT on 10 of 1,769,472 outputs of 60 such graphs (measured)."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        c = int(rng.integers(1, 6))
        b = Builder(rng, (c, 6, 6))
        b.weighted("CONV_2D", "k", "x", (c, c, 1, 1), (c, 6, 6))
        scale = max(b.tensors["k"].scale, b.tensors["x"].scale) * rng.uniform(0.6, 2.5)
        b.op("ADD", "a", ["k", "x"], (c, 6, 6), scale=scale, zp=int(rng.integers(-60, 60)),
             activation=["none", "relu", "relu6"][seed % 3])  # fmt: skip
        check(b.graph("a", "xnnpack"), rng, n=256, modes_differ=False)


def test_xnnpack_refuses_a_convert_it_does_not_take(rng) -> None:
    b = Builder(rng, (2, 4, 4))
    b.op("MAX_POOL_2D", "p", ["x"], (2, 4, 4), size=(1, 1), stride=1)
    b.op("CONCATENATION", "cat", ["x", "p"], (4, 4, 4), axis=0,
         scale=b.tensors["x"].scale * 1000, zp=0)  # fmt: skip
    with pytest.raises(GraphError, match=r"node 'cat', tensor 'x'.*scale ratios in \[2\^-8"):
        b.graph("cat", "xnnpack")


@pytest.mark.integration
@pytest.mark.parametrize(("name", "n"), [("lenet5", 2000), ("alexnet", 200)])
def test_zoo_networks_in_xnnpack_mode_equal_litert(name: str, n: int) -> None:
    net = load_network(name)
    x = quantize_images(
        net, load_dataset(net.dataset, "test", data_dir=data_dir_or_fail()).images[:n]
    )
    g = graph_from_network(net, requantization="xnnpack")
    ours = graph_forward(g, x)
    np.testing.assert_array_equal(litert_outputs(graph_to_tflite(g), x), ours)
    assert not np.array_equal(ours, forward(net, x))  # the modes differ on these images
