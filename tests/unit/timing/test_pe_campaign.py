"""PE-fault campaigns through the campaign engine: the transient shortcut equals running the
whole network on the array fault by fault; the store, workers and resume give the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.arch import Dataflow, OffchipSpec, PEArraySpec
from accelsim.config.workload import FaultKind, ProtectionMode
from accelsim.faults.campaign import run_campaign
from accelsim.faults.model import KIND_CODES
from accelsim.faults.store import open_store, read_rows
from accelsim.functional.network import classify, quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork
from accelsim.timing.pe_campaign import (
    ALL_LAYERS,
    PeCampaignInputs,
    fold_at,
    pe_fault_batch,
    pe_faults_of,
)
from accelsim.timing.pe_faults import PeFault, PeSite, sample_pe_faults
from accelsim.timing.simulate import simulate
from accelsim.timing.values import accelerator_logits
from tests.unit.timing.conftest import arch_with


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("mode", [ProtectionMode.NONE, ProtectionMode.SPLIT, ProtectionMode.TMR])
def test_campaign_equals_full_runs_on_the_array(tiny_net, tiny_images, rng, flow, mode, tmp_path):
    arch = arch_with(PEArraySpec(3, 2, flow), offchip=OffchipSpec(4, 20))
    chosen = {} if mode is ProtectionMode.NONE else {0: np.arange(0, 243, 5), 4: [0, 3]}
    plan = plan_from_neurons(tiny_net, mode, chosen)
    pnet = ProtectedNetwork(tiny_net, plan, {})
    schedule, report = simulate(tiny_net, arch, plan=plan)
    x = quantize_images(tiny_net, tiny_images[:12])
    labels = rng.integers(0, 5, len(x))
    faults = []
    for site in PeSite:
        faults += sample_pe_faults(site, 3, 2, report.total_cycles, 12, permanent=False, rng=rng)
        faults += sample_pe_faults(site, 3, 2, report.total_cycles, 2, permanent=True, rng=rng)
    faults.append(PeFault(PeSite.ACCUMULATOR, 0, 0, 29, None, 1))  # strong: changes classes
    busy = int(report.fold_starts[-1][0])
    faults.append(PeFault(PeSite.ACCUMULATOR, 2, 1, 30, busy + 9))  # in the classifier
    with_site = {}  # one register per campaign: one engine run per site
    for site in PeSite:
        mine = [k for k, f in enumerate(faults) if f.site is site]
        sub = pe_fault_batch(tuple(faults[k] for k in mine), schedule, report)
        assert pe_faults_of(sub, site, 2) == [faults[k] for k in mine]
        inputs = PeCampaignInputs(schedule, report, pnet, x, labels, site)
        con = open_store(tmp_path / f"{site.value}.sqlite", {"site": site.value}, resume=False)
        rows = run_campaign(inputs, sub, con)
        con.close()
        with_site.update({k: (rows.n_changed[j], rows.n_correct[j], rows.layer[j])
                          for j, k in enumerate(mine)})  # fmt: skip
    golden = classify(accelerator_logits(schedule, pnet, x))
    for f, fault in enumerate(faults):
        preds = classify(
            accelerator_logits(schedule, pnet, x, fault=fault, fold_starts=report.fold_starts)
        )
        assert with_site[f][0] == np.sum(preds != golden), fault
        assert with_site[f][1] == np.sum(preds == labels), fault
    layers = np.array([with_site[f][2] for f in range(len(faults))])
    assert (layers == ALL_LAYERS).sum() == 7
    assert with_site[len(faults) - 2][0] > 0
    assert (layers >= 0).sum() > 0


def test_pe_rows_agree_across_workers_and_resume(tiny_net, tiny_images, rng, tmp_path):
    """Two forked workers, and a campaign stopped after its first batch and resumed, store the
    rows one process stores."""
    arch = arch_with(PEArraySpec(3, 2, Dataflow.WEIGHT_STATIONARY), offchip=OffchipSpec(4, 20))
    pnet = ProtectedNetwork(tiny_net, plan_from_neurons(tiny_net, ProtectionMode.NONE, {}), {})
    schedule, report = simulate(tiny_net, arch)
    x = quantize_images(tiny_net, tiny_images[:8])
    labels = rng.integers(0, 5, len(x))
    faults = sample_pe_faults(PeSite.ACCUMULATOR, 3, 2, report.total_cycles, 40,
                              permanent=False, rng=rng)  # fmt: skip
    faults += sample_pe_faults(PeSite.ACCUMULATOR, 3, 2, 0, 3, permanent=True, rng=rng)
    batch = pe_fault_batch(faults, schedule, report)
    assert set(batch.kind[-3:].tolist()) <= {KIND_CODES[FaultKind.STUCK_AT_0],
                                             KIND_CODES[FaultKind.STUCK_AT_1]}  # fmt: skip
    inputs = PeCampaignInputs(schedule, report, pnet, x, labels, PeSite.ACCUMULATOR)
    results = []
    for name, workers, stop_after in (("one", 1, None), ("two", 2, None), ("resumed", 1, 1)):
        path = tmp_path / f"{name}.sqlite"
        con = open_store(path, {"n": len(faults)}, resume=False)
        if stop_after is not None:

            class StopError(Exception):
                pass

            def stop(_n):
                raise StopError

            with pytest.raises(StopError):
                run_campaign(inputs, batch, con, batch_size=8, on_progress=stop)
            assert len(read_rows(con)) == 8
            con.close()
            con = open_store(path, {"n": len(faults)}, resume=True)
        results.append(run_campaign(inputs, batch, con, workers=workers, batch_size=8))
        con.close()
    for other in results[1:]:
        for name in ("ids", "layer", "neuron", "copy", "mask", "kind", "n_changed", "n_correct"):
            assert np.array_equal(getattr(other, name), getattr(results[0], name)), name
    assert len(results[0]) == len(faults)


def test_idle_cycles_hit_no_fold(tiny_net):
    arch = arch_with(PEArraySpec(3, 2, Dataflow.OUTPUT_STATIONARY), offchip=OffchipSpec(2, 50))
    schedule, report = simulate(tiny_net, arch)
    first = int(report.fold_starts[0][0])
    assert first >= 50  # the first fetch
    assert fold_at(schedule, report, first - 1) == -1
    assert fold_at(schedule, report, first) == 0
    pool_start = sum(t.total_cycles for t in report.layers[:1])
    assert fold_at(schedule, report, pool_start + 1) == -1  # pooling layer: the array is idle
