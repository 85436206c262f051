"""Fold counts and compute cycles: SCALE-Sim v3's model, protected copies, operand bytes."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.arch import Dataflow, PEArraySpec
from accelsim.timing.schedule import Gemm, fold_map, layer_gemm, schedule_layer

OS, WS, IS = Dataflow.OUTPUT_STATIONARY, Dataflow.WEIGHT_STATIONARY, Dataflow.INPUT_STATIONARY

# "Total Cycles" of SCALE-Sim 3.0.0's COMPUTE_REPORT.csv for LeNet-5's layers (conv1: M 576,
# N 6, K 25; conv2: 64, 16, 150; fc1: 1, 120, 256; fc2: 1, 84, 120; fc3: 1, 10, 84), run on
# this machine with InterfaceBandwidth CALC; it prints the index of the last cycle (count - 1).
SCALESIM_LENET = {
    (OS, 16): [1979, 719, 2287, 899, 113],
    (WS, 8): [2391, 3267, 11039, 3794, 505],
    (WS, 16): [1243, 1099, 6015, 2255, 281],
    (WS, 32): [669, 789, 3039, 1139, 284],
    (IS, 8): [8063, 5775, 4543, 1589, 351],
    (IS, 16): [3743, 2479, 2655, 1039, 335],
    (IS, 32): [1799, 1099, 1711, 711, 311],
}
LENET_GEMMS = [Gemm(576, 6, 25), Gemm(64, 16, 150), Gemm(1, 120, 256), Gemm(1, 84, 120),
               Gemm(1, 10, 84)]  # fmt: skip


@pytest.mark.parametrize(("flow", "size"), sorted(SCALESIM_LENET, key=str))
def test_compute_cycles_equal_scalesim(flow, size):
    pe = PEArraySpec(size, size, flow)
    got = [fold_map(g, pe).cycles - 1 for g in LENET_GEMMS]
    assert got == SCALESIM_LENET[(flow, size)]


def test_gemm_of_layers(tiny_net):
    conv1, _, conv2, _, dense, _ = tiny_net.layers
    assert layer_gemm(conv1) == Gemm(81, 3, 9)
    assert layer_gemm(conv2) == Gemm(4, 4, 27)
    assert layer_gemm(dense) == Gemm(1, 7, 16)
    assert layer_gemm(tiny_net.layers[1]) is None


@pytest.mark.parametrize("flow", list(Dataflow))
def test_schedule_covers_every_fold_once_and_copies_follow_their_fold(tiny_net, flow):
    pe = PEArraySpec(4, 3, flow)
    layer = tiny_net.layers[0]
    plain = schedule_layer(layer, 0, pe, None, 0)
    fm = plain.fold
    assert plain.n_tiles == fm.folds
    assert len({(r, c) for r, c in zip(plain.row_fold, plain.col_fold, strict=True)}) == fm.folds
    protected = np.array([0, 80])  # channel 0, first and last pixel
    tmr = schedule_layer(layer, 0, pe, protected, 2)
    originals = tmr.copy == 0
    assert originals.sum() == fm.folds
    for t in np.flatnonzero(tmr.copy > 0):  # a copy re-runs the fold right before it
        assert (tmr.row_fold[t], tmr.col_fold[t]) == (tmr.row_fold[t - 1], tmr.col_fold[t - 1])
        assert tmr.copy[t] == tmr.copy[t - 1] + 1
    assert tmr.protected.sum() == 2  # the correction stage gets each protected neuron once
    if flow is OS:
        # pixel 0's fold uses all 4 rows: re-run twice; pixel 80's (81 = 20 * 4 + 1) uses one
        # row: its two copies are stacked in the idle rows 1 and 2 of the same fold
        assert (tmr.copy > 0).sum() == 2
        last = np.flatnonzero(tmr.row_fold == fm.row_folds - 1)
        assert tmr.stack[last].tolist() == [3]
        assert tmr.stack_offset[last].tolist() == [1]
    elif flow is WS:  # one strip (channel 0) of 3 columns: every reduction fold re-runs
        assert (tmr.copy > 0).sum() == 2 * fm.row_folds
    else:  # is: pixels 0 and 80 lie in two strips that use all 3 columns (81 = 27 * 3)
        assert (tmr.copy > 0).sum() == 2 * 2 * fm.row_folds


def test_operand_bytes_per_dataflow(tiny_net):
    layer = tiny_net.layers[0]  # M 81, N 3, K 9
    os_ = schedule_layer(layer, 0, PEArraySpec(4, 3, OS), None, 0)
    assert os_.input_bytes[0] == 4 * 9
    assert os_.weight_bytes[0] == 3 * (9 + 4)
    assert os_.output_bytes[-1] == 1 * 3  # last row fold holds one pixel (81 = 20 * 4 + 1)
    assert os_.writeback_bytes.sum() == 81 * 3
    ws = schedule_layer(layer, 0, PEArraySpec(4, 3, WS), None, 0)  # K folds: 4, 4, 1
    np.testing.assert_array_equal(ws.output_bytes, [81 * 3 * 4, 81 * 3 * 4, 81 * 3])
    np.testing.assert_array_equal(ws.writeback_bytes, [0, 0, 81 * 3])


def test_stacked_copies_cost_no_cycles(tiny_net):
    """d1 (M 1) on a 4x3 output-stationary array uses one row: TMR stacks both copies in rows
    1 and 2 of the same folds, so its folds (and cycles) do not change."""
    pe = PEArraySpec(4, 3, OS)
    layer = tiny_net.layers[4]
    plain = schedule_layer(layer, 4, pe, None, 0)
    tmr = schedule_layer(layer, 4, pe, np.arange(7), 2)
    assert tmr.n_tiles == plain.n_tiles
    assert (tmr.copy == 0).all()
    assert tmr.stack.tolist() == [3] * plain.n_tiles
    assert tmr.protected.tolist() == [3, 3, 1]
    five_rows = schedule_layer(layer, 4, PEArraySpec(2, 3, OS), np.arange(7), 2)
    assert five_rows.n_tiles == 3 * plain.n_tiles  # 3 copies need 3 rows: re-run instead


def test_graph_compute_cycles_of_a_chain_equal_scalesim():
    from accelsim import graph_from_network, load_network
    from accelsim.timing.graph_schedule import graph_compute_cycles

    g = graph_from_network(load_network("lenet5"))
    for (flow, size), want in SCALESIM_LENET.items():
        got = graph_compute_cycles(g, PEArraySpec(size, size, flow))
        assert [v - 1 for v in got.values()] == want


def test_depthwise_lowers_to_one_gemm_per_channel_by_hand(rng):
    from accelsim.timing.graph_schedule import graph_compute_cycles, graph_topology_csv, node_gemms
    from tests.unit.interop.test_graph_tflite_micro import Builder

    b = Builder(rng, (3, 7, 7))
    b.weighted("DEPTHWISE_CONV_2D", "dw", "x", (6, 3, 3), (6, 5, 5), depth_multiplier=2)
    g = b.graph("dw")
    assert node_gemms(g, g.nodes[0]) == [Gemm(25, 2, 9)] * 3
    # OS on 8x8: M 25 -> 4 row folds, N 2 -> 1 column fold, 9 + 8 + 8 - 2 = 23 cycles a fold
    assert graph_compute_cycles(g, PEArraySpec(8, 8, OS)) == {"dw": 3 * 4 * 23}
    assert "dw_DP, 7, 7, 3, 3, 3, 2, 1," in graph_topology_csv(g)


def test_topology_crops_strided_inputs_to_whole_strides(rng):
    from accelsim.timing.graph_schedule import graph_topology_csv
    from tests.unit.interop.test_graph_tflite_micro import Builder

    b = Builder(rng, (2, 8, 8))  # padded 8 + 1 = 9 rows, k 3, stride 2: 4 outputs; SCALE-Sim
    b.weighted("CONV_2D", "c", "x", (4, 2, 3, 3), (4, 4, 4), stride=2, padding=(0, 1, 0, 1))
    assert "c, 9, 9, 3, 3, 2, 4, 2," in graph_topology_csv(b.graph("c"))  # ceil((9-3+2)/2) = 4
