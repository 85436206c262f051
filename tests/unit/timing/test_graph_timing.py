"""Graph networks on the SimPy accelerator: array cycles per node as SCALE-Sim counts them,
the activation unit's cycles and the held skip tensors by hand, protected neurons' copies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim import ProtectionMode, load_arch
from accelsim.functional.models import load_model
from accelsim.protection.plan import plan_from_neurons
from accelsim.timing.graph_schedule import graph_compute_cycles, held_bytes, schedule_graph
from accelsim.timing.schedule import fold_map
from accelsim.timing.simulate import simulate
from tests.unit.faults.test_graph_campaign import inverted


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
def test_array_cycles_per_node_are_scalesims_and_ideal_memory_adds_only_the_unit(name) -> None:
    g = load_model(name)
    arch = load_arch("pe16x16")
    _, report = simulate(g, arch, ideal_memory=True)
    per_node = {t.name: t.compute_cycles for t in report.layers if t.tiles}
    assert per_node == graph_compute_cycles(g, arch.pe_array)  # equal SCALE-Sim (benchmark)
    assert report.total_cycles == report.total("compute_cycles") + report.total("post_cycles")
    _, real = simulate(g, arch)
    assert real.total_cycles > report.total_cycles  # off-chip transfers cost cycles


def test_activation_unit_cycles_and_held_skip_tensors_by_hand() -> None:
    g = load_model("resnet20")
    cols = load_arch("pe16x16").pe_array.cols
    sched = {ls.name: ls for ls in schedule_graph(g, load_arch("pe16x16")).layers}
    # s1b1_add: two 16 x 32 x 32 operands, one element per lane per cycle, 16 lanes
    assert sched["s1b1_add"].post_cycles == 2 * 16 * 32 * 32 // cols
    assert sched["s1b1_add"].layer_input_bytes == 2 * 16 * 32 * 32
    mean = next(n for n in g.nodes if n.op == "MEAN")
    c, h, w = g.tensors[mean.inputs[0]].shape
    assert sched[mean.name].post_cycles == -(-c * h * w // cols)
    held = dict(zip((n.name for n in g.nodes), held_bytes(g), strict=True))
    # while a block's convolutions run, its input waits for the ADD
    assert held["s1b1_conv1"] == 0  # it reads the block input itself
    assert held["s1b1_conv2"] == 16 * 32 * 32
    assert held["s1b1_add"] == 0


def test_protected_depthwise_neurons_rerun_only_their_channels_folds() -> None:
    """Output stationary 4 x 4: a depthwise node with 4 channels x dm 2 is 4 GEMMs (M 4, N 2,
    K 9), one fold each; TMR on neurons of channels 0 and 3 re-runs those two folds twice
    (the copies do not fit in the fold's idle rows: 4 rows used of 4)."""
    rng = np.random.default_rng(0)
    g = inverted(rng)
    dw = next(i for i, n in enumerate(g.nodes) if n.op == "DEPTHWISE_CONV_2D")
    arch = load_arch("pe8x8")
    arch = dataclasses.replace(arch, pe_array=dataclasses.replace(arch.pe_array, rows=4, cols=4))
    per = 4 * 2  # outputs per channel group: 2 x 2 pixels x dm 2
    plan = plan_from_neurons(g, ProtectionMode.TMR, {dw: [0, 3 * per + 5]})
    base = {ls.layer: ls for ls in schedule_graph(g, arch).layers}[dw]
    prot = {ls.layer: ls for ls in schedule_graph(
        g, arch, protected=dict(zip(plan.layers, plan.neurons, strict=True)), extra_copies=2,
        mode=plan.mode).layers}[dw]  # fmt: skip
    assert base.n_tiles == 4
    assert fold_map(base.gemm, arch.pe_array).folds == 1
    assert prot.n_tiles == 4 + 2 * 2
    assert int(np.count_nonzero(prot.copy)) == 4
    assert int(prot.protected.sum()) == 2
