"""Every graph op, and small residual / depthwise / concatenation graphs, against TFLite Micro.

Tensors get random asymmetric quantisation (scale and zero point, as TFLite's converter writes
them); the expected outputs are TFLite Micro's, run on the ``.tflite`` the exporter writes.
"""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.functional.graph import Graph, Node, TensorInfo, graph_forward
from accelsim.interop.tflite_file import graph_to_tflite
from tests.unit.interop.test_tflite_micro import tflm_logits


class Builder:
    """Random tensors and weights for a graph, each new tensor's scale fitted to its values."""

    def __init__(self, rng: np.random.Generator, in_shape: tuple[int, ...]) -> None:
        self.rng = rng
        self.tensors = {
            "x": TensorInfo("x", in_shape, self.scale(0.02, 0.05), int(rng.integers(-30, 30)))
        }
        self.nodes: list[Node] = []

    def scale(self, lo: float, hi: float) -> float:
        return float(np.float32(self.rng.uniform(lo, hi)))

    def tensor(self, name: str, shape: tuple[int, ...], scale: float, zp: int | None = None) -> str:
        zp = int(self.rng.integers(-40, 40)) if zp is None else zp
        self.tensors[name] = TensorInfo(name, shape, float(np.float32(scale)), zp)
        return name

    def weighted(
        self, op: str, name: str, src: str, w_shape, out_shape, per_tensor=False, **attrs
    ) -> str:
        w = self.rng.integers(-127, 128, size=w_shape).astype(np.int8)
        o = w_shape[0]
        ws = np.array([self.scale(0.002, 0.02) for _ in range(1 if per_tensor else o)])
        fan = int(np.prod(w_shape[1:]))
        s_in = self.tensors[src].scale
        # int8 inputs and weights of magnitude ~64: accumulators of ~4096 sqrt(fan); ~40 steps out.
        s_out = s_in * float(ws.mean()) * 4096 * np.sqrt(fan) / 40
        bias = self.rng.integers(-3000, 3000, size=o).astype(np.int32)
        self.tensor(name, out_shape, s_out)
        self.nodes.append(Node(name, op, (src,), name, attrs, w, bias, ws))
        return name

    def op(self, op: str, name: str, inputs, out_shape, scale=None, zp=None, **attrs) -> str:
        first = self.tensors[inputs[0]]
        self.tensor(
            name,
            out_shape,
            first.scale if scale is None else scale,
            first.zero_point if zp is None else zp,
        )
        self.nodes.append(Node(name, op, tuple(inputs), name, attrs))
        return name

    def graph(self, out: str, requantization: str = "tflm") -> Graph:
        return Graph(
            "g", "mnist", "x", out, dict(self.tensors), tuple(self.nodes),
            requantization=requantization,
        )  # fmt: skip


def check(g: Graph, rng: np.random.Generator, n: int = 24) -> None:
    x = rng.integers(-128, 128, size=(n, *g.tensors[g.input].shape)).astype(np.int8)
    ours = graph_forward(g, x)
    assert len(np.unique(ours)) > 3, "a near-constant output would prove little"
    theirs = tflm_logits(graph_to_tflite(g), x)
    if ours.ndim == 4:  # TFLite Micro's feature maps are N-H-W-C
        n_, c, h, w = ours.shape
        theirs = theirs.reshape(n_, h, w, c).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(theirs, ours)


@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
@pytest.mark.parametrize(
    ("stride", "padding"),
    [(1, (1, 1, 1, 1)), (2, (0, 1, 0, 1)), (2, (0, 0, 0, 0)), (1, (2, 0, 1, 1))],
)
def test_conv2d(rng, act, stride, padding) -> None:
    b = Builder(rng, (3, 9, 9))
    oh = (9 + padding[0] + padding[1] - 3) // stride + 1
    ow = (9 + padding[2] + padding[3] - 3) // stride + 1
    b.weighted(
        "CONV_2D",
        "c",
        "x",
        (5, 3, 3, 3),
        (5, oh, ow),
        stride=stride,
        padding=padding,
        activation=act,
    )
    check(b.graph("c"), rng)


@pytest.mark.parametrize(("dm", "stride", "act"), [(1, 1, "relu6"), (2, 2, "none"), (3, 1, "relu")])
def test_depthwise_conv2d(rng, dm, stride, act) -> None:
    b = Builder(rng, (4, 8, 8))
    pad = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)
    o = (8 + pad[0] + pad[1] - 3) // stride + 1
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "d",
        "x",
        (4 * dm, 3, 3),
        (4 * dm, o, o),
        stride=stride,
        padding=pad,
        depth_multiplier=dm,
        activation=act,
    )
    check(b.graph("d"), rng)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_per_tensor_weights(rng, op) -> None:
    """One weight scale for the whole tensor (TFLite's per-tensor quantisation, written with
    one scale and quantized_dimension 0): TFLite Micro's logits."""
    b = Builder(rng, (4, 6, 6))
    if op == "CONV_2D":
        b.weighted(op, "w", "x", (5, 4, 3, 3), (5, 6, 6), per_tensor=True,
                   padding=(1, 1, 1, 1), activation="relu")  # fmt: skip
    elif op == "DEPTHWISE_CONV_2D":
        b.weighted(op, "w", "x", (8, 3, 3), (8, 4, 4), per_tensor=True, depth_multiplier=2)
    else:
        b.op("RESHAPE", "r", ["x"], (144,), shape=(144,), order="hwc")
        b.weighted(op, "w", "r", (6, 144), (6,), per_tensor=True)
    g = b.graph("w")
    assert g.nodes[-1].weight_scale.shape == (1,)
    check(g, rng)
    blob = graph_to_tflite(g)
    from tflite.Model import Model

    sub = Model.GetRootAsModel(blob, 0).Subgraphs(0)
    weight = next(sub.Tensors(i) for i in range(sub.TensorsLength())
                  if sub.Tensors(i).Name().decode().endswith("/weight"))  # fmt: skip
    assert weight.Quantization().ScaleLength() == 1


def test_fully_connected_after_an_hwc_reshape(rng) -> None:
    b = Builder(rng, (3, 4, 5))
    b.op("RESHAPE", "r", ["x"], (60,), shape=(60,), order="hwc")
    b.weighted("FULLY_CONNECTED", "f", "r", (7, 60), (7,), activation="relu")
    check(b.graph("f"), rng)


def test_fully_connected_after_a_chw_flatten(rng) -> None:
    b = Builder(rng, (3, 4, 5))
    b.op("RESHAPE", "r", ["x"], (60,), shape=(60,), order="chw")
    b.weighted("FULLY_CONNECTED", "f", "r", (7, 60), (7,))
    check(b.graph("f"), rng)


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize(
    ("size", "stride", "padding"),
    [(2, 2, (0, 0, 0, 0)), (3, 2, (1, 1, 1, 1)), (3, 1, (1, 1, 1, 1))],
)
def test_pooling(rng, op, size, stride, padding) -> None:
    b = Builder(rng, (3, 9, 9))
    o = (9 + padding[0] + padding[1] - size) // stride + 1
    b.op(op, "p", ["x"], (3, o, o), size=(size, size), stride=stride, padding=padding)
    check(b.graph("p"), rng)


def test_mean(rng) -> None:
    b = Builder(rng, (6, 7, 5))
    b.op("MEAN", "m", ["x"], (6,), scale=b.tensors["x"].scale * 0.3, zp=5)
    check(b.graph("m"), rng, n=64)


@pytest.mark.parametrize("act", ["none", "relu", "relu6"])
def test_add(rng, act) -> None:
    b = Builder(rng, (3, 5, 5))
    b.weighted("CONV_2D", "c", "x", (3, 3, 3, 3), (3, 5, 5), padding=(1, 1, 1, 1))
    s = max(b.tensors["x"].scale, b.tensors["c"].scale) * 1.3
    b.op("ADD", "a", ["x", "c"], (3, 5, 5), scale=s, zp=-7, activation=act)
    check(b.graph("a"), rng)


def test_concatenation_requantises_inputs_of_another_scale(rng) -> None:
    b = Builder(rng, (2, 6, 6))
    b.weighted(
        "CONV_2D", "c1", "x", (3, 2, 3, 3), (3, 6, 6), padding=(1, 1, 1, 1), activation="relu"
    )
    b.weighted("CONV_2D", "c2", "x", (4, 2, 1, 1), (4, 6, 6))
    b.op(
        "CONCATENATION",
        "cat",
        ["c1", "c2", "x"],
        (9, 6, 6),
        scale=b.tensors["c1"].scale,
        zp=b.tensors["c1"].zero_point,
        axis=0,
    )
    check(b.graph("cat"), rng)


def test_pad(rng) -> None:
    b = Builder(rng, (2, 4, 4))
    b.op("PAD", "p", ["x"], (2, 7, 5), padding=(2, 1, 0, 1))
    check(b.graph("p"), rng)


def test_residual_block(rng) -> None:
    """conv-relu -> conv -> ADD with the block input (a tensor read twice) -> relu -> MEAN -> FC."""
    b = Builder(rng, (4, 8, 8))
    b.weighted(
        "CONV_2D", "c1", "x", (4, 4, 3, 3), (4, 8, 8), padding=(1, 1, 1, 1), activation="relu"
    )
    b.weighted("CONV_2D", "c2", "c1", (4, 4, 3, 3), (4, 8, 8), padding=(1, 1, 1, 1))
    b.op(
        "ADD",
        "add",
        ["c2", "x"],
        (4, 8, 8),
        scale=max(b.tensors["c2"].scale, b.tensors["x"].scale),
        zp=-128,
        activation="relu",
    )
    b.op("MEAN", "gap", ["add"], (4,), scale=b.tensors["add"].scale / 4, zp=-100)
    b.weighted("FULLY_CONNECTED", "fc", "gap", (5, 4), (5,))
    check(b.graph("fc"), rng, n=48)


def test_inverted_residual(rng) -> None:
    """1x1 expand (RELU6) -> depthwise 3x3 stride 1 (RELU6) -> 1x1 project -> ADD."""
    b = Builder(rng, (4, 6, 6))
    b.weighted("CONV_2D", "expand", "x", (12, 4, 1, 1), (12, 6, 6), activation="relu6")
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "dw",
        "expand",
        (12, 3, 3),
        (12, 6, 6),
        padding=(1, 1, 1, 1),
        activation="relu6",
    )
    b.weighted("CONV_2D", "project", "dw", (4, 12, 1, 1), (4, 6, 6))
    b.op("ADD", "add", ["project", "x"], (4, 6, 6), scale=b.tensors["x"].scale * 1.5, zp=3)
    check(b.graph("add"), rng)


def test_concat_network(rng) -> None:
    """Two branches concatenated, max-pooled, flattened (H-W-C) into a classifier."""
    b = Builder(rng, (3, 8, 8))
    b.weighted(
        "CONV_2D", "b1", "x", (4, 3, 3, 3), (4, 8, 8), padding=(1, 1, 1, 1), activation="relu"
    )
    b.weighted(
        "CONV_2D", "b2", "x", (2, 3, 5, 5), (2, 8, 8), padding=(2, 2, 2, 2), activation="relu"
    )
    b.op(
        "CONCATENATION",
        "cat",
        ["b1", "b2"],
        (6, 8, 8),
        scale=b.tensors["b1"].scale,
        zp=b.tensors["b1"].zero_point,
        axis=0,
    )
    b.op("MAX_POOL_2D", "pool", ["cat"], (6, 4, 4), size=(2, 2), stride=2)
    b.op("RESHAPE", "flat", ["pool"], (96,), shape=(96,), order="hwc")
    b.weighted("FULLY_CONNECTED", "fc", "flat", (10, 96), (10,))
    check(b.graph("fc"), rng)
