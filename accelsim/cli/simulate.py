"""``simulate``: a workload's network (unprotected, and protected at one NVF threshold) on an
architecture: per-layer cycle tables, overheads, CSV, ``--trace``, ``--json``, and optionally
PE-datapath fault campaigns next to the paper's per-neuron view."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from accelsim import files
from accelsim.cli.common import analysis_of, check_positive, emit, estimate, text_table
from accelsim.config.arch import load_arch
from accelsim.config.workload import FaultKind, ProtectionMode, load_workload
from accelsim.datasets import load_dataset
from accelsim.errors import seed_int
from accelsim.faults.campaign import CampaignInputs, evaluate_batch
from accelsim.faults.metrics import Summary, summarize
from accelsim.faults.model import fault_batch
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.faults.store import FaultRows
from accelsim.functional.modelio import load_network, network_hash
from accelsim.functional.network import quantize_images
from accelsim.protection.plan import plan_from_nvf, threshold_for_top
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, unprotected
from accelsim.timing.accelerator import LayerTiming, TimingReport
from accelsim.timing.pe_campaign import PeCampaignResult, run_pe_campaign
from accelsim.timing.pe_faults import SITE_BITS, PeSite, sample_pe_faults
from accelsim.timing.simulate import simulate, timing_overhead

LAYER_FIELDS = [f.name for f in dataclasses.fields(LayerTiming)]


def parse_modes(text: str) -> tuple[ProtectionMode, ...]:
    """--protection: comma-separated modes (none is always simulated as the baseline)."""
    allowed = [m.value for m in ProtectionMode]
    modes = []
    for part in text.split(","):
        if part.strip() not in allowed:
            raise argparse.ArgumentTypeError(
                f"expected modes from {{{', '.join(allowed)}}} separated by commas, got {part!r}"
            )
        modes.append(ProtectionMode(part.strip()))
    return tuple(modes)


def _networks(args, spec, net, modes) -> tuple[dict[ProtectionMode, ProtectedNetwork], dict]:
    """The protected network of every mode (none first), from the (cached) NVF analysis, and
    what to report about it (the NVF run, the threshold used: ``--top`` sets it from the NVF)."""
    pnets = {ProtectionMode.NONE: unprotected(net)}
    info: dict[str, Any] = {"threshold_percent": args.threshold}
    protected = [m for m in modes if m is not ProtectionMode.NONE]
    if protected:
        run = analysis_of(args, spec)
        net, analysis_data, result, cached = run.net, run.data, run.result, run.cached
        nvf = {lay.layer: lay.nvf for lay in result.layers}
        ranges = profile_ranges(net, quantize_images(net, analysis_data.images))
        threshold = args.threshold if args.top is None else threshold_for_top(nvf, args.top)
        info = {
            "nvf_method": result.method.value,
            "nvf_images": result.n_inputs,
            "nvf_cached": cached,
            "threshold_percent": threshold,
        }
        for mode in protected:
            plan = plan_from_nvf(net, mode, nvf, threshold)
            pnets[mode] = ProtectedNetwork(net, plan, ranges)
    return pnets, info


def _layer_row(t: LayerTiming) -> list[Any]:
    return [
        t.name, f"{t.tiles:,}" + (f" (+{t.copy_tiles:,})" if t.copy_tiles else ""),
        f"{t.compute_cycles:,}", f"{t.stall_cycles:,}",
        f"{t.correction_cycles:,}/{t.correction_exposed_cycles:,}", f"{t.post_cycles:,}",
        f"{t.total_cycles:,}", f"{100 * t.utilisation:.1f}",
        f"{t.offchip_read_bytes:,}", f"{t.offchip_write_bytes:,}",
        f"{t.buffer_read_bytes:,}/{t.buffer_write_bytes:,}",
        f"{t.peak_input_bytes:,}/{t.peak_weight_bytes:,}/{t.peak_output_bytes:,}",
    ]  # fmt: skip


LAYER_HEADERS = [
    "layer", "folds (+copies)", "compute", "stall", "corr busy/exposed", "pool", "total",
    "util %", "off-chip read B", "off-chip write B", "buffer R/W B", "peak in/w/out B",
]  # fmt: skip


def _total_row(r: TimingReport) -> list[Any]:
    return [
        "total",
        f"{r.total('tiles'):,}" + (f" (+{c:,})" if (c := r.total("copy_tiles")) else ""),
        f"{r.total('compute_cycles'):,}", f"{r.total('stall_cycles'):,}",
        f"{r.total('correction_cycles'):,}/{r.total('correction_exposed_cycles'):,}",
        f"{r.total('post_cycles'):,}", f"{r.total_cycles:,}",
        f"{100 * r.utilisation:.1f}",
        f"{r.total('offchip_read_bytes'):,}", f"{r.total('offchip_write_bytes'):,}",
        f"{r.total('buffer_read_bytes'):,}/{r.total('buffer_write_bytes'):,}",
        f"footprint {r.footprint_bytes:,}",
    ]  # fmt: skip


def _write_csv(path: Path, reports: dict[ProtectionMode, TimingReport]) -> None:
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mode", *LAYER_FIELDS])
        for mode, r in reports.items():
            for t in r.layers:
                w.writerow([mode.value, *(_cell(getattr(t, f)) for f in LAYER_FIELDS)])
            w.writerow([mode.value, -1, "total", *(
                r.total(f) if f not in NOT_SUMMED else "" for f in LAYER_FIELDS[2:]
            )])  # fmt: skip


NOT_SUMMED = ("utilisation", "oversized")


def _cell(value: Any) -> Any:
    return ";".join(value) if isinstance(value, tuple) else value


def _write_trace(path: Path, log: list) -> None:
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cycle", "component", "event", "payload"])
        w.writerows(log)


PE_HEADERS = [
    "mode", "faults", "PE: critical %", "exposure", "PE x exposure %", "PE: w/ effect %",
    "neuron: critical %", "neuron: w/ effect %",
]  # fmt: skip


def _pe_study(args, spec, net, pnets, schedules, reports) -> tuple[list[dict], list[list[str]]]:
    """PE faults (exposure-weighted) and neuron-output faults (the paper's view) per mode."""
    site = PeSite(args.pe_site)
    data = load_dataset(
        net.dataset, spec.dataset.split, data_dir=args.data_dir, n_images=args.test_images
    )
    x, labels = quantize_images(net, data.images), data.labels.astype(np.int64)
    base_cycles = reports[ProtectionMode.NONE].total_cycles
    docs, rows = [], []
    for k, (mode, pnet) in enumerate(pnets.items()):
        r = reports[mode]
        rng = np.random.default_rng([args.seed, k])
        arch_pe = schedules[mode].arch.pe_array
        faults = sample_pe_faults(
            site,
            arch_pe.rows,
            arch_pe.cols,
            r.total_cycles,
            args.pe_faults,
            permanent=args.permanent,
            rng=rng,
        )
        with tqdm(
            total=len(faults),
            unit="fault",
            desc=f"PE faults ({mode.value})",
            disable=None,
            leave=False,
        ) as bar:
            res = run_pe_campaign(
                schedules[mode], r, pnet, x, labels, faults, on_progress=bar.update
            )
        pop = (
            arch_pe.rows
            * arch_pe.cols
            * SITE_BITS[site]
            * (2 if args.permanent else r.total_cycles)
        )
        pe_sum = summarize(
            f"pe-{mode.value}",
            _rows(res),
            n_images=len(x),
            golden_correct=res.golden_correct,
            population=pop,
        )
        npop = build_population(net, pnet.plan, FaultKind.SINGLE_BIT, 1)
        fspec = dataclasses.replace(
            spec.faults, samples=min(args.pe_faults, npop.size), kind=FaultKind.SINGLE_BIT, n_bits=1
        )
        nfaults = sample_faults(npop, fspec, rng=rng)
        nrows = evaluate_batch(CampaignInputs(pnet, x, labels), fault_batch(nfaults))
        n_sum = summarize(
            f"neuron-{mode.value}",
            nrows,
            n_images=len(x),
            golden_correct=res.golden_correct,
            population=npop.size,
        )
        exposure = r.total_cycles / base_cycles
        docs.append({
            "mode": mode.value, "site": site.value, "permanent": args.permanent,
            "pe_faults": len(faults), "idle_hits": int(np.sum(res.layer == -1)),
            "exposure_factor": exposure,
            "pe_view": _metrics(pe_sum),
            "exposure_weighted_critical_rate": {
                k: exposure * v for k, v in estimate(pe_sum.critical_rate).items()
            },
            "neuron_view": _metrics(n_sum),
        })  # fmt: skip
        c, ce, nc = pe_sum.critical_rate, exposure * pe_sum.critical_rate.value, n_sum.critical_rate
        rows.append([
            mode.value, f"{len(faults):,}", f"{100 * c.value:.4f} ± {100 * c.half_width:.4f}",
            f"{exposure:.3f}", f"{100 * ce:.4f}",
            f"{100 * pe_sum.faults_with_effect.value:.2f}",
            f"{100 * nc.value:.4f} ± {100 * nc.half_width:.4f}",
            f"{100 * n_sum.faults_with_effect.value:.2f}",
        ])  # fmt: skip
    return docs, rows


def _metrics(s: Summary) -> dict[str, dict[str, float]]:
    return {
        "critical_rate": estimate(s.critical_rate),
        "faults_with_effect": estimate(s.faults_with_effect),
        "accuracy_loss_pp": estimate(s.accuracy_loss_pp),
    }


def _rows(res: PeCampaignResult) -> FaultRows:
    n = len(res.faults)
    ids = np.arange(n, dtype=np.int64)
    return FaultRows(
        ids, res.layer, ids * 0, ids * 0, ids * 0, ids * 0, res.n_changed, res.n_correct
    )


def simulate_command(args: argparse.Namespace) -> int:
    """Simulate the workload on the architecture for every mode; print and save the tables."""
    check_positive(args, "pe_faults", "test_images", "images")
    seed_int("seed", args.seed)
    arch = load_arch(args.arch)
    spec = load_workload(args.workload)
    net = load_network(spec.network)
    modes = args.protection or spec.protection_modes
    pnets, info = _networks(args, spec, net, modes)
    threshold = info["threshold_percent"]
    schedules, reports, logs, seconds = {}, {}, {}, {}
    for mode, pnet in pnets.items():
        log: list | None = [] if args.trace else None
        start = time.perf_counter()
        schedules[mode], reports[mode] = simulate(
            net, arch, plan=pnet.plan, ideal_memory=args.ideal_memory, log=log
        )
        seconds[mode] = time.perf_counter() - start
        logs[mode] = log
    out_dir = Path(args.output_dir or spec.output_dir) / "timing"
    tag = f"{arch.name}-{net.name}" + ("" if len(pnets) == 1 else f"-T{threshold:g}")
    csv_path = out_dir / f"timing-{tag}.csv"
    _write_csv(csv_path, reports)
    files = [str(csv_path)]
    if args.trace:
        for mode, log in logs.items():
            path = (
                Path(args.trace).with_suffix(f".{mode.value}.csv")
                if len(logs) > 1
                else Path(args.trace)
            )
            _write_trace(path, log)
            files.append(str(path))
    base = reports[ProtectionMode.NONE]
    lines = [
        f"{net.name} on {arch.name} ({arch.pe_array.rows}x{arch.pe_array.cols} "
        f"{arch.pe_array.dataflow.value}, {arch.clock_mhz:g} MHz"
        f"{', ideal memory' if args.ideal_memory else ''})",
    ]
    summary_rows, mode_docs = [], []
    for mode, r in reports.items():
        plan = pnets[mode].plan
        over = timing_overhead(r, base)
        title = (
            mode.value
            if mode is ProtectionMode.NONE
            else f"{mode.value} (NVF >= {threshold:g} %: {plan.n_protected:,} neurons)"
        )
        lines += [
            "",
            f"[{title}] simulated in {seconds[mode]:.3f} s",
            *text_table(LAYER_HEADERS, [*map(_layer_row, r.layers), _total_row(r)]),
        ]
        lines += [
            f"note: {t.name} needs more than the {', '.join(t.oversized)} buffer holds; its "
            "slices are streamed through (a real design would tile them further)"
            for t in r.layers
            if t.oversized
        ]
        micro = r.total_cycles / arch.clock_mhz
        summary_rows.append([
            mode.value, f"{plan.n_protected:,}", f"{r.total('compute_cycles'):,}",
            f"{r.total_cycles:,}", f"{micro:,.1f}", f"{over.cycles_percent:+.2f}",
            f"{over.compute_percent:+.2f}", f"{over.offchip_bytes_percent:+.2f}",
            f"{r.footprint_bytes:,}", f"{over.footprint_percent:+.2f}",
        ])  # fmt: skip
        mode_docs.append({
            "mode": mode.value, "protected": plan.n_protected, "seconds": seconds[mode],
            "total_cycles": r.total_cycles, "latency_us": micro,
            "footprint_bytes": r.footprint_bytes, "overhead_percent": dataclasses.asdict(over),
            "layers": [dataclasses.asdict(t) for t in r.layers],
        })  # fmt: skip
    lines += ["", *text_table(
        ["mode", "protected", "compute cyc", "total cyc", "latency us", "+cycles %",
         "+compute %", "+off-chip B %", "footprint B", "+footprint %"], summary_rows,
    )]  # fmt: skip
    if len(pnets) > 1 and all(p.plan.n_protected == 0 for p in pnets.values()):
        lines.append(
            f"note: no neuron of {net.name} has NVF >= {threshold:g} %, so the protected "
            "runs equal the unprotected one; --top 5 protects the 5 % most vulnerable neurons"
        )
    doc: dict[str, Any] = {
        "arch": arch.name, "network": net.name, "network_hash": network_hash(net),
        "dataflow": arch.pe_array.dataflow.value, "ideal_memory": args.ideal_memory, **info,
        "modes": mode_docs, "files": files,
    }  # fmt: skip
    if args.pe_faults:
        docs, rows = _pe_study(args, spec, net, pnets, schedules, reports)
        doc["pe_faults"] = docs
        kind = "permanent stuck-at" if args.permanent else "transient flips"
        lines += [
            "", f"PE faults ({args.pe_site}, {kind}) uniform over PE x cycle x bit of each run, "
            "next to single-bit neuron-output faults uniform over neuron copies x bit (the "
            f"paper's view), {args.test_images:,} images; critical rate = fault x image "
            "inferences whose class changes (95 % interval)",
            *text_table(PE_HEADERS, rows),
            "exposure = cycles of the run / cycles of the unprotected run: with the same raw fault "
            "rate per PE and cycle, a longer protected run is hit that much more often",
        ]  # fmt: skip
    lines += ["", "wrote: " + ", ".join(files)]
    emit(args, doc, lines)
    return 0
