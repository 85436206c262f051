"""PE-fault campaigns: the transient shortcut equals running the whole network on the array."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.arch import Dataflow, OffchipSpec, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.functional.network import classify, quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork
from accelsim.timing.pe_campaign import fold_at, run_pe_campaign
from accelsim.timing.pe_faults import PeFault, PeSite, sample_pe_faults
from accelsim.timing.simulate import simulate
from accelsim.timing.values import accelerator_logits
from tests.unit.timing.conftest import arch_with


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("mode", [ProtectionMode.NONE, ProtectionMode.SPLIT, ProtectionMode.TMR])
def test_campaign_equals_full_runs_on_the_array(tiny_net, tiny_images, rng, flow, mode):
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
    result = run_pe_campaign(schedule, report, pnet, x, labels, tuple(faults))
    golden = classify(accelerator_logits(schedule, pnet, x))
    for f, fault in enumerate(faults):
        preds = classify(
            accelerator_logits(schedule, pnet, x, fault=fault, fold_starts=report.fold_starts)
        )
        assert result.n_changed[f] == np.sum(preds != golden), fault
        assert result.n_correct[f] == np.sum(preds == labels), fault
    assert result.golden_correct == np.sum(golden == labels)
    assert (result.layer == -2).sum() == 7
    assert result.n_changed[-2] > 0
    assert (result.layer >= 0).sum() > 0


def test_idle_cycles_hit_no_fold(tiny_net):
    arch = arch_with(PEArraySpec(3, 2, Dataflow.OUTPUT_STATIONARY), offchip=OffchipSpec(2, 50))
    schedule, report = simulate(tiny_net, arch)
    first = int(report.fold_starts[0][0])
    assert first >= 50  # the first fetch
    assert fold_at(schedule, report, first - 1) == -1
    assert fold_at(schedule, report, first) == 0
    pool_start = sum(t.total_cycles for t in report.layers[:1])
    assert fold_at(schedule, report, pool_start + 1) == -1  # pooling layer: the array is idle
