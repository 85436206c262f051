"""Campaigns on the real networks (``pytest -m slow``): the paper's sample sizes through the
CLI, and incremental propagation equal to full re-inference on LeNet-5 and AlexNet faults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.cli.main import main
from accelsim.config.workload import FaultKind, FaultSite, FaultSpec
from accelsim.config.workload import ProtectionMode as Mode
from accelsim.datasets import load_dataset
from accelsim.faults.campaign import evaluate_faults, fault_source
from accelsim.faults.golden import compute_golden
from accelsim.faults.graph_campaign import GraphCampaignInputs
from accelsim.faults.model import fault_batch
from accelsim.faults.propagate import faulty_classes
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.functional.modelio import load_network
from accelsim.functional.network import classify, quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, protected_logits
from tests.conftest import REPO, data_dir_or_fail

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize(("name", "size"), [("mlp7", 6734), ("lenet5", 7645), ("alexnet", 9494)])
def test_inject_runs_the_papers_campaign_sizes(capsys, tmp_path: Path, name: str, size: int):
    data_dir_or_fail()
    argv = [
        "inject", str(REPO / "workloads" / f"{name}.yaml"), "--test-split", "test",
        "--test-images", "4", "--workers", "2", "--output-dir", str(tmp_path), "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["faults"] == size
    est = doc["summary"]["critical_rate"]
    assert est["lo"] <= est["value"] <= est["hi"]
    assert sum(d["faults"] for d in doc["per_layer"]) == size


@pytest.mark.parametrize(
    ("name", "dataset", "mode", "n_faults", "n_images"),
    [
        ("lenet5", "mnist", Mode.NONE, 400, 60),
        ("lenet5", "mnist", Mode.SPLIT, 200, 40),
        ("lenet5", "mnist", Mode.RANGER, 200, 40),
        ("alexnet", "cifar10", Mode.NONE, 40, 12),
    ],
)
def test_campaign_equals_full_reinference_on_real_networks(name, dataset, mode, n_faults, n_images):
    """Sign and high bits included (they change classes); split / ranger on every other neuron."""
    net = load_network(name)
    data = load_dataset(dataset, "test", data_dir=data_dir_or_fail(), n_images=n_images)
    x = quantize_images(net, data.images)
    chosen = {}
    if mode is not Mode.NONE:
        chosen = {
            i: np.arange(0, int(np.prod(net.layers[i].out_shape)), 2) for i in net.neuron_layers
        }
    pnet = ProtectedNetwork(net, plan_from_neurons(net, mode, chosen), profile_ranges(net, x[:5]))
    state = compute_golden(pnet, x, data.labels)
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, n_faults, 0.01, 0.95, 0.5, 9)
    faults = sample_faults(
        build_population(net, pnet.plan, spec.kind, 1), spec, rng=np.random.default_rng(9)
    )
    got = faulty_classes(state, fault_batch(faults))
    for f, row in zip(faults, got, strict=True):
        np.testing.assert_array_equal(row, classify(protected_logits(pnet, x, fault=f)), str(f))


@pytest.mark.parametrize("mode", [Mode.SPLIT, Mode.TMR, Mode.RANGER], ids=lambda m: m.value)
def test_protected_alexnet_on_the_graph_engine_equals_full_reinference(mode):
    """What ``run`` and ``inject`` now do for a protected AlexNet: the graph engine, its
    protected convolutions on the sparse path; every 40th neuron protected, faults over every
    copy, each fault's changed classes against a full protected re-inference."""
    net = load_network("alexnet")
    data = load_dataset("cifar10", "test", data_dir=data_dir_or_fail(), n_images=12)
    x = quantize_images(net, data.images)
    labels = data.labels.astype(np.int64)
    chosen = {i: np.arange(0, int(np.prod(net.layers[i].out_shape)), 40) for i in net.neuron_layers}
    pnet = ProtectedNetwork(net, plan_from_neurons(net, mode, chosen), profile_ranges(net, x[:5]))
    source = fault_source(pnet, x, labels)
    assert isinstance(source, GraphCampaignInputs)
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, 40, 0.01, 0.95, 0.5, 9)
    faults = sample_faults(
        build_population(net, pnet.plan, spec.kind, 1), spec, rng=np.random.default_rng(9)
    )
    rows = evaluate_faults(source, fault_batch(faults))
    golden = classify(protected_logits(pnet, x))
    want = [int(np.sum(classify(protected_logits(pnet, x, fault=f)) != golden)) for f in faults]
    np.testing.assert_array_equal(rows.n_changed, want)
    assert sum(want) > 0


@pytest.mark.parametrize("flow", ["output_stationary", "weight_stationary"])
def test_alexnet_on_the_array_equals_forward(flow):
    import dataclasses

    from accelsim.config.arch import Dataflow, PEArraySpec, load_arch
    from accelsim.functional.network import forward
    from accelsim.timing.simulate import plan_schedule
    from accelsim.timing.values import accelerator_logits

    net = load_network("alexnet")
    data = load_dataset("cifar10", "test", data_dir=data_dir_or_fail(), n_images=4)
    x = quantize_images(net, data.images)
    arch = load_arch(REPO / "arch" / "pe16x16.yaml")
    arch = dataclasses.replace(arch, pe_array=PEArraySpec(16, 16, Dataflow(flow)))
    none = ProtectedNetwork(net, plan_from_neurons(net, Mode.NONE, {}), {})
    got = accelerator_logits(plan_schedule(net, arch), none, x)
    np.testing.assert_array_equal(got, forward(net, x))
