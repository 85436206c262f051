"""PE-datapath faults on graph networks: fault-free fold-by-fold values equal the graph engine
(depthwise groups, zero points, protection); LeNet-5 as a graph gives the chain's PE campaign
rows fault for fault; the transient shortcut equals running every node on the array."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim import load_dataset, load_network
from accelsim.config.arch import Dataflow, OffchipSpec, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.faults.campaign import evaluate_faults
from accelsim.functional.graph import graph_from_network
from accelsim.functional.models import layer_sizes
from accelsim.functional.network import classify, quantize_images
from accelsim.protection.graph_protected import graph_ranges, protected_graph_values
from accelsim.protection.plan import plan_from_neurons, splittable
from accelsim.protection.protected import ProtectedNetwork
from accelsim.timing.graph_values import GraphPeCampaignInputs, graph_accelerator_logits
from accelsim.timing.pe_campaign import PeCampaignInputs, pe_fault_batch
from accelsim.timing.pe_faults import PeSite, sample_pe_faults
from accelsim.timing.simulate import simulate
from tests.unit.faults.test_graph_campaign import concat, inverted, residual
from tests.unit.protection.test_graph_protection import converter_zero_points
from tests.unit.timing.conftest import arch_with

MODES = (ProtectionMode.NONE, ProtectionMode.SPLIT, ProtectionMode.TMR, ProtectionMode.RANGER)


def _plan(g, mode, rng):
    chosen = {}
    if mode is not ProtectionMode.NONE:
        for node, size in layer_sizes(g).items():
            if mode is ProtectionMode.SPLIT and not splittable(g, node):
                continue
            chosen[node] = rng.choice(size, max(1, size // 3), replace=False)
    return plan_from_neurons(g, mode, chosen)


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("build", [residual, inverted, concat])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_fault_free_fold_by_fold_values_equal_the_graph_engine(flow, build, mode, rng) -> None:
    g = converter_zero_points(build(rng))
    x = rng.integers(-128, 128, size=(10, *g.input_info.shape)).astype(np.int8)
    plan = _plan(g, mode, rng)
    pnet = ProtectedNetwork(g, plan, graph_ranges(g, x))
    schedule, _ = simulate(g, arch_with(PEArraySpec(3, 2, flow)), plan=plan)
    want = protected_graph_values(pnet, x)[0][g.output]
    np.testing.assert_array_equal(graph_accelerator_logits(schedule, pnet, x), want)


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("mode", [ProtectionMode.NONE, ProtectionMode.TMR], ids=lambda m: m.value)
def test_lenet5_as_a_graph_gives_the_chains_pe_campaign(flow, mode) -> None:
    net = load_network("lenet5")
    g = graph_from_network(net)
    data = load_dataset("mnist", "sample", n_images=24)
    x = quantize_images(net, data.images)
    labels = data.labels.astype(np.int64)
    rng = np.random.default_rng(7)
    neurons = {} if mode is ProtectionMode.NONE else {
        i: rng.choice(int(np.prod(net.layers[i].out_shape)), 30, replace=False)
        for i in net.neuron_layers
    }  # fmt: skip
    arch = arch_with(PEArraySpec(4, 4, flow), offchip=OffchipSpec(8, 20))
    chain_plan, graph_plan = (
        plan_from_neurons(net, mode, neurons),
        plan_from_neurons(g, mode, neurons),
    )
    c_sched, c_rep = simulate(net, arch, plan=chain_plan)
    g_sched, g_rep = simulate(g, arch, plan=graph_plan)
    assert c_rep.total_cycles == g_rep.total_cycles
    effect = 0
    for site in PeSite:
        faults = sample_pe_faults(site, 4, 4, c_rep.total_cycles, 25, permanent=False, rng=rng)
        faults += sample_pe_faults(site, 4, 4, c_rep.total_cycles, 2, permanent=True, rng=rng)
        batch = pe_fault_batch(faults, c_sched, c_rep)
        chain = evaluate_faults(PeCampaignInputs(c_sched, c_rep, ProtectedNetwork(net, chain_plan, {}),
                                                 x, labels, site), batch)  # fmt: skip
        graph = evaluate_faults(GraphPeCampaignInputs(g_sched, g_rep, ProtectedNetwork(g, graph_plan, {}),
                                                      x, labels, site), batch)  # fmt: skip
        np.testing.assert_array_equal(graph.n_changed, chain.n_changed)
        np.testing.assert_array_equal(graph.n_correct, chain.n_correct)
        effect += int(chain.n_changed.sum())
    assert effect > 0


@pytest.mark.parametrize("flow", list(Dataflow))
def test_the_transient_shortcut_equals_every_node_on_the_array(flow, rng) -> None:
    g = converter_zero_points(inverted(rng))
    x = rng.integers(-128, 128, size=(12, *g.input_info.shape)).astype(np.int8)
    plan = _plan(g, ProtectionMode.TMR, rng)
    pnet = ProtectedNetwork(g, plan, {})
    schedule, report = simulate(g, arch_with(PEArraySpec(3, 2, flow)), plan=plan)
    golden = classify(graph_accelerator_logits(schedule, pnet, x))
    moved = 0
    for site in PeSite:
        faults = sample_pe_faults(site, 3, 2, report.total_cycles, 30, permanent=False, rng=rng)
        faults += sample_pe_faults(site, 3, 2, report.total_cycles, 3, permanent=True, rng=rng)
        batch = pe_fault_batch(faults, schedule, report)
        source = GraphPeCampaignInputs(schedule, report, pnet, x, np.zeros(len(x), np.int64), site)
        rows = evaluate_faults(source, batch)
        for k, fault in enumerate(faults):
            full = classify(graph_accelerator_logits(schedule, pnet, x, fault=fault,
                                                     fold_starts=report.fold_starts))  # fmt: skip
            assert rows.n_changed[k] == int(np.sum(full != golden)), (site, fault)
            moved += rows.n_changed[k] > 0
    assert moved > 0
