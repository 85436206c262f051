"""PE-datapath faults as a fault source of the campaign engine (``faults.campaign``).

A PE fault travels through the engine (batches, workers, Dask, the SQLite store, resume) in the
same flat form as a neuron-output fault (``faults.model.FaultBatch``), read as: ``layer`` the
network layer whose fold runs at the fault's cycle (-1: the array is idle then; -2: a permanent
fault, every layer), ``index`` the PE as ``row * cols + col``, ``copy`` the cycle (-1:
permanent), ``mask`` ``1 << bit`` and ``kind`` the code of ``single_bit`` (a transient flip) or
of ``stuck_at_0`` / ``stuck_at_1`` (permanent). The register (``PeSite``) is one per campaign,
in its settings.

Evaluation: a transient fault only touches the fold that runs at its cycle, so that layer is
recomputed fold by fold with the fault from the cached fault-free inputs and, when its outputs
change, the rest of the network runs fault-free (``protected_layer``, equal to the fold-by-fold
values by the bit-exactness tests). A cycle in which the array is idle (waiting for memory,
pooling, correcting) hits no fold and changes nothing. A permanent fault runs the whole network
on the array.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind
from accelsim.faults.model import KIND_CODES, FaultBatch
from accelsim.faults.store import FaultRows
from accelsim.functional.models import model_hash
from accelsim.functional.network import classify
from accelsim.protection.plan import plan_hash
from accelsim.protection.protected import ProtectedNetwork, protected_layer, protected_logits
from accelsim.timing.accelerator import TimingReport
from accelsim.timing.pe_faults import SITE_BITS, PeFault, PeSite
from accelsim.timing.schedule import Schedule
from accelsim.timing.values import accelerator_logits, layer_outputs

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

IDLE = -1  # ``layer`` of a transient fault at a cycle no fold runs
ALL_LAYERS = -2  # ``layer`` of a permanent fault
_FLIP = KIND_CODES[FaultKind.SINGLE_BIT]
_STUCK = (KIND_CODES[FaultKind.STUCK_AT_0], KIND_CODES[FaultKind.STUCK_AT_1])


def fold_at(schedule: Schedule, report: TimingReport, cycle: int) -> int:
    """Index (into schedule.layers) of the layer whose fold runs at ``cycle``, or -1."""
    for k, (ls, starts) in enumerate(zip(schedule.layers, report.fold_starts, strict=True)):
        if ls.fold is None or starts.size == 0:
            continue
        t = int(np.searchsorted(starts, cycle, side="right")) - 1
        if t >= 0 and cycle < starts[t] + ls.fold.fold_cycles:
            return k
    return -1


@dataclass(frozen=True)
class PeGolden:
    """Fault-free input of every network layer, then the logits; the fault-free classes."""

    inputs: tuple[I8, ...]
    classes: I64
    labels: I64


@dataclass(frozen=True, eq=False)
class PeCampaignInputs:
    """What every worker needs for PE faults: the schedule and timing report of the run (which
    fold runs when), the network under test, int8 inputs (N, *input), labels (N,) and the
    register the faults hit. ``key`` hashes all of it."""

    schedule: Schedule
    report: TimingReport
    pnet: ProtectedNetwork
    x: I8
    labels: I64
    site: PeSite
    key: str = field(init=False)
    KIND: ClassVar[bytes] = b"pe"

    def __post_init__(self) -> None:
        h = hashlib.sha256(self.KIND)
        for part in (model_hash(self.pnet.net), plan_hash(self.pnet.plan),
                     repr(sorted(self.pnet.ranges.items())), repr(self.schedule.arch),
                     self.site.value):  # fmt: skip
            h.update(part.encode())
        for arr in (self.x, self.labels, *self.report.fold_starts):
            h.update(np.ascontiguousarray(arr).tobytes())
        object.__setattr__(self, "key", h.hexdigest())

    def golden(self) -> PeGolden:
        hs = [self.x]
        for i in range(len(self.pnet.net.layers)):
            hs.append(protected_layer(self.pnet, i, hs[-1]))
        return PeGolden(tuple(hs), classify(hs[-1]), self.labels)

    def fault_free_classes(self) -> I64:
        """The classes of one fault-free (protected) inference."""
        return classify(protected_logits(self.pnet, self.x))

    def order(self, faults: FaultBatch) -> I64:
        """Faults of one layer together, by cycle."""
        return np.lexsort((faults.ids, faults.copy, faults.layer))

    def evaluate(self, state: PeGolden, batch: FaultBatch) -> FaultRows:
        """One row per fault: images whose class changed, images still correct."""
        changed = np.zeros(len(batch), np.int64)
        correct = np.zeros(len(batch), np.int64)
        for f, fault in enumerate(pe_faults_of(batch, self.site, self.schedule.arch.pe_array.cols)):
            preds = self._classes(state, fault)
            changed[f] = int(np.sum(preds != state.classes))
            correct[f] = int(np.sum(preds == state.labels))
        return FaultRows(batch.ids, batch.layer, batch.index, batch.copy, batch.mask, batch.kind,
                         changed, correct)  # fmt: skip

    def _classes(self, state: PeGolden, fault: PeFault) -> I64:
        if fault.is_permanent:
            return classify(accelerator_logits(self.schedule, self.pnet, self.x, fault=fault))
        k = fold_at(self.schedule, self.report, fault.cycle)
        if k < 0:
            return state.classes
        ls = self.schedule.layers[k]
        pe = self.schedule.arch.pe_array
        h = layer_outputs(ls, pe, self.pnet, state.inputs[ls.layer], fault,
                          self.report.fold_starts[k])  # fmt: skip
        if np.array_equal(h, state.inputs[ls.layer + 1]):
            return state.classes
        for i in range(ls.layer + 1, len(self.pnet.net.layers)):
            h = protected_layer(self.pnet, i, h)
        return classify(h)


def pe_source(
    schedule: Schedule,
    report: TimingReport,
    pnet: ProtectedNetwork,
    x: I8,
    labels: I64,
    site: PeSite,
):  # -> PeCampaignInputs | graph_values.GraphPeCampaignInputs
    """The PE fault source of a chain (``PeCampaignInputs``) or a graph network
    (``graph_values.GraphPeCampaignInputs``)."""
    from accelsim.functional.network import Network

    if isinstance(pnet.net, Network):
        return PeCampaignInputs(schedule, report, pnet, x, labels, site)
    from accelsim.timing.graph_values import GraphPeCampaignInputs

    return GraphPeCampaignInputs(schedule, report, pnet, x, labels, site)


def pe_population(schedule: Schedule, report: TimingReport, site: PeSite, *,
                  permanent: bool) -> int:  # fmt: skip
    """PE x bit x cycle of the run (transient), or PE x bit x stuck value (permanent)."""
    pe = schedule.arch.pe_array
    return pe.rows * pe.cols * SITE_BITS[site] * (2 if permanent else report.total_cycles)


def pe_fault_batch(
    faults: tuple[PeFault, ...], schedule: Schedule, report: TimingReport
) -> FaultBatch:
    """The flat form of PE faults (ids 0 .. len - 1), with the layer each one hits."""
    if len({f.site for f in faults}) > 1:
        raise ValueError("one campaign's PE faults hit one register")
    cols = schedule.arch.pe_array.cols
    layer = np.array([
        ALL_LAYERS if f.is_permanent
        else IDLE if (k := fold_at(schedule, report, f.cycle)) < 0 else schedule.layers[k].layer
        for f in faults
    ], np.int64)  # fmt: skip
    return FaultBatch(
        np.arange(len(faults), dtype=np.int64), layer,
        np.array([f.row * cols + f.col for f in faults], np.int64),
        np.array([-1 if f.cycle is None else f.cycle for f in faults], np.int64),
        np.array([1 << f.bit for f in faults], np.int64),
        np.array([_FLIP if f.cycle is not None else _STUCK[f.stuck] for f in faults], np.int64),
    )  # fmt: skip


def pe_faults_of(batch: FaultBatch, site: PeSite, cols: int) -> list[PeFault]:
    """The PE faults a flat batch holds (the inverse of ``pe_fault_batch``)."""
    out = []
    columns = (batch.index.tolist(), batch.copy.tolist(), batch.mask.tolist(),
               batch.kind.tolist())  # fmt: skip
    for index, cycle, mask, kind in zip(*columns, strict=True):
        row, col = divmod(index, cols)
        bit = mask.bit_length() - 1
        if cycle < 0:
            out.append(PeFault(site, row, col, bit, None, int(kind == _STUCK[1])))
        else:
            out.append(PeFault(site, row, col, bit, cycle))
    return out
