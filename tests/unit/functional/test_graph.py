"""Graph networks: chains as graphs, the op semantics against hand values, validation errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim import forward, load_network, quantize_images
from accelsim.datasets import load_dataset
from accelsim.functional import graph_ref as ref
from accelsim.functional.graph import (
    Graph,
    GraphError,
    Node,
    TensorInfo,
    graph_forward,
    graph_from_network,
    run_graph,
)


def test_a_chain_as_a_graph_gives_the_chain_logits(tiny_net, tiny_images) -> None:
    g = graph_from_network(tiny_net)
    x = quantize_images(tiny_net, tiny_images)
    np.testing.assert_array_equal(graph_forward(g, x), forward(tiny_net, x))
    assert g.macs == tiny_net.macs
    assert g.n_parameters == tiny_net.n_parameters


def test_lenet5_as_a_graph_on_the_bundled_sample() -> None:
    net = load_network("lenet5")
    x = quantize_images(net, load_dataset("mnist", "sample").images[:300])
    np.testing.assert_array_equal(graph_forward(graph_from_network(net), x), forward(net, x))


def test_run_graph_keeps_selected_tensors(tiny_net, tiny_images) -> None:
    g = graph_from_network(tiny_net)
    out = run_graph(g, quantize_images(tiny_net, tiny_images), keep=lambda t: t == "c1")
    assert set(out) == {"c1", g.output}
    assert out["c1"].shape == (40, 3, 9, 9)


# Hand values of TFLite's arithmetic.
def test_activation_ranges_by_hand() -> None:
    assert ref.quantized_activation_range("none", 0.1, 5) == (-128, 127)
    assert ref.quantized_activation_range("relu", 0.1, -128) == (-128, 127)
    assert ref.quantized_activation_range("relu", 0.1, 5) == (5, 127)
    # RELU6 at scale 6/255 and zero point -128: 6 / s = 255 -> 127 (clamped to int8)
    assert ref.quantized_activation_range("relu6", 6 / 255, -128) == (-128, 127)
    # scale 0.05: 6 / 0.05 = 120 -> -10 + 120 = 110
    assert ref.quantized_activation_range("relu6", 0.05, -10) == (-10, 110)


def test_average_pool_rounds_half_away_from_zero() -> None:
    x = np.array(
        [[[[1, 2], [0, 0]], [[-1, -2], [0, 0]], [[1, 1], [1, 2]]]], np.int8
    )  # sums 3, -3, 5
    out = ref.average_pool2d(x, size=(2, 2), stride=2, padding=(0, 0, 0, 0), act_range=(-128, 127))
    assert out.reshape(-1).tolist() == [1, -1, 1]  # 0.75 -> 1, -0.75 -> -1, 1.25 -> 1


def test_average_pool_counts_only_in_bounds_elements() -> None:
    x = np.full((1, 1, 3, 3), 10, np.int8)
    out = ref.average_pool2d(x, size=(3, 3), stride=1, padding=(1, 1, 1, 1), act_range=(-128, 127))
    assert np.all(out == 10)  # a SAME window averages its in-bounds elements only


def test_mean_multiplier_divides_by_the_count() -> None:
    # s_in / s_out = 1 -> (2^30, 1); 49 elements: shift 5, multiplier 2^35 // 49
    assert ref.mean_multiplier(0.5, 0.5, 49) == ((1 << 30 << 5) // 49, 1 - 5)
    x = np.full((1, 2, 7, 7), 9, np.int8)
    x[0, 1] = -4
    out = ref.mean_hw(
        x, input_scale=0.5, input_zero_point=1, output_scale=0.5, output_zero_point=-3
    )
    assert out.tolist() == [[9 - 1 - 3, -4 - 1 - 3]]
    # sums of 1,024 extreme codes (outside int16): no wrap-around
    x = np.full((1, 2, 32, 32), -128, np.int8)
    x[0, 1] = 127
    for mean in (ref.mean_hw, ref.mean_hw_xnnpack):
        out = mean(x, input_scale=0.5, input_zero_point=0, output_scale=0.5, output_zero_point=0)
        assert out.tolist() == [[-128, 127]]


def test_add_by_hand() -> None:
    # equal scales 0.1 -> output scale 0.2: (a - 1) * 0.1 + (b + 2) * 0.1 = 0.2 * (y - 4)
    a = np.array([[11, 1, -128]], np.int8)
    b = np.array([[8, -2, -128]], np.int8)
    out = ref.add(a, b, scales=(0.1, 0.1, 0.2), zero_points=(1, -2, 4), act_range=(-128, 127))
    assert out.tolist() == [[4 + 10, 4, 4 + round((-129 - 126) / 2)]]


def test_requantize_by_hand() -> None:
    x = np.array([[-128, 0, 10, 127]], np.int8)
    out = ref.requantize(
        x, input_scale=0.5, input_zero_point=-128, output_scale=1.0, output_zero_point=0
    )
    assert out.tolist() == [[0, 64, 69, 127]]  # (x + 128) / 2, halves away from zero


def test_hwc_reshape_reads_height_width_channel() -> None:
    x = np.arange(12, dtype=np.int8).reshape(1, 3, 2, 2)  # C=3, H=W=2
    assert ref.reshape(x, (12,), order="hwc").tolist() == [[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]]
    assert ref.reshape(x, (12,), order="chw").tolist() == [list(range(12))]


def test_depthwise_multiplier_orders_output_channels_by_input_channel() -> None:
    x = np.array([[[[2]], [[3]]]], np.int8)  # C=2, 1x1
    w = np.array([[[1]], [[-1]], [[5]], [[7]]], np.int8)  # dm=2: out 0,1 <- in 0; out 2,3 <- in 1
    q, s = ref.quantize_multiplier(0.5)
    out = ref.depthwise_conv2d(
        x, w, np.zeros(4, np.int32), [q] * 4, [s] * 4, stride=1, padding=(0, 0, 0, 0),
        depth_multiplier=2, input_zero_point=0, output_zero_point=0, act_range=(-128, 127),
    )  # fmt: skip
    # 2 * 1 / 2, 2 * -1 / 2, 3 * 5 / 2 = 7.5 -> 8, 3 * 7 / 2 = 10.5 -> 11 (halves away from zero)
    assert out.reshape(-1).tolist() == [1, -1, 8, 11]


# Validation: one line naming the source, node and tensor.
def _small() -> tuple[dict, list[Node]]:
    t = {
        "x": TensorInfo("x", (2, 4, 4), 0.05, 3),
        "c": TensorInfo("c", (3, 4, 4), 0.1, -5),
        "p": TensorInfo("p", (3, 2, 2), 0.1, -5),
    }
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)
    conv = Node(
        "conv",
        "CONV_2D",
        ("x",),
        "c",
        {"padding": (1, 1, 1, 1)},
        w,
        np.zeros(3, np.int32),
        np.full(3, 0.01),
    )
    pool = Node("pool", "MAX_POOL_2D", ("c",), "p", {"size": (2, 2), "stride": 2})
    return t, [conv, pool]


def _graph(tensors, nodes, output="p") -> Graph:
    return Graph("small", "mnist", "x", output, tensors, tuple(nodes), source="small.yaml")


def test_nodes_out_of_order_are_sorted() -> None:
    t, nodes = _small()
    g = _graph(t, nodes[::-1])
    assert [n.name for n in g.nodes] == ["conv", "pool"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t, n: n.__setitem__(1, dataclasses.replace(n[1], op="SOFTMAX")), "node 'pool': unknown op 'SOFTMAX'"),
        (lambda t, n: n.__setitem__(1, dataclasses.replace(n[1], inputs=("ghost",))), "node 'pool', tensor 'ghost': tensor is not declared"),
        (lambda t, n: n.append(Node("again", "MAX_POOL_2D", ("c",), "p", {"size": (2, 2), "stride": 2})), "node 'again', tensor 'p': tensor is produced twice (also by 'pool')"),
        (lambda t, n: t.__setitem__("c", dataclasses.replace(t["c"], zero_point=128)), "tensor 'c': zero point must be an int8 (-128..127), got 128"),
        (lambda t, n: t.__setitem__("p", dataclasses.replace(t["p"], shape=(3, 3, 3))), "node 'pool', tensor 'p': shape (3, 3, 3) does not follow from the inputs ((3, 2, 2))"),
        (lambda t, n: n.__setitem__(0, dataclasses.replace(n[0], weight=n[0].weight.astype(np.int16))), "node 'conv': weight must be int8 and bias int32, got int16 and int32"),
        (lambda t, n: t.__setitem__("p", dataclasses.replace(t["p"], scale=0.2)), "node 'pool', tensor 'p': MAX_POOL_2D keeps its input's quantisation"),
        (lambda t, n: t.__setitem__("x", dataclasses.replace(t["x"], shape=(5, 4, 4))), "node 'conv', tensor 'x': weight expects 2 input channels, the input has shape (5, 4, 4)"),
    ],
)  # fmt: skip
def test_bad_graphs_are_refused_naming_node_and_tensor(mutate, message) -> None:
    t, nodes = _small()
    mutate(t, nodes)
    with pytest.raises(GraphError) as err:
        _graph(t, nodes)
    assert str(err.value).startswith("small.yaml: ")
    assert message in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_a_dangling_input_is_refused() -> None:
    t, nodes = _small()
    t["y"] = TensorInfo("y", (3, 4, 4), 0.1, -5)
    nodes[1] = dataclasses.replace(nodes[1], inputs=("y",))
    with pytest.raises(GraphError, match="node 'pool', tensor 'y': no node produces this input"):
        _graph(t, nodes)


def test_a_cycle_is_refused() -> None:
    t, nodes = _small()
    t["q"] = TensorInfo("q", (3, 4, 4), 0.1, -5)
    a = Node("a", "ADD", ("c", "q"), "d", {})
    b = Node("b", "ADD", ("d", "c"), "q", {})
    t["d"] = TensorInfo("d", (3, 4, 4), 0.1, -5)
    with pytest.raises(GraphError, match="has a cycle through this node"):
        _graph(t, [nodes[0], a, b], output="q")


def test_a_mean_whose_multiplier_int32_cannot_hold_is_refused() -> None:
    t = {"x": TensorInfo("x", (2, 3, 3), 1.0, 0), "m": TensorInfo("m", (2,), 1e-12, 0)}
    mean = Node("gap", "MEAN", ("x",), "m", {})
    with pytest.raises(GraphError, match=r"small.yaml: node 'gap', tensor 'm': .*too large"):
        Graph("small", "mnist", "x", "m", t, (mean,), source="small.yaml")
