"""One statistical fault-injection campaign on a workload's network, optionally protected: the
library behind ``inject``. Two steps, so that a caller can show what will run::

    campaign = prepare_campaign("lenet5", CampaignOptions(faults=2000, protection="split"))
    print(campaign.header)
    result = campaign.run()            # or run_injection("lenet5", faults=2000) in one call

The faults go into ``OUTPUT/campaigns/campaign-NET-TAG.sqlite`` as they finish (``resume``
continues a stopped campaign); the run writes the per-fault CSV and the summary CSV beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import files
from accelsim.config.workload import (
    FaultKind,
    FaultSpec,
    ProtectionMode,
    WorkloadSpec,
    dataset_source,
)
from accelsim.datasets import Dataset, load_dataset
from accelsim.errors import ParameterError, positive_int, seed_int
from accelsim.faults.campaign import (
    campaign_settings,
    check_reachable,
    fault_source,
    neuron_faults,
    run_stored,
)
from accelsim.faults.metrics import Summary, summarize
from accelsim.faults.model import FaultBatch, bits_label
from accelsim.faults.sampling import Population
from accelsim.faults.store import FaultRows
from accelsim.files import OutputLock
from accelsim.functional.models import (
    AnyNetwork,
    input_shape,
    layer_name,
    load_model,
    quantize_inputs,
)
from accelsim.protection.protected import ProtectedNetwork, unprotected
from accelsim.study.nvf import WorkloadNvf, workload_nvf
from accelsim.study.options import (
    as_enum,
    as_workload,
    check_percent,
    check_split,
    estimate_doc,
)

_MULTI_BIT = (FaultKind.ADJACENT_BITS, FaultKind.RANDOM_BITS)


@dataclass(frozen=True)
class CampaignOptions:
    """How to run one campaign; None takes the workload's setting.

    ``protection`` / ``threshold``: protect every neuron with NVF >= threshold % this way first
    (the NVF is computed or loaded from the workload's output folder); ``faults``: leveugle,
    exhaustive or a count; ``kind`` / ``bits`` / ``seed``: the fault model; ``test_split`` /
    ``test_images``: the campaign's images; ``images`` / ``split``: the NVF analysis images;
    ``workers`` / ``dask_address`` / ``batch_size``: the executor; ``resume``: continue the
    campaign in its database; ``output_dir``: instead of the workload's."""

    protection: ProtectionMode = ProtectionMode.NONE
    threshold: float = 20.0
    faults: int | str | None = None
    kind: FaultKind | None = None
    bits: int | None = None
    seed: int | None = None
    test_split: str | None = None
    test_images: int | None = None
    images: int | None = None
    split: str | None = None
    workers: int = 1
    dask_address: str | None = None
    batch_size: int | None = None
    resume: bool = False
    data_dir: Path | str | None = None
    output_dir: Path | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "protection", as_enum("protection", ProtectionMode,
                                                       self.protection))  # fmt: skip
        if self.kind is not None:
            object.__setattr__(self, "kind", as_enum("kind", FaultKind, self.kind))
        if isinstance(self.faults, str):
            if self.faults not in ("leveugle", "exhaustive"):
                raise ParameterError(
                    "faults", "{parameter}: expected leveugle, exhaustive or a positive int, "
                    f"got {self.faults!r}",
                )  # fmt: skip
        elif self.faults is not None:
            positive_int("faults", self.faults)
        for name in ("test_images", "images", "batch_size", "bits"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        positive_int("workers", self.workers)
        object.__setattr__(self, "threshold", check_percent("threshold", self.threshold))
        check_split("test_split", self.test_split)
        check_split("split", self.split)
        if self.seed is not None:
            seed_int("seed", self.seed)

    def fault_spec(self, spec: FaultSpec) -> FaultSpec:
        """The workload's fault model with these options' changes."""
        changes: dict[str, Any] = {}
        if self.faults is not None:
            changes["samples"] = self.faults
        if self.seed is not None:
            changes["seed"] = self.seed
        if self.kind is not None:
            changes["kind"] = self.kind
            changes["n_bits"] = self.bits or (2 if self.kind in _MULTI_BIT else 1)
        elif self.bits is not None:
            changes["n_bits"] = self.bits
        out = dataclasses.replace(spec, **changes)
        if not 1 <= out.n_bits <= 8 or (out.n_bits != 1 and out.kind not in _MULTI_BIT):
            raise ParameterError(
                "bits",
                f"{{parameter}}: {out.n_bits} bits with kind {out.kind.value}; single_bit and "
                "stuck_at_* take 1, adjacent_bits/random_bits 1..8",
            )
        return out


@dataclass(frozen=True, eq=False)
class CampaignResult:
    """What a campaign found and wrote: every fault's row, the summaries with their intervals
    (all faults, per layer, per bit choice), the fault-free accuracy, the settings stored with
    the database, the files and the seconds (the golden state included)."""

    network: AnyNetwork
    tag: str
    fault_spec: FaultSpec
    population: Population
    rows: FaultRows
    n_images: int
    split: str
    golden_correct: int
    overall: Summary
    per_layer: tuple[Summary, ...]
    per_bit: tuple[Summary, ...]
    settings: dict[str, Any]
    nvf: dict[str, Any]
    evaluated: int
    seconds: float
    files: tuple[Path, ...]

    @property
    def golden_accuracy(self) -> float:
        return self.golden_correct / self.n_images

    @property
    def pairs_per_second(self) -> float | None:
        """Fault x image evaluations per second of this run (faults stored before excluded)."""
        return self.evaluated * self.n_images / self.seconds if self.seconds else None

    def document(self) -> dict[str, Any]:
        """The result as one JSON-ready document (what ``inject --json`` prints)."""
        return {
            **self.settings, **self.nvf, "golden_accuracy": self.golden_accuracy,
            "seconds": self.seconds, "fault_image_pairs_per_second": self.pairs_per_second,
            "summary": summary_document(self.overall),
            "per_layer": [summary_document(s) for s in self.per_layer],
            "per_bit": [summary_document(s) for s in self.per_bit],
            "files": [str(p) for p in self.files],
        }  # fmt: skip


def summary_document(s: Summary) -> dict[str, Any]:
    """A summary as JSON data: each metric with its interval."""
    return {
        "group": s.group, "faults": s.n_faults, "population": s.population,
        "accuracy_loss_pp": estimate_doc(s.accuracy_loss_pp),
        "critical_rate": estimate_doc(s.critical_rate),
        "faults_with_effect": estimate_doc(s.faults_with_effect),
    }  # fmt: skip


@dataclass(frozen=True, eq=False)
class Campaign:
    """A prepared campaign: the network under test, images, sampled faults and settings;
    ``header`` says what will run. Nothing is written before ``run``."""

    spec: WorkloadSpec
    options: CampaignOptions
    pnet: ProtectedNetwork
    fault_spec: FaultSpec
    population: Population
    faults: FaultBatch
    data: Dataset
    x: np.ndarray
    labels: np.ndarray
    settings: dict[str, Any]
    tag: str
    database: Path
    nvf: dict[str, Any]

    @property
    def header(self) -> str:
        pop, fs = self.population, self.fault_spec
        sampling = fs.samples if isinstance(fs.samples, str) else "fixed count"
        return (
            f"{self.pnet.net.name} ({self.tag}): {len(self.faults):,} {fs.kind.value} faults "
            f"({sampling}, population {pop.size:,} = {pop.n_copies:,} neuron copies x "
            f"{len(pop.choices)} bit choices) x {len(self.x):,} {self.data.split} images"
        )

    def run(
        self,
        *,
        on_progress: Callable[[int], None] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> CampaignResult:
        """Evaluate every fault not yet stored (``on_progress(n)``: n more are stored), then
        write the CSV files. Ctrl-C raises ``CampaignInterrupted`` (what is stored stays)."""
        o = self.options
        with OutputLock(self.database.parent.parent):
            start = time.perf_counter()
            run = run_stored(
                fault_source(self.pnet, self.x, self.labels), self.faults, self.database,
                self.settings, resume=o.resume, workers=o.workers, dask_address=o.dask_address,
                batch_size=o.batch_size, on_progress=on_progress, on_note=on_note,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            return self._result(run.rows, run.golden_correct, run.evaluated, seconds)

    def _result(self, rows: FaultRows, golden_correct: int, evaluated: int,
                seconds: float) -> CampaignResult:  # fmt: skip
        n, conf, net = len(self.x), self.fault_spec.confidence, self.pnet.net

        def summary(label: str, sel: Any, population: int) -> Summary:
            return summarize(label, rows.take(sel), n_images=n, golden_correct=golden_correct,
                             population=population, confidence=conf)  # fmt: skip

        pop = self.population
        overall = summary("all", np.arange(len(rows)), pop.size)
        per_layer = tuple(
            summary(layer_name(net, layer), sel, int(units) * len(pop.choices))
            for layer, units in zip(pop.layers, pop.units_per_layer, strict=True)
            if (sel := np.flatnonzero(rows.layer == layer)).size
        )
        per_bit = tuple(
            summary(bits_label(bits), sel, pop.n_copies)
            for bits in pop.choices
            if (sel := np.flatnonzero(rows.mask == sum(1 << b for b in bits))).size
        )
        stem = self.database.with_name(self.database.name.removesuffix(".sqlite"))
        paths = (self.database, files.beside(stem, ".faults.csv"),
                 files.beside(stem, ".summary.csv"))  # fmt: skip
        _write_fault_csv(paths[1], rows, net, n, golden_correct)
        _write_summary_csv(paths[2], [("all", overall), *(("layer", s) for s in per_layer),
                                      *(("bit", s) for s in per_bit)])  # fmt: skip
        return CampaignResult(net, self.tag, self.fault_spec, pop, rows, n, self.data.split,
                              golden_correct, overall, per_layer, per_bit, self.settings,
                              self.nvf, evaluated, seconds, paths)  # fmt: skip


def prepare_campaign(
    workload: WorkloadSpec | Path | str,
    options: CampaignOptions | None = None,
    *,
    nvf: WorkloadNvf | None = None,
    on_nvf_progress: Callable[[int], None] | None = None,
) -> Campaign:
    """Load the network (protected by the options' mode, from the workload's NVF, computed or
    loaded from its cache unless ``nvf`` is given), the images and the fault sample."""
    o = options or CampaignOptions()
    spec = as_workload(workload)
    fspec = o.fault_spec(spec.faults)
    if o.dask_address is not None:
        check_reachable(o.dask_address)  # in seconds, before the NVF and the images
    if o.protection is ProtectionMode.NONE:
        pnet, nvf_info = unprotected(load_model(spec.network)), {}
    else:
        nvf = nvf or workload_nvf(spec, n_images=o.images, split=o.split, data_dir=o.data_dir,
                                  output_dir=o.output_dir, on_progress=on_nvf_progress)  # fmt: skip
        pnet, nvf_info = nvf.protected(o.protection, o.threshold), nvf.describe()
    net, mode = pnet.net, pnet.plan.mode
    n_images = o.test_images if o.test_images is not None else spec.dataset.n_images
    data = load_dataset(dataset_source(spec, net.dataset), o.test_split or spec.dataset.split,
                        shape=input_shape(net), data_dir=o.data_dir, n_images=n_images)  # fmt: skip
    x, labels = quantize_inputs(net, data.images), data.labels.astype(np.int64)
    pop, faults = neuron_faults(pnet, fspec)
    settings = campaign_settings(
        pnet, fspec, len(faults), x, labels, network=net.name,
        threshold_percent=o.threshold if mode is not ProtectionMode.NONE else None,
        population=pop.size, dataset=data.name, split=data.split, images=len(x),
    )  # fmt: skip
    tag = mode.value if mode is ProtectionMode.NONE else f"{mode.value}-T{o.threshold:g}"
    out = Path(o.output_dir or spec.output_dir)
    database = out / "campaigns" / f"campaign-{net.name}-{tag}.sqlite"
    return Campaign(spec, o, pnet, fspec, pop, faults, data, x, labels, settings, tag, database,
                    nvf_info)  # fmt: skip


def run_injection(workload: WorkloadSpec | Path | str = "lenet5", **options: Any) -> CampaignResult:
    """One campaign in one call: ``run_injection("lenet5", faults=2000, protection="split")``;
    keyword arguments are :class:`CampaignOptions` fields."""
    return prepare_campaign(workload, CampaignOptions(**options)).run()


def _write_fault_csv(path: Path, rows: FaultRows, net: AnyNetwork, n_images: int,
                     golden_correct: int) -> None:  # fmt: skip
    kinds = list(FaultKind)
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["id", "layer", "neuron", "copy", "bits", "kind", "images_changed", "images_correct",
             "accuracy_loss_pp", "critical_rate"]
        )  # fmt: skip
        for i in range(len(rows)):
            bits = tuple(b for b in range(8) if rows.mask[i] >> b & 1)
            w.writerow([
                int(rows.ids[i]), layer_name(net, int(rows.layer[i])), int(rows.neuron[i]),
                int(rows.copy[i]), bits_label(bits), kinds[int(rows.kind[i])].value,
                int(rows.n_changed[i]), int(rows.n_correct[i]),
                f"{100 * (golden_correct - int(rows.n_correct[i])) / n_images:.6f}",
                f"{int(rows.n_changed[i]) / n_images:.8f}",
            ])  # fmt: skip


def _write_summary_csv(path: Path, summaries: list[tuple[str, Summary]]) -> None:
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["group_kind", "group", "faults", "population"] + [
            f"{m}_{p}" for m in ("accuracy_loss_pp", "critical_rate", "faults_with_effect")
            for p in ("value", "lo", "hi")
        ])  # fmt: skip
        for kind, s in summaries:
            w.writerow([kind, s.group, s.n_faults, s.population] + [
                f"{x:.8g}" for e in (s.accuracy_loss_pp, s.critical_rate, s.faults_with_effect)
                for x in (e.value, e.lo, e.hi)
            ])  # fmt: skip
