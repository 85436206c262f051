"""Campaigns of PE-datapath faults: each fault runs the accelerator's fold-by-fold values.

A transient fault only touches the fold that runs at its cycle: that layer is recomputed fold by
fold with the fault from the cached fault-free inputs and, when its outputs change, the rest of
the network runs fault-free (``protected_layer``, equal to the fold-by-fold values by the
bit-exactness tests). A cycle in which the array is idle (waiting for memory, pooling,
correcting) hits no fold and changes nothing. A permanent fault runs the whole network on the
array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.functional.network import classify
from accelsim.protection.protected import ProtectedNetwork, protected_layer
from accelsim.timing.accelerator import TimingReport
from accelsim.timing.pe_faults import PeFault
from accelsim.timing.schedule import Schedule
from accelsim.timing.values import accelerator_logits, layer_outputs

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class PeCampaignResult:
    """Per fault: the scheduled layer it hit (-1: idle array; permanent faults: -2, all layers),
    images whose class changed, images classified correctly."""

    faults: tuple[PeFault, ...]
    layer: I64
    n_changed: I64
    n_correct: I64
    golden_correct: int
    n_images: int


def _golden_inputs(pnet: ProtectedNetwork, x: I8) -> list[I8]:
    """Fault-free input of every network layer, then the logits."""
    hs = [x]
    for i in range(len(pnet.net.layers)):
        hs.append(protected_layer(pnet, i, hs[-1]))
    return hs


def fold_at(schedule: Schedule, report: TimingReport, cycle: int) -> int:
    """Index (into schedule.layers) of the layer whose fold runs at ``cycle``, or -1."""
    for k, (ls, starts) in enumerate(zip(schedule.layers, report.fold_starts, strict=True)):
        if ls.fold is None or starts.size == 0:
            continue
        t = int(np.searchsorted(starts, cycle, side="right")) - 1
        if t >= 0 and cycle < starts[t] + ls.fold.fold_cycles:
            return k
    return -1


def run_pe_campaign(
    schedule: Schedule,
    report: TimingReport,
    pnet: ProtectedNetwork,
    x: I8,
    labels: I64,
    faults: tuple[PeFault, ...],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> PeCampaignResult:
    """Run every fault over the int8 inputs ``x``; compare classes with the fault-free run."""
    hs = _golden_inputs(pnet, x)
    golden = classify(hs[-1])
    pe = schedule.arch.pe_array
    hit = np.full(len(faults), -1, np.int64)
    changed = np.zeros(len(faults), np.int64)
    correct = np.full(len(faults), int(np.sum(golden == labels)), np.int64)
    for f, fault in enumerate(faults):
        if fault.is_permanent:
            hit[f] = -2
            preds = classify(accelerator_logits(schedule, pnet, x, fault=fault))
        else:
            k = hit[f] = fold_at(schedule, report, fault.cycle)
            preds = golden
            if k >= 0:
                ls = schedule.layers[k]
                h = layer_outputs(ls, pe, pnet, hs[ls.layer], fault, report.fold_starts[k])
                if not np.array_equal(h, hs[ls.layer + 1]):
                    for i in range(ls.layer + 1, len(pnet.net.layers)):
                        h = protected_layer(pnet, i, h)
                    preds = classify(h)
        changed[f] = int(np.sum(preds != golden))
        correct[f] = int(np.sum(preds == labels))
        if on_progress is not None:
            on_progress(1)
    return PeCampaignResult(faults, hit, changed, correct, int(np.sum(golden == labels)), len(x))
