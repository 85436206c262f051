"""Protection on graph networks: campaigns with copies equal a full protected re-inference in
every mode on residual, depthwise and concatenation graphs; on a chain as a graph they equal
the chain engine; splits are refused where the LCU does not hold."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim import FaultKind, ProtectionMode, evaluate_faults, load_dataset, load_network
from accelsim.config.workload import FaultSite, FaultSpec
from accelsim.errors import AccelsimError
from accelsim.faults.campaign import CampaignInputs, fault_batch
from accelsim.faults.graph_campaign import GraphCampaignInputs, faulty_graph_output
from accelsim.faults.model import apply_fault
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.functional.graph import Graph, graph_from_network, run_graph, run_node
from accelsim.functional.models import layer_sizes
from accelsim.functional.network import classify, quantize_images
from accelsim.protection.graph_protected import (
    PLAIN_MERGES,
    channel_node,
    graph_ranges,
    half_params,
    merge_node_copies,
    protected_graph_classes,
    protected_graph_tensors,
    protected_graph_values,
)
from accelsim.protection.plan import EXTRA_COPIES, plan_from_neurons, plan_from_nvf, splittable
from accelsim.protection.protected import ProtectedNetwork, profile_ranges
from tests.unit.faults.test_graph_campaign import concat, inverted, residual, stacked, wide

MODES = tuple(m for m in ProtectionMode if m is not ProtectionMode.NONE)


def converter_zero_points(g: Graph) -> Graph:
    """``g`` with every RELU / RELU6 output at zero point -128, as TFLite's converter writes
    them (the builder draws random zero points)."""
    tensors = dict(g.tensors)
    for nd in g.nodes:
        old_in, old_out = g.tensors[nd.inputs[0]], g.tensors[nd.output]
        if nd.attr("activation", "none") in ("relu", "relu6"):
            tensors[nd.output] = dataclasses.replace(old_out, zero_point=-128)
        elif (old_in.scale, old_in.zero_point) == (old_out.scale, old_out.zero_point):
            zp = tensors[nd.inputs[0]].zero_point  # ops keeping their input's quantisation
            tensors[nd.output] = dataclasses.replace(old_out, zero_point=zp)
    return Graph(g.name, g.dataset, g.input, g.output, tensors, g.nodes)


def random_plan(g, mode, rng, share=0.4):
    chosen = {}
    for node, size in layer_sizes(g).items():
        if mode in (ProtectionMode.SPLIT, ProtectionMode.SPLIT_CLAMPED) and not splittable(g, node):
            continue
        chosen[node] = rng.choice(size, max(1, int(size * share)), replace=False)
    return plan_from_neurons(g, mode, chosen)


def sampled_faults(net, plan, n, seed, kind=FaultKind.SINGLE_BIT):
    pop = build_population(net, plan, kind, 1)
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, kind, 1, min(n, pop.size), 0.01, 0.95, 0.5, seed)
    return fault_batch(sample_faults(pop, spec, rng=np.random.default_rng(seed)))


def stacked_plan(g, mode, rng):
    """40 % of the neurons of ``stacked``'s c1 and c4 protected, the convolutions between
    them not: channels-last entries travel from c2 to c3 beside nodes that merge copies."""
    sizes = layer_sizes(g)
    chosen = {i: rng.choice(sizes[i], int(sizes[i] * 0.4), replace=False)
              for i, nd in enumerate(g.nodes) if nd.name in ("c1", "c4")}  # fmt: skip
    return plan_from_neurons(g, mode, chosen)


@pytest.mark.parametrize("build", [residual, inverted, concat, wide, stacked])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_protected_graph_faults_equal_full_reinference(build, mode, rng) -> None:
    g = converter_zero_points(build(rng))
    x = rng.integers(-128, 128, size=(12, *g.input_info.shape)).astype(np.int8)
    plan = (stacked_plan if build is stacked else random_plan)(g, mode, rng)
    assert plan.n_protected > 0
    ranges = graph_ranges(g, x[:6])
    faults = sampled_faults(g, plan, 120, seed=int(rng.integers(1000)))
    assert (faults.copy > 0).any() or mode in (ProtectionMode.RANGER, ProtectionMode.ZERO)
    source = GraphCampaignInputs(g, x, np.zeros(len(x), np.int64), plan, ranges)
    rows = evaluate_faults(source, faults)
    pnet = ProtectedNetwork(g, plan, ranges)
    golden = protected_graph_classes(pnet, x, reference=True)
    np.testing.assert_array_equal(source.fault_free_classes(), golden)
    by_id = dict(zip(rows.ids.tolist(), rows.n_changed.tolist(), strict=True))
    state = source.golden()
    fault_free = protected_graph_values(pnet, x, reference=True)[0][g.output]
    moved = 0
    for k in range(len(faults)):
        fault = tuple(int(a[k]) for a in (faults.layer, faults.index, faults.copy, faults.mask,
                                          faults.kind))  # fmt: skip
        node, index, copy, mask, kind = fault
        hit = (node, index, copy, lambda v, m=mask, k=kind: apply_fault(v, m, k))
        want = protected_graph_values(pnet, x, fault=hit, reference=True)[0][g.output]
        got = faulty_graph_output(pnet, state, *fault[:2], *fault[3:], copy=fault[2])
        np.testing.assert_array_equal(got, want, err_msg=str((mode, fault)))
        changed = int(np.sum(classify(want) != golden))
        assert by_id[int(faults.ids[k])] == changed, (mode, fault)
        moved += bool(np.any(want != fault_free))
    assert moved > 0


@pytest.mark.parametrize("build", [residual, inverted, concat, wide])
@pytest.mark.parametrize("mode", [ProtectionMode.TMR, ProtectionMode.SPLIT], ids=str)
def test_batched_golden_tensors_equal_one_whole_pass(build, mode, rng) -> None:
    """The campaign's golden run, 5 images at a time (the last batch short), gives every
    tensor and every protected node's pre-merge copy of one whole-batch pass."""
    g = converter_zero_points(build(rng))
    x = rng.integers(-128, 128, size=(12, *g.input_info.shape)).astype(np.int8)
    pnet = ProtectedNetwork(g, random_plan(g, mode, rng), graph_ranges(g, x))
    values, pre = protected_graph_values(pnet, x)
    got_values, got_pre = protected_graph_tensors(pnet, x, batch_size=5)
    assert pre
    assert got_values.keys() == values.keys()
    assert got_pre.keys() == pre.keys()
    for want, got in ((values, got_values), (pre, got_pre)):
        for key, a in want.items():
            assert got[key].dtype == a.dtype
            np.testing.assert_array_equal(got[key], a, err_msg=str(key))


@pytest.mark.parametrize(
    "mode", [ProtectionMode.SPLIT, ProtectionMode.SPLIT_CLAMPED, ProtectionMode.TMR,
             ProtectionMode.DMR_AND, ProtectionMode.RANGER, ProtectionMode.ZERO],
    ids=lambda m: m.value,
)  # fmt: skip
def test_a_protected_chain_as_a_graph_equals_the_chain_engine(mode) -> None:
    """LeNet-5 (zero points 0) protected in the chain engine and, as a graph, in the graph
    engine: the same faults change the same number of classes."""
    net = load_network("lenet5")
    g = graph_from_network(net)
    data = load_dataset("mnist", "sample", n_images=60)
    x = quantize_images(net, data.images)
    labels = data.labels.astype(np.int64)
    rng = np.random.default_rng(5)
    neurons = {
        i: rng.choice(int(np.prod(net.layers[i].out_shape)), 40, replace=False)
        for i in net.neuron_layers
    }
    chain_plan = plan_from_neurons(net, mode, neurons)
    graph_plan = plan_from_neurons(g, mode, neurons)
    ranges = profile_ranges(net, x)
    assert graph_ranges(g, x) == ranges
    faults = sampled_faults(net, chain_plan, 1500, seed=1)
    chain = evaluate_faults(CampaignInputs(ProtectedNetwork(net, chain_plan, ranges), x, labels),
                            faults)  # fmt: skip
    graph = evaluate_faults(GraphCampaignInputs(g, x, labels, graph_plan, ranges), faults)
    np.testing.assert_array_equal(graph.ids, chain.ids)
    np.testing.assert_array_equal(graph.n_changed, chain.n_changed)
    np.testing.assert_array_equal(graph.n_correct, chain.n_correct)
    assert chain.n_changed.sum() > 0


def test_split_is_refused_where_the_lcu_does_not_hold(rng) -> None:
    g = residual(rng)  # c1: RELU at a random zero point; c2: no activation
    with pytest.raises(AccelsimError, match=r"node c2, tensor c2: cannot split.*does not clamp"):
        plan_from_neurons(g, ProtectionMode.SPLIT, {1: [0]})
    with pytest.raises(
        AccelsimError, match=r"node c1, tensor c1: cannot split.*its zero point is -?[1-9]"
    ):
        plan_from_neurons(g, ProtectionMode.SPLIT, {0: [0]})
    with pytest.raises(AccelsimError, match=r"node fc holds no neurons"):
        plan_from_neurons(g, ProtectionMode.TMR, {len(g.nodes) - 1: [0]})
    fixed = converter_zero_points(g)
    nvf = {0: np.ones(50), 1: np.ones(50)}
    plan = plan_from_nvf(fixed, ProtectionMode.SPLIT, nvf, 50.0)
    assert plan.layers == (0,)  # c2 cannot be split: the sweep leaves it out
    assert plan_from_nvf(fixed, ProtectionMode.TMR, nvf, 50.0).layers == (0, 1)


@pytest.mark.parametrize("mode", [m for m in PLAIN_MERGES if m is not ProtectionMode.NONE],
                         ids=lambda m: m.value)  # fmt: skip
def test_fault_free_copies_merge_to_the_plain_code_in_plain_merge_modes(mode, rng) -> None:
    # the campaign computes these modes' nodes downstream of a fault as unprotected ones
    g = converter_zero_points(residual(rng))
    plan = random_plan(g, mode, rng)
    codes = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    pnet = ProtectedNetwork(g, plan, {})
    for i in plan.layers:
        copies = [codes.copy() for _ in range(1 + EXTRA_COPIES[mode])]
        np.testing.assert_array_equal(merge_node_copies(pnet, i, copies, codes), codes)


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
def test_a_channel_slice_computes_those_channels_of_the_node(requantization, rng) -> None:
    # what a split recomputes for its protected channels only, against the whole node
    g = wide(rng, requantization)
    x = rng.integers(-128, 128, size=(5, *g.input_info.shape)).astype(np.int8)
    values = {g.input: x, **run_graph(g, x, keep=lambda t: True, reference=True)}
    checked = 0
    for nd in g.nodes:
        if nd.op not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        ins = [values[t] for t in nd.inputs]
        o = nd.weight.shape[0]
        chs = np.sort(rng.choice(o, max(1, o // 2), replace=False))
        for params in (g.params[nd.name], half_params(g, nd)):
            sub, p = channel_node(nd, chs, params)
            want = run_node(g, nd, ins, params=params, reference=True)[:, chs]
            np.testing.assert_array_equal(run_node(g, sub, ins, params=p), want)
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("tap_cost", [0, 10**12], ids=["sparse", "gemm"])
@pytest.mark.parametrize("mode", [ProtectionMode.SPLIT, ProtectionMode.SPLIT_CLAMPED],
                         ids=lambda m: m.value)  # fmt: skip
def test_split_halves_from_either_convolution_path_equal_full_reinference(
    tap_cost, mode, requantization, rng, monkeypatch
) -> None:
    # the halves of a split convolution downstream of a fault come from the raw accumulators
    # that the sparse kernel keeps, or that the GEMM over the box gives
    from accelsim.faults import graph_boxes

    monkeypatch.setattr(graph_boxes, "TAP_COST_BASE", tap_cost)
    monkeypatch.setattr(graph_boxes, "TAP_COST_PER_CHANNEL", 0)
    g = converter_zero_points(wide(rng, requantization))
    x = rng.integers(-128, 128, size=(10, *g.input_info.shape)).astype(np.int8)
    plan = random_plan(g, mode, rng)
    pnet = ProtectedNetwork(g, plan, {})
    state = GraphCampaignInputs(g, x, np.zeros(len(x), np.int64), plan, {}).golden()
    faults = sampled_faults(g, plan, 80, seed=int(rng.integers(1000)))
    fault_free = protected_graph_values(pnet, x, reference=True)[0][g.output]
    moved = 0
    for k in range(len(faults)):
        node, index, copy, mask, kind = (int(a[k]) for a in (
            faults.layer, faults.index, faults.copy, faults.mask, faults.kind))  # fmt: skip
        hit = (node, index, copy, lambda v, m=mask, k=kind: apply_fault(v, m, k))
        want = protected_graph_values(pnet, x, fault=hit, reference=True)[0][g.output]
        got = faulty_graph_output(pnet, state, node, index, mask, kind, copy=copy)
        np.testing.assert_array_equal(got, want, err_msg=str((node, index, copy, mask)))
        moved += bool(np.any(want != fault_free))
    assert moved > 10
