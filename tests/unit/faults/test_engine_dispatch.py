"""Which engine runs a chain's campaign: the graph engine for chains of ``GRAPH_ENGINE_MACS``
or more, protected or not, the chain engine otherwise; the rows are the same either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.config.workload import FaultKind, FaultSite, FaultSpec
from accelsim.config.workload import ProtectionMode as Mode
from accelsim.faults import campaign as campaign_module
from accelsim.faults.campaign import CampaignInputs, fault_source, run_campaign
from accelsim.faults.graph_campaign import GraphCampaignInputs
from accelsim.faults.model import fault_batch
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.faults.store import open_store
from accelsim.functional.network import quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, unprotected


def _rows(tmp_path: Path, name: str, source, faults):
    con = open_store(tmp_path / f"{name}.sqlite", {"t": name}, resume=False)
    rows = run_campaign(source, faults, con)
    con.close()
    return rows


@pytest.mark.parametrize(
    ("mode", "kind"),
    [(Mode.NONE, FaultKind.SINGLE_BIT), (Mode.NONE, FaultKind.STUCK_AT_0),
     (Mode.SPLIT, FaultKind.SINGLE_BIT), (Mode.TMR, FaultKind.SINGLE_BIT),
     (Mode.RANGER, FaultKind.SINGLE_BIT)],
    ids=lambda v: v.value,
)  # fmt: skip
def test_a_large_chain_runs_on_the_graph_engine_with_the_same_rows(
    tmp_path: Path, tiny_net, tiny_images, monkeypatch, mode, kind
) -> None:
    x = quantize_images(tiny_net, tiny_images)
    labels = np.arange(len(x)) % 5
    pnet = unprotected(tiny_net)
    if mode is not Mode.NONE:
        plan = plan_from_neurons(tiny_net, mode, {tiny_net.neuron_layers[0]: np.array([0, 3])})
        pnet = ProtectedNetwork(tiny_net, plan, profile_ranges(tiny_net, x))
    pop = build_population(tiny_net, pnet.plan, kind, 1)
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, kind, 1, "exhaustive", 0.01, 0.95, 0.5, 0)
    faults = fault_batch(sample_faults(pop, spec, rng=np.random.default_rng(0)))
    assert isinstance(fault_source(pnet, x, labels), CampaignInputs)  # 2,000-odd MACs
    chain = _rows(tmp_path, "chain", fault_source(pnet, x, labels), faults)
    monkeypatch.setattr(campaign_module, "GRAPH_ENGINE_MACS", 0)
    source = fault_source(pnet, x, labels)
    assert isinstance(source, GraphCampaignInputs)
    graph = _rows(tmp_path, "graph", source, faults)
    assert chain.n_changed.sum() > 0
    assert (faults.copy > 0).any() == (mode in (Mode.SPLIT, Mode.TMR))  # ranger adds no copies
    for field in ("ids", "layer", "neuron", "copy", "mask", "n_changed", "n_correct"):
        np.testing.assert_array_equal(getattr(graph, field), getattr(chain, field))
