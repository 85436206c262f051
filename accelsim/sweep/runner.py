"""The sweep: for the unprotected network and every (threshold, mode), the protection plan, a
fault-injection campaign (streamed into its own SQLite database, so ``resume`` continues where
a killed sweep stopped) and a cycle simulation; one ``ResultRow`` each, handed to ``on_row`` as
soon as it is complete."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accelsim.config.arch import ArchSpec
from accelsim.config.workload import FaultSpec, ProtectionMode
from accelsim.faults.campaign import campaign_settings, fault_source, neuron_faults, run_stored
from accelsim.faults.metrics import Estimate, summarize
from accelsim.faults.sampling import build_population, sample_size
from accelsim.functional.models import AnyNetwork
from accelsim.protection.overhead import network_overhead
from accelsim.protection.plan import ProtectionPlan, plan_from_neurons, plan_from_nvf
from accelsim.protection.protected import ProtectedNetwork
from accelsim.sweep.results import Interval, ResultRow
from accelsim.sweep.thresholds import SweepPoint
from accelsim.timing.accelerator import correction_register_bytes
from accelsim.timing.simulate import simulate

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SweepConfig:
    modes: tuple[ProtectionMode, ...]  # protected modes; the unprotected network always runs
    faults: FaultSpec  # kind, sample size (leveugle or a count), seed
    workers: int = 1


@dataclass(frozen=True)
class _Job:
    mode: ProtectionMode
    point: SweepPoint | None
    plan: ProtectionPlan
    n_faults: int


def _interval(e: Estimate) -> Interval:
    return Interval(e.value, e.lo, e.hi)


def plan_jobs(
    net: AnyNetwork, nvf: dict[int, F64], points: tuple[SweepPoint, ...], config: SweepConfig
) -> list[_Job]:
    """Every campaign of the sweep, unprotected first, with its fault count."""
    none = plan_from_neurons(net, ProtectionMode.NONE, {})
    jobs = [(ProtectionMode.NONE, None, none)]
    for point in points:
        for mode in config.modes:
            jobs.append((mode, point, plan_from_nvf(net, mode, nvf, point.threshold_percent)))
    out = []
    for mode, point, plan in jobs:
        pop = build_population(net, plan, config.faults.kind, config.faults.n_bits)
        out.append(_Job(mode, point, plan, sample_size(config.faults, pop)))
    return out


def _campaign(pnet, x, labels, config, db: Path, resume: bool, on_progress):
    f = config.faults
    pop, faults = neuron_faults(pnet, f)
    settings = campaign_settings(pnet, f, len(faults), x, labels)
    run = run_stored(fault_source(pnet, x, labels), faults, db, settings, resume=resume,
                     workers=config.workers, on_progress=on_progress)  # fmt: skip
    summary = summarize(
        "all", run.rows, n_images=len(x), golden_correct=run.golden_correct,
        population=pop.size, confidence=f.confidence,
    )  # fmt: skip
    return summary, run.golden_correct, pop.size


def _row(job, net, arch, report, base, summary, golden_correct, population, images, seconds):
    """One result row; overheads are relative to the unprotected network (``overhead`` reports
    its parameter and activation bytes with every plan; ``base``: the unprotected network's
    (cycles, population))."""
    over = network_overhead(net, job.plan)
    point = job.point
    base_cycles, base_population = base
    memory = over.param_bytes + over.activation_bytes
    accelerator = over.accelerator_bytes_extra + correction_register_bytes(job.mode, arch)
    raw = population / base_population
    return ResultRow(
        mode=job.mode,
        label="unprotected" if point is None else point.label,
        threshold_percent=np.nan if point is None else point.threshold_percent,
        top_percent=np.nan if point is None else point.top_percent,
        critical_neurons=job.plan.n_protected,
        neurons=over.neurons,
        neurons_overhead_percent=over.neurons_overhead_percent,
        param_bytes=over.param_bytes,
        param_bytes_extra=over.param_bytes_extra,
        activation_bytes=over.activation_bytes,
        activation_bytes_extra=over.activation_bytes_extra,
        memory_overhead_percent=100 * accelerator / memory,
        memory_overhead_transform_percent=100
        * (over.param_bytes_extra + over.activation_bytes_extra)
        / memory,
        compute_cycles=report.total("compute_cycles"),
        cycles=report.total_cycles,
        cycle_overhead_percent=100 * (report.total_cycles / base_cycles - 1),
        faults=summary.n_faults,
        population=population,
        images=images,
        fault_free_accuracy=golden_correct / images,
        accuracy_loss_pp=_interval(summary.accuracy_loss_pp),
        critical_rate=_interval(summary.critical_rate),
        critical_rate_fixed_raw=Interval(
            *(
                raw * v
                for v in (
                    summary.critical_rate.value,
                    summary.critical_rate.lo,
                    summary.critical_rate.hi,
                )
            )
        ),
        faults_with_effect=_interval(summary.faults_with_effect),
        campaign_seconds=seconds,
    )


def run_sweep(
    net: AnyNetwork,
    arch: ArchSpec,
    jobs: list[_Job],
    ranges: dict[int, tuple[int, int]],
    x: I8,
    labels: I64,
    config: SweepConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_row: Callable[[list[ResultRow]], None] | None = None,
) -> list[ResultRow]:
    """Run every job; rows in job order."""
    rows: list[ResultRow] = []
    for k, job in enumerate(jobs):
        tag = job.mode.value
        if job.point is not None:
            tag += f"-T{job.point.threshold_percent:.6g}"
        if on_stage is not None:
            where = "unprotected" if job.point is None else f"{job.mode.value}, {job.point.label}"
            on_stage(f"[{k + 1}/{len(jobs)}] {where}")
        pnet = ProtectedNetwork(net, job.plan, ranges if job.point is not None else {})
        start = time.perf_counter()
        db = out_dir / "campaigns" / f"{tag}.sqlite"
        campaign = _campaign(pnet, x, labels, config, db, resume, on_progress)
        seconds = time.perf_counter() - start
        _, report = simulate(net, arch, plan=job.plan)
        # jobs[0] is the unprotected network: the base of every overhead and of the raw rate
        base = (rows[0].cycles, rows[0].population) if rows else (report.total_cycles,
                                                                   campaign[2])  # fmt: skip
        rows.append(_row(job, net, arch, report, base, *campaign, len(x), seconds))
        if on_row is not None:
            on_row(rows)
    return rows
