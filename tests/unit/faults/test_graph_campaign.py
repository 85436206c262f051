"""Faults in graph networks: every fault of small residual, depthwise and concatenation graphs
equals a full re-inference of the faulty graph."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim import FaultKind, classify, evaluate_faults, graph_every_bit_flip
from accelsim.faults.graph_campaign import (
    GraphCampaignInputs,
    faulty_graph_classes,
    faulty_graph_output,
    graph_n_neurons,
    graph_neuron_nodes,
    sample_graph_faults,
)
from accelsim.faults.model import KIND_CODES, apply_fault
from accelsim.functional.graph import Graph, graph_from_network, run_node
from tests.unit.interop.test_graph_tflite_micro import Builder


def full_reinference(
    g: Graph, x: np.ndarray, node: int, index: int, mask: int, kind: int
) -> np.ndarray:
    """Every node of the graph run again on every image, the fault applied to node ``node``'s
    output right after it is computed: the brute force the engine must equal."""
    values = {g.input: x}
    for i, nd in enumerate(g.nodes):
        y = run_node(g, nd, [values[t] for t in nd.inputs], reference=True)
        if i == node:
            flat = y.reshape(len(y), -1).copy()
            flat[:, index] = apply_fault(flat[:, index], mask, kind)
            y = flat.reshape(y.shape)
        values[nd.output] = y
    return values[g.output]


def faults_equal_full_reinference(g: Graph, x: np.ndarray, state, faults) -> int:
    """Assert every fault's logits equal the full re-inference's; how many faults moved any."""
    moved = 0
    for k in range(len(faults)):
        args = tuple(int(v[k]) for v in (faults.layer, faults.index, faults.mask, faults.kind))
        want = full_reinference(g, x, *args)
        np.testing.assert_array_equal(faulty_graph_output(g, state, *args), want, err_msg=str(args))
        moved += int(np.any(want != state.values[g.output]))
    return moved


def residual(rng):
    b = Builder(rng, (2, 5, 5))
    b.weighted(
        "CONV_2D", "c1", "x", (2, 2, 3, 3), (2, 5, 5), padding=(1, 1, 1, 1), activation="relu"
    )
    b.weighted("CONV_2D", "c2", "c1", (2, 2, 3, 3), (2, 5, 5), padding=(1, 1, 1, 1))
    b.op(
        "ADD",
        "add",
        ["c2", "c1"],
        (2, 5, 5),
        scale=b.tensors["c1"].scale * 1.5,
        zp=-128,
        activation="relu",
    )
    b.op("MEAN", "gap", ["add"], (2,), scale=b.tensors["c1"].scale / 2, zp=-100)
    b.weighted("FULLY_CONNECTED", "fc", "gap", (4, 2), (4,))
    return b.graph("fc")


def inverted(rng):
    b = Builder(rng, (2, 4, 4))
    b.weighted("CONV_2D", "expand", "x", (4, 2, 1, 1), (4, 4, 4), activation="relu6")
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "dw",
        "expand",
        (8, 3, 3),
        (8, 2, 2),
        stride=2,
        padding=(0, 1, 0, 1),
        depth_multiplier=2,
        activation="relu6",
    )
    b.weighted("CONV_2D", "project", "dw", (2, 8, 1, 1), (2, 2, 2))
    b.op("AVERAGE_POOL_2D", "pool", ["x"], (2, 2, 2), size=(2, 2), stride=2)
    b.op("ADD", "add", ["project", "pool"], (2, 2, 2), scale=b.tensors["x"].scale * 2, zp=0)
    b.op("RESHAPE", "flat", ["add"], (8,), shape=(8,), order="hwc")
    b.weighted("FULLY_CONNECTED", "fc", "flat", (3, 8), (3,))
    return b.graph("fc")


def concat(rng):
    b = Builder(rng, (2, 4, 4))
    b.weighted(
        "CONV_2D", "b1", "x", (2, 2, 3, 3), (2, 4, 4), padding=(1, 1, 1, 1), activation="relu"
    )
    b.weighted("CONV_2D", "b2", "x", (1, 2, 1, 1), (1, 4, 4))
    b.op(
        "CONCATENATION",
        "cat",
        ["b1", "b2"],
        (3, 4, 4),
        scale=b.tensors["b1"].scale,
        zp=b.tensors["b1"].zero_point,
        axis=0,
    )
    b.op("MAX_POOL_2D", "pool", ["cat"], (3, 2, 2), size=(2, 2), stride=2)
    b.op("RESHAPE", "flat", ["pool"], (12,), shape=(12,), order="chw")
    b.weighted("FULLY_CONNECTED", "fc", "flat", (4, 12), (4,))
    return b.graph("fc")


@pytest.mark.parametrize("build", [residual, inverted, concat])
def test_every_fault_equals_full_reinference(build, rng) -> None:
    g = build(rng)
    x = rng.integers(-128, 128, size=(12, *g.tensors[g.input].shape)).astype(np.int8)
    source = GraphCampaignInputs(g, x, rng.integers(0, g.tensors[g.output].shape[0], 12))
    state = source.golden()
    faults = graph_every_bit_flip(g)
    moved = 0
    golden_logits = state.values[g.output]
    for k in range(len(faults)):
        args = (
            int(faults.layer[k]),
            int(faults.index[k]),
            int(faults.mask[k]),
            int(faults.kind[k]),
        )
        want = full_reinference(g, x, *args)
        got = faulty_graph_output(g, state, *args)
        np.testing.assert_array_equal(got, want, err_msg=f"fault {k}: {args}")
        np.testing.assert_array_equal(faulty_graph_classes(g, state, *args), classify(want))
        moved += int(np.any(want != golden_logits))
    assert moved > len(faults) // 10  # many faults reach the logits: not a vacuous comparison


def test_stuck_at_faults_equal_full_reinference(rng) -> None:
    g = residual(rng)
    x = rng.integers(-128, 128, size=(12, 2, 5, 5)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(12, np.int64)).golden()
    for kind in (FaultKind.STUCK_AT_0, FaultKind.STUCK_AT_1):
        for node in graph_neuron_nodes(g):
            for index in (0, 7, 49):
                args = (node, index, 0b11000000, KIND_CODES[kind])
                want = full_reinference(g, x, *args)
                np.testing.assert_array_equal(faulty_graph_output(g, state, *args), want)


def test_the_engine_runs_graph_faults_on_one_and_two_workers(rng) -> None:
    g = concat(rng)
    x = rng.integers(-128, 128, size=(20, 2, 4, 4)).astype(np.int8)
    source = GraphCampaignInputs(g, x, rng.integers(0, 4, 20))
    faults = sample_graph_faults(g, 150, seed=3)
    one = evaluate_faults(source, faults, workers=1)
    two = evaluate_faults(source, faults, workers=2)
    for field in ("ids", "layer", "neuron", "mask", "n_changed", "n_correct"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    state = source.golden()
    for k in range(0, 150, 15):  # spot checks against the brute force
        row = int(np.flatnonzero(one.ids == faults.ids[k])[0])
        want = full_reinference(
            g,
            x,
            int(faults.layer[k]),
            int(faults.index[k]),
            int(faults.mask[k]),
            int(faults.kind[k]),
        )
        assert one.n_changed[row] == int(np.sum(classify(want) != state.classes))


def test_sampled_faults_cover_the_neurons_uniformly(tiny_net) -> None:
    g = graph_from_network(tiny_net)
    assert graph_n_neurons(g) == tiny_net.n_neurons
    faults = sample_graph_faults(g, 2000, seed=0)
    assert len(np.unique(faults.ids)) == 2000
    again = sample_graph_faults(g, 2000, seed=0)
    np.testing.assert_array_equal(faults.index, again.index)
    nodes = set(faults.layer.tolist())
    assert nodes == set(graph_neuron_nodes(g))


def test_graph_exhaustive_nvf_counts_class_flips_by_brute_force(rng) -> None:
    from accelsim.analysis.graph_nvf import graph_exhaustive_nvf

    g = residual(rng)
    x = rng.integers(-128, 128, size=(10, 2, 5, 5)).astype(np.int8)
    nvf = graph_exhaustive_nvf(g, x, workers=2).by_layer
    golden = classify(full_reinference(g, x, -1, 0, 0, 0))
    assert set(nvf) == set(graph_neuron_nodes(g))
    for node, values in nvf.items():
        for e in (0, 13, 24, 49):
            flips = sum(
                int(np.sum(classify(full_reinference(g, x, node, e, 1 << b, 0)) != golden))
                for b in range(8)
            )
            assert values[e] == flips / 80
    assert max(v.max() for v in nvf.values()) > 0


def wide(rng, requantization: str = "tflm"):
    """14x14 maps, so that a fault's changed box stays a small part of them for several nodes:
    strided and padded convolutions, a depthwise layer, SAME pools of both kinds, an ADD."""
    b = Builder(rng, (2, 14, 14))
    b.weighted(
        "CONV_2D", "c1", "x", (3, 2, 3, 3), (3, 14, 14), padding=(1, 1, 1, 1), activation="relu"
    )
    b.weighted(
        "DEPTHWISE_CONV_2D",
        "dw",
        "c1",
        (3, 3, 3),
        (3, 14, 14),
        padding=(1, 1, 1, 1),
        activation="relu6",
    )
    b.op(
        "ADD",
        "add",
        ["dw", "c1"],
        (3, 14, 14),
        scale=b.tensors["c1"].scale * 1.4,
        zp=-128,
        activation="relu",
    )
    b.op("MAX_POOL_2D", "mp", ["add"], (3, 7, 7), size=(3, 3), stride=2, padding=(0, 1, 0, 1))
    b.weighted(
        "CONV_2D",
        "c2",
        "mp",
        (4, 3, 3, 3),
        (4, 4, 4),
        stride=2,
        padding=(1, 1, 1, 1),
        activation="relu",
    )
    b.op("AVERAGE_POOL_2D", "ap", ["c2"], (4, 4, 4), size=(3, 3), stride=1, padding=(1, 1, 1, 1))
    b.op("RESHAPE", "flat", ["ap"], (64,), shape=(64,), order="hwc")
    b.weighted("FULLY_CONNECTED", "fc", "flat", (5, 64), (5,))
    return b.graph("fc", requantization)


@pytest.mark.parametrize("chunk", [1, 4])
def test_images_in_chunks_equal_full_reinference(rng, monkeypatch, chunk: int) -> None:
    """A fault's images in chunks of one or four (of 12) give the full re-inference's logits,
    on the residual graph, whose stem convolution reads the graph input and keeps no
    accumulators."""
    from accelsim.faults import graph_campaign

    monkeypatch.setattr(graph_campaign, "CHUNK_IMAGES", chunk)
    g = residual(rng)
    x = rng.integers(-128, 128, size=(12, *g.tensors[g.input].shape)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(12, np.int64)).golden()
    stem = [nd.name for nd in g.nodes if nd.op == "CONV_2D" and nd.inputs[0] == g.input]
    assert stem
    assert all(name not in state._acc for name in stem)
    assert faults_equal_full_reinference(g, x, state, sample_graph_faults(g, 120, seed=2)) > 12


def test_changed_boxes_equal_full_reinference_on_wide_maps(rng) -> None:
    g = wide(rng)
    x = rng.integers(-128, 128, size=(10, 2, 14, 14)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(10, np.int64)).golden()
    faults = sample_graph_faults(g, 400, seed=1)
    moved = 0
    for k in range(len(faults)):
        args = (
            int(faults.layer[k]),
            int(faults.index[k]),
            int(faults.mask[k]),
            int(faults.kind[k]),
        )
        want = full_reinference(g, x, *args)
        np.testing.assert_array_equal(faulty_graph_output(g, state, *args), want, err_msg=str(args))
        moved += int(np.any(want != state.values[g.output]))
    assert moved > 40


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize(
    ("tap_cost", "float_limit", "budget", "code_check"),
    [(0, 1 << 24, 1 << 30, False), (0, 1 << 24, 1 << 30, True), (0, 0, 1 << 30, True),
     (10**9, 1 << 24, 1 << 30, False), (0, 1 << 24, 0, False)],
    ids=["sparse-float32", "sparse-float32-code-check", "sparse-int32-code-check", "gemm",
         "no-accumulators"],
)  # fmt: skip
def test_both_convolution_paths_equal_full_reinference(
    rng, monkeypatch, requantization: str, tap_cost: int, float_limit: int, budget: int,
    code_check: bool,
) -> None:  # fmt: skip
    """A CONV_2D in a changed box runs from its changed inputs alone (float32 or int32 sums,
    requantising every output or, with the code check, only those that leave their code's
    thresholds) or by a GEMM over the box; every path gives the full re-inference's logits,
    whichever check the host would choose."""
    from accelsim.faults import graph_boxes, graph_golden

    monkeypatch.setattr(graph_boxes, "CODE_CHECK", code_check)
    monkeypatch.setattr(graph_boxes, "TAP_COST_BASE", tap_cost)
    monkeypatch.setattr(graph_boxes, "TAP_COST_PER_CHANNEL", 0)
    monkeypatch.setattr(graph_boxes, "FLOAT_SUM_LIMIT", float_limit)
    monkeypatch.setattr(graph_golden, "ACC_BUDGET", budget)
    from accelsim.faults import kernels_boxes

    sparse_calls = []
    kernel = kernels_boxes.sparse_conv_kernel
    monkeypatch.setattr(kernels_boxes, "sparse_conv_kernel",
                        lambda *a: sparse_calls.append(1) or kernel(*a))  # fmt: skip
    g = wide(rng, requantization)
    x = rng.integers(-128, 128, size=(10, 2, 14, 14)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(10, np.int64)).golden()
    sparse_calls.clear()  # the golden state loads the kernels once
    assert faults_equal_full_reinference(g, x, state, sample_graph_faults(g, 150, seed=3)) > 15
    assert bool(sparse_calls) == (tap_cost == 0 and budget > 0)  # the path under test ran


def pooled(rng, requantization: str = "tflm"):
    """Convolutions each read by a max pool alone, as AlexNet's: 2x2 of stride 2, and 3x3 of
    stride 2 with SAME padding (windows that overlap and cross the map's edge)."""
    b = Builder(rng, (2, 12, 12))
    b.weighted("CONV_2D", "c1", "x", (4, 2, 3, 3), (4, 12, 12), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.op("MAX_POOL_2D", "p1", ["c1"], (4, 6, 6), size=(2, 2), stride=2)
    b.weighted("CONV_2D", "c2", "p1", (5, 4, 3, 3), (5, 6, 6), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.op("MAX_POOL_2D", "p2", ["c2"], (5, 3, 3), size=(3, 3), stride=2, padding=(0, 1, 0, 1))
    b.op("RESHAPE", "flat", ["p2"], (45,), shape=(45,), order="chw")
    b.weighted("FULLY_CONNECTED", "fc", "flat", (6, 45), (6,))
    return b.graph("fc", requantization)


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("build", [pooled, wide])
@pytest.mark.parametrize("tap_cost", [0, 10**9], ids=["sparse", "gemm"])
def test_a_pool_after_its_convolution_equals_full_reinference(
    rng, monkeypatch, requantization: str, build, tap_cost: int
) -> None:
    """A pool that alone reads a convolution's output is computed from the convolution's
    channels-last codes in one pass (``conv_pool_box``; max pools here, ``wide``'s average
    pool), on the sparse and on the GEMM path: every fault gives the full re-inference's
    logits, and the fused path ran."""
    from accelsim.faults import graph_boxes, kernels_pool

    monkeypatch.setattr(graph_boxes, "TAP_COST_BASE", tap_cost)
    monkeypatch.setattr(graph_boxes, "TAP_COST_PER_CHANNEL", 0)
    calls = []
    kernel = kernels_pool.pool_cl_kernel
    monkeypatch.setattr(kernels_pool, "pool_cl_kernel", lambda *a: calls.append(1) or kernel(*a))
    g = build(rng, requantization)
    shape = g.tensors[g.input].shape
    x = rng.integers(-128, 128, size=(10, *shape)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(10, np.int64)).golden()
    assert faults_equal_full_reinference(g, x, state, sample_graph_faults(g, 200, seed=4)) > 20
    assert calls


def stacked(rng, requantization: str = "tflm"):
    """AlexNet in small: convolutions and a pool each read by the next convolution alone (their
    entries travel channels last), the last read by a pool."""
    b = Builder(rng, (2, 10, 10))
    b.weighted("CONV_2D", "c0", "x", (3, 2, 1, 1), (3, 10, 10), activation="relu")
    b.weighted("CONV_2D", "c1", "c0", (3, 3, 3, 3), (3, 10, 10), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.op("MAX_POOL_2D", "p1", ["c1"], (3, 5, 5), size=(2, 2), stride=2)
    b.weighted("CONV_2D", "c2", "p1", (6, 3, 3, 3), (6, 5, 5), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.weighted("CONV_2D", "c3", "c2", (5, 6, 3, 3), (5, 3, 3), stride=2, padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.weighted("CONV_2D", "c4", "c3", (4, 5, 1, 1), (4, 3, 3), activation="relu")
    b.weighted("CONV_2D", "c5", "c4", (4, 4, 3, 3), (4, 3, 3), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.op("MAX_POOL_2D", "p2", ["c5"], (4, 2, 2), size=(2, 2), stride=1)
    b.op("RESHAPE", "flat", ["p2"], (16,), shape=(16,), order="chw")
    b.weighted("FULLY_CONNECTED", "fc", "flat", (5, 16), (5,))
    return b.graph("fc", requantization)


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("tap_cost", [0, 60, 10**9], ids=["sparse", "mixed", "gemm"])
def test_channels_last_entries_between_convolutions_equal_full_reinference(
    rng, monkeypatch, requantization: str, tap_cost: int
) -> None:
    """A convolution or a pool read by a convolution alone hands it its entry channels last
    (``graph_layout.channels_last_readers``); on the sparse path, the GEMM path and a mix of both
    (a tap cost that sends the larger boxes to the GEMM), every fault gives the full
    re-inference's logits, and the channels-last entries were made and read."""
    from accelsim.faults import graph_boxes, graph_campaign

    monkeypatch.setattr(graph_boxes, "TAP_COST_BASE", tap_cost)
    monkeypatch.setattr(graph_boxes, "TAP_COST_PER_CHANNEL", 0)
    layouts = []
    for name in ("conv_box", "conv_pool_box"):
        fn = getattr(graph_campaign, name)
        monkeypatch.setattr(graph_campaign, name, lambda *a, fn=fn: layouts.append(
            (a[1].name, *a[-2:])) or fn(*a))  # fmt: skip
    g = stacked(rng, requantization)
    x = rng.integers(-128, 128, size=(10, *g.tensors[g.input].shape)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(10, np.int64)).golden()
    assert faults_equal_full_reinference(g, x, state, sample_graph_faults(g, 200, seed=5)) > 10
    # (node, reads, makes) channels last: c1 makes p1 (c2 reads it; c1 itself reads the fault
    # site c0 as it is), c2 to c4 read and make them, c5 reads them (a pool reads its output)
    want = {("c1", False, True), ("c2", True, True), ("c3", True, True), ("c4", True, True),
            ("c5", True, False)}  # fmt: skip
    assert want <= set(layouts)  # (a fault in a node's own output reaches the next as it is)


def two_blocks(rng, requantization: str = "tflm"):
    """Two residual blocks: ADDs whose output a convolution and the next ADD read (made
    channels last), ADD inputs from convolutions (channels last) and from the fault site (as
    it is), a strided convolution after, the last map averaged."""
    b = Builder(rng, (2, 5, 5))
    pad = (1, 1, 1, 1)
    b.weighted("CONV_2D", "c0", "x", (3, 2, 3, 3), (3, 5, 5), padding=pad, activation="relu")
    b.weighted("CONV_2D", "c1", "c0", (3, 3, 3, 3), (3, 5, 5), padding=pad, activation="relu")
    b.weighted("CONV_2D", "c2", "c1", (3, 3, 3, 3), (3, 5, 5), padding=pad)
    s = b.tensors["c0"].scale
    b.op("ADD", "add1", ["c2", "c0"], (3, 5, 5), scale=s * 1.5, zp=-128, activation="relu")
    b.weighted("CONV_2D", "c3", "add1", (3, 3, 3, 3), (3, 5, 5), padding=pad)
    b.op("ADD", "add2", ["add1", "c3"], (3, 5, 5), scale=s * 2, zp=-20)
    b.weighted("CONV_2D", "c4", "add2", (2, 3, 3, 3), (2, 3, 3), stride=2, padding=pad,
               activation="relu")  # fmt: skip
    b.op("MEAN", "gap", ["c4"], (2,), scale=b.tensors["c4"].scale / 2, zp=-100)
    b.weighted("FULLY_CONNECTED", "fc", "gap", (4, 2), (4,))
    return b.graph("fc", requantization)


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("tap_cost", [0, 10**9], ids=["sparse", "gemm"])
def test_channels_last_entries_through_adds_equal_full_reinference(
    rng, monkeypatch, requantization: str, tap_cost: int
) -> None:
    """ADDs read and make channels-last entries where only convolutions and ADDs read the
    tensor (``graph_layout.channels_last_readers``): every fault gives the full
    re-inference's logits on the sparse and the GEMM path, in both requantisations, and the
    ADDs took the layouts expected of them."""
    from accelsim.faults import graph_boxes, graph_campaign

    monkeypatch.setattr(graph_boxes, "TAP_COST_BASE", tap_cost)
    monkeypatch.setattr(graph_boxes, "TAP_COST_PER_CHANNEL", 0)
    layouts = []
    fn = graph_campaign.add_box
    monkeypatch.setattr(graph_campaign, "add_box",
                        lambda *a: layouts.append((a[1].name, *a[-2:])) or fn(*a))  # fmt: skip
    g = two_blocks(rng, requantization)
    x = rng.integers(-128, 128, size=(10, *g.tensors[g.input].shape)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(10, np.int64)).golden()
    faults = graph_every_bit_flip(g)
    assert faults_equal_full_reinference(g, x, state, faults) > len(faults) // 10
    # (node, (inputs channels last), output channels last): a fault in c0 reaches add1 through
    # c1 and c2 (channels last) and as it is (the fault site), then add2 through add1 and c3
    # (both channels last); a fault in c2 or c3 reaches its ADD as it is, the other input
    # unchanged; both ADDs make channels-last entries (a convolution and an ADD read them)
    want = {("add1", (True, False), True), ("add2", (True, True), True),
            ("add1", (False, False), True), ("add2", (False, False), True)}  # fmt: skip
    assert want <= set(layouts)
