"""A workload's network on an architecture, unprotected and protected at one NVF threshold: the
library behind ``simulate``. Per mode the schedule, the timing report, its overhead against the
unprotected run and (``trace``) the event log; optionally PE-datapath fault campaigns next to
neuron-output campaigns (the paper's view) of the same size, both through the campaign engine
(stored under ``OUTPUT/timing/``, resumable)::

    result = simulate_workload("pe16x16", "lenet5", SimulationOptions(top=5, pe_faults=200))
    for run in result.runs:
        print(run.mode.value, run.report.total_cycles, run.overhead.cycles_percent)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import files
from accelsim.config.arch import ArchSpec
from accelsim.config.workload import FaultKind, ProtectionMode, WorkloadSpec, dataset_source
from accelsim.datasets import load_dataset
from accelsim.errors import positive_int, seed_int
from accelsim.faults.campaign import campaign_settings, fault_source, images_hash, run_stored
from accelsim.faults.metrics import Summary, summarize
from accelsim.faults.model import fault_batch
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.files import OutputLock
from accelsim.functional.models import (
    AnyNetwork,
    input_shape,
    load_model,
    model_hash,
    quantize_inputs,
)
from accelsim.protection.plan import plan_hash
from accelsim.protection.protected import ProtectedNetwork, unprotected
from accelsim.study.nvf import workload_nvf
from accelsim.study.options import (
    as_arch,
    as_enum,
    as_modes,
    as_workload,
    check_percent,
    check_split,
    estimate_doc,
)
from accelsim.timing.accelerator import LayerTiming, TimingReport
from accelsim.timing.pe_campaign import (
    IDLE,
    pe_fault_batch,
    pe_population,
    pe_source,
)
from accelsim.timing.pe_faults import PeSite, sample_pe_faults
from accelsim.timing.schedule import Schedule
from accelsim.timing.simulate import TimingOverhead, simulate, timing_overhead

LAYER_FIELDS = tuple(f.name for f in dataclasses.fields(LayerTiming))
_NOT_SUMMED = ("utilisation", "oversized")


@dataclass(frozen=True)
class SimulationOptions:
    """How to simulate; None takes the workload's setting.

    ``modes``: protection modes next to the unprotected run; ``threshold``: NVF threshold in
    percent, or ``top``: protect the ``top`` % most vulnerable neurons; ``ideal_memory``: free
    transfers (compute cycles only); ``trace``: keep every mode's event log and write it to
    this CSV path (one file per mode, ``.MODE.csv``, when there are several); ``pe_faults``:
    also run that many PE faults per mode (``pe_site``, transient or ``permanent``) and as
    many neuron-output faults, over ``test_images`` images, sampled with ``seed``;
    ``workers`` / ``dask_address`` / ``resume``: their campaigns' executor and resumption;
    ``images`` / ``split``: the NVF analysis images."""

    modes: tuple[ProtectionMode, ...] | None = None
    threshold: float = 20.0
    top: float | None = None
    ideal_memory: bool = False
    trace: Path | str | None = None
    pe_faults: int | None = None
    pe_site: PeSite = PeSite.ACCUMULATOR
    permanent: bool = False
    test_images: int = 200
    seed: int = 0
    images: int | None = None
    split: str | None = None
    workers: int = 1
    dask_address: str | None = None
    resume: bool = False
    data_dir: Path | str | None = None
    output_dir: Path | str | None = None

    def __post_init__(self) -> None:
        if self.modes is not None:
            object.__setattr__(self, "modes", as_modes("protection", self.modes))
        object.__setattr__(self, "pe_site", as_enum("pe_site", PeSite, self.pe_site))
        object.__setattr__(self, "threshold", check_percent("threshold", self.threshold))
        if self.top is not None:
            object.__setattr__(self, "top", check_percent("top", self.top, low_open=True))
        for name in ("pe_faults", "images"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        positive_int("test_images", self.test_images)
        positive_int("workers", self.workers)
        seed_int("seed", self.seed)
        check_split("split", self.split)


@dataclass(frozen=True, eq=False)
class ModeRun:
    """One mode's simulation: the network under test, its schedule and timing report, the
    overhead against the unprotected run, the seconds it took and the event log (with
    ``trace``)."""

    mode: ProtectionMode
    pnet: ProtectedNetwork
    schedule: Schedule
    report: TimingReport
    overhead: TimingOverhead
    seconds: float
    log: tuple[tuple[Any, ...], ...] | None

    def document(self, clock_mhz: float) -> dict[str, Any]:
        r = self.report
        return {
            "mode": self.mode.value, "protected": self.pnet.plan.n_protected,
            "seconds": self.seconds, "total_cycles": r.total_cycles,
            "latency_us": r.total_cycles / clock_mhz, "footprint_bytes": r.footprint_bytes,
            "overhead_percent": dataclasses.asdict(self.overhead),
            "layers": [dataclasses.asdict(t) for t in r.layers],
        }  # fmt: skip


@dataclass(frozen=True, eq=False)
class PeFaultRow:
    """One mode's PE campaign (``pe``: uniform over PE x cycle x bit of its run) next to its
    neuron-output campaign (``neuron``: uniform over neuron copies x bit). ``exposure``: the
    run's cycles over the unprotected run's (with the same raw fault rate per PE and cycle, a
    longer run is hit that much more often); ``idle_hits``: PE faults at cycles the array is
    idle."""

    mode: ProtectionMode
    site: PeSite
    permanent: bool
    pe: Summary
    neuron: Summary
    exposure: float
    idle_hits: int
    databases: tuple[Path, Path]

    def document(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value, "site": self.site.value, "permanent": self.permanent,
            "pe_faults": self.pe.n_faults, "idle_hits": self.idle_hits,
            "exposure_factor": self.exposure, "pe_view": _metrics(self.pe),
            "exposure_weighted_critical_rate": {
                k: self.exposure * v for k, v in estimate_doc(self.pe.critical_rate).items()
            },
            "neuron_view": _metrics(self.neuron),
        }  # fmt: skip


def _metrics(s: Summary) -> dict[str, dict[str, float]]:
    return {
        "critical_rate": estimate_doc(s.critical_rate),
        "faults_with_effect": estimate_doc(s.faults_with_effect),
        "accuracy_loss_pp": estimate_doc(s.accuracy_loss_pp),
    }


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Every mode's run (unprotected first), the threshold used (``top`` sets it from the
    NVF), the NVF run (empty when no mode needs it), the PE campaigns and the files written."""

    arch: ArchSpec
    network: AnyNetwork
    options: SimulationOptions
    threshold: float
    nvf: dict[str, Any]
    runs: tuple[ModeRun, ...]
    pe_faults: tuple[PeFaultRow, ...]
    files: tuple[Path, ...]

    @property
    def baseline(self) -> ModeRun:
        return self.runs[0]

    def document(self) -> dict[str, Any]:
        """The result as one JSON-ready document (what ``simulate --json`` prints)."""
        doc: dict[str, Any] = {
            "arch": self.arch.name, "network": self.network.name,
            "network_hash": model_hash(self.network),
            "dataflow": self.arch.pe_array.dataflow.value,
            "ideal_memory": self.options.ideal_memory, **self.nvf,
            "threshold_percent": self.threshold,
            "modes": [r.document(self.arch.clock_mhz) for r in self.runs],
            "files": [str(p) for p in self.files],
        }  # fmt: skip
        if self.pe_faults:
            doc["pe_faults"] = [p.document() for p in self.pe_faults]
        return doc


def simulate_workload(
    arch: ArchSpec | Path | str = "pe16x16",
    workload: WorkloadSpec | Path | str = "lenet5",
    options: SimulationOptions | None = None,
    *,
    on_nvf_progress: Callable[[int], None] | None = None,
    on_stage: Callable[[str, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Simulate every mode; write the per-layer CSV (and traces) under the output folder's
    ``timing/``; with ``pe_faults``, run the PE and neuron campaigns (``on_stage(name,
    faults)`` before each, ``on_progress(n)`` as faults are stored)."""
    o = options or SimulationOptions()
    arch, spec = as_arch(arch), as_workload(workload)
    net = load_model(spec.network)
    modes = o.modes or spec.protection_modes
    pnets, threshold, nvf_info = _networks(spec, net, modes, o, on_nvf_progress)
    out = Path(o.output_dir or spec.output_dir)
    with OutputLock(out):
        runs = _simulate_modes(net, arch, pnets, o)
        tag = f"{arch.name}-{net.name}" + ("" if len(runs) == 1 else f"-T{threshold:g}")
        csv_path = out / "timing" / f"timing-{tag}.csv"
        write_timing_csv(csv_path, runs)
        written = [csv_path, *_write_traces(o.trace, runs)]
        pe_rows: tuple[PeFaultRow, ...] = ()
        if o.pe_faults:
            pe_rows = _pe_campaigns(spec, net, arch, runs, o, out / "timing", tag, on_stage,
                                    on_progress)  # fmt: skip
            written += [p for row in pe_rows for p in row.databases]
    return SimulationResult(arch, net, o, threshold, nvf_info, runs, pe_rows, tuple(written))


def _networks(spec, net, modes, o: SimulationOptions, on_nvf_progress):
    """The network under test of every mode (none first) from the (cached) NVF; the threshold
    (``top`` sets it from the NVF) and the NVF run as JSON data."""
    pnets = {ProtectionMode.NONE: unprotected(net)}
    protected = [m for m in modes if m is not ProtectionMode.NONE]
    if not protected:
        return pnets, o.threshold, {}
    nvf = workload_nvf(spec, n_images=o.images, split=o.split, data_dir=o.data_dir,
                       output_dir=o.output_dir, on_progress=on_nvf_progress)  # fmt: skip
    threshold = o.threshold if o.top is None else nvf.threshold_for_top(o.top)
    for mode in protected:
        pnets[mode] = nvf.protected(mode, threshold)
    return pnets, threshold, nvf.describe()


def _simulate_modes(net, arch, pnets, o: SimulationOptions) -> tuple[ModeRun, ...]:
    runs: list[ModeRun] = []
    for mode, pnet in pnets.items():
        log: list | None = [] if o.trace else None
        start = time.perf_counter()
        schedule, report = simulate(net, arch, plan=pnet.plan, ideal_memory=o.ideal_memory,
                                    log=log)  # fmt: skip
        seconds = time.perf_counter() - start
        base = runs[0].report if runs else report
        runs.append(ModeRun(mode, pnet, schedule, report, timing_overhead(report, base), seconds,
                            None if log is None else tuple(log)))  # fmt: skip
    return tuple(runs)


def write_timing_csv(path: Path, runs: tuple[ModeRun, ...]) -> None:
    """Per mode, one row per layer and a total row (``layer`` -1)."""
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mode", *LAYER_FIELDS])
        for run in runs:
            r = run.report
            for t in r.layers:
                w.writerow([run.mode.value, *(_cell(getattr(t, f)) for f in LAYER_FIELDS)])
            w.writerow([run.mode.value, -1, "total", *(
                r.total(f) if f not in _NOT_SUMMED else "" for f in LAYER_FIELDS[2:]
            )])  # fmt: skip


def _cell(value: Any) -> Any:
    return ";".join(value) if isinstance(value, tuple) else value


def _write_traces(trace: Path | str | None, runs: tuple[ModeRun, ...]) -> list[Path]:
    if not trace:
        return []
    written = []
    for run in runs:
        path = Path(trace).with_suffix(f".{run.mode.value}.csv") if len(runs) > 1 else Path(trace)
        with files.atomic_text(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["cycle", "component", "event", "payload"])
            w.writerows(run.log or ())
        written.append(path)
    return written


def _pe_campaigns(spec, net, arch, runs, o: SimulationOptions, folder: Path, tag: str,
                  on_stage, on_progress) -> tuple[PeFaultRow, ...]:  # fmt: skip
    """Per mode: PE faults (exposure-weighted) and neuron-output faults (the paper's view)."""
    data = load_dataset(dataset_source(spec, net.dataset), spec.dataset.split,
                        shape=input_shape(net), data_dir=o.data_dir,
                        n_images=o.test_images)  # fmt: skip
    x, labels = quantize_inputs(net, data.images), data.labels.astype(np.int64)
    hashed = images_hash(x, labels)
    kind = "stuck" if o.permanent else "flip"
    out = []
    for k, run in enumerate(runs):
        r, pe = run.report, run.schedule.arch.pe_array
        rng = np.random.default_rng([o.seed, k])
        faults = sample_pe_faults(o.pe_site, pe.rows, pe.cols, r.total_cycles, o.pe_faults,
                                  permanent=o.permanent, rng=rng)  # fmt: skip
        batch = pe_fault_batch(faults, run.schedule, r)
        settings = {
            "network_hash": model_hash(net), "protection": run.mode.value,
            "plan_hash": plan_hash(run.pnet.plan),
            "arch": json.loads(json.dumps(dataclasses.asdict(arch), default=str)),
            "site": o.pe_site.value, "permanent": o.permanent, "faults": len(faults),
            "seed": o.seed, "images_hash": hashed, "images": len(x),
        }  # fmt: skip
        db = folder / f"pe-{tag}-{run.mode.value}-{o.pe_site.value}-{kind}.sqlite"
        if on_stage is not None:
            on_stage(f"PE faults ({run.mode.value})", len(faults))
        pe_run = run_stored(pe_source(run.schedule, r, run.pnet, x, labels, o.pe_site),
                            batch, db, settings, resume=o.resume, workers=o.workers,
                            dask_address=o.dask_address, on_progress=on_progress)  # fmt: skip
        population = pe_population(run.schedule, r, o.pe_site, permanent=o.permanent)
        pe_sum = summarize(f"pe-{run.mode.value}", pe_run.rows, n_images=len(x),
                           golden_correct=pe_run.golden_correct, population=population)  # fmt: skip
        npop = build_population(net, run.pnet.plan, FaultKind.SINGLE_BIT, 1)
        fspec = dataclasses.replace(spec.faults, samples=min(o.pe_faults, npop.size),
                                    kind=FaultKind.SINGLE_BIT, n_bits=1)  # fmt: skip
        nfaults = fault_batch(sample_faults(npop, fspec, rng=rng))
        ndb = folder / f"neuron-{tag}-{run.mode.value}-{o.pe_site.value}-{kind}.sqlite"
        if on_stage is not None:
            on_stage(f"neuron faults ({run.mode.value})", len(nfaults))
        nsettings = campaign_settings(run.pnet, fspec, len(nfaults), x, labels, seed=o.seed,
                                      next_to=db.name)  # fmt: skip
        n_run = run_stored(fault_source(run.pnet, x, labels), nfaults, ndb, nsettings,
                           resume=o.resume, workers=o.workers, dask_address=o.dask_address,
                           on_progress=on_progress)  # fmt: skip
        n_sum = summarize(f"neuron-{run.mode.value}", n_run.rows, n_images=len(x),
                          golden_correct=n_run.golden_correct, population=npop.size)  # fmt: skip
        exposure = r.total_cycles / runs[0].report.total_cycles
        idle = int(np.sum(pe_run.rows.layer == IDLE))
        out.append(PeFaultRow(run.mode, o.pe_site, o.permanent, pe_sum, n_sum, exposure, idle,
                              (db, ndb)))  # fmt: skip
    return tuple(out)
