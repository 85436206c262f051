"""``simulate``: a workload's network (unprotected, and protected at one NVF threshold) on an
architecture (``accelsim.simulate_workload``): per-layer cycle tables, overheads, CSV,
``--trace``, ``--json``, and optionally PE-datapath fault campaigns next to the paper's
per-neuron view."""

from __future__ import annotations

import argparse
from typing import Any

from tqdm import tqdm

from accelsim import (
    CampaignInterrupted,
    LayerTiming,
    PeFaultRow,
    ProtectionMode,
    SimulationOptions,
    SimulationResult,
    TimingReport,
    load_workload,
    simulate_workload,
)
from accelsim.cli.common import check_positive, emit, nvf_bar, text_table


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


PE_HEADERS = [
    "mode", "faults", "PE: critical %", "exposure", "PE x exposure %", "PE: w/ effect %",
    "neuron: critical %", "neuron: w/ effect %",
]  # fmt: skip


def _pe_row(p: PeFaultRow) -> list[str]:
    c, nc = p.pe.critical_rate, p.neuron.critical_rate
    return [
        p.mode.value, f"{p.pe.n_faults:,}", f"{100 * c.value:.4f} ± {100 * c.half_width:.4f}",
        f"{p.exposure:.3f}", f"{100 * p.exposure * c.value:.4f}",
        f"{100 * p.pe.faults_with_effect.value:.2f}",
        f"{100 * nc.value:.4f} ± {100 * nc.half_width:.4f}",
        f"{100 * p.neuron.faults_with_effect.value:.2f}",
    ]  # fmt: skip


def _options(args: argparse.Namespace) -> SimulationOptions:
    return SimulationOptions(
        modes=args.protection, threshold=args.threshold, top=args.top,
        ideal_memory=args.ideal_memory, trace=args.trace, pe_faults=args.pe_faults,
        pe_site=args.pe_site, permanent=args.permanent, test_images=args.test_images,
        seed=args.seed, images=args.images, split=args.split, workers=args.workers,
        dask_address=args.dask, resume=args.resume, data_dir=args.data_dir,
        output_dir=args.output_dir,
    )  # fmt: skip


def simulate_command(args: argparse.Namespace) -> int:
    """Simulate the workload on the architecture for every mode; print the tables."""
    check_positive(args, "images")
    options = _options(args)
    spec = load_workload(args.workload)
    with nvf_bar(spec, args.images) as nbar, tqdm(
        total=0, unit="fault", disable=None if options.pe_faults else True, leave=False
    ) as bar:  # fmt: skip

        def stage(name: str, total: int) -> None:
            bar.reset(total=total)
            bar.set_description(name)

        try:
            r = simulate_workload(args.arch, spec, options, on_nvf_progress=nbar.update,
                                  on_stage=stage, on_progress=bar.update)  # fmt: skip
        except CampaignInterrupted as stop:
            print(f"\ninterrupted: {stop}; rerun with --resume to finish")
            return 130
    emit(args, r.document(), _lines(r))
    return 0


def _lines(r: SimulationResult) -> list[str]:
    arch, net, o = r.arch, r.network, r.options
    lines = [
        f"{net.name} on {arch.name} ({arch.pe_array.rows}x{arch.pe_array.cols} "
        f"{arch.pe_array.dataflow.value}, {arch.clock_mhz:g} MHz"
        f"{', ideal memory' if o.ideal_memory else ''})",
    ]
    summary_rows = []
    for run in r.runs:
        rep, plan, over = run.report, run.pnet.plan, run.overhead
        title = (
            run.mode.value
            if run.mode is ProtectionMode.NONE
            else f"{run.mode.value} (NVF >= {r.threshold:g} %: {plan.n_protected:,} neurons)"
        )
        lines += [
            "",
            f"[{title}] simulated in {run.seconds:.3f} s",
            *text_table(LAYER_HEADERS, [*map(_layer_row, rep.layers), _total_row(rep)]),
        ]
        lines += [
            f"note: {t.name} needs more than the {', '.join(t.oversized)} buffer holds; its "
            "slices are streamed through (a real design would tile them further)"
            for t in rep.layers
            if t.oversized
        ]
        micro = rep.total_cycles / arch.clock_mhz
        summary_rows.append([
            run.mode.value, f"{plan.n_protected:,}", f"{rep.total('compute_cycles'):,}",
            f"{rep.total_cycles:,}", f"{micro:,.1f}", f"{over.cycles_percent:+.2f}",
            f"{over.compute_percent:+.2f}", f"{over.offchip_bytes_percent:+.2f}",
            f"{rep.footprint_bytes:,}", f"{over.footprint_percent:+.2f}",
        ])  # fmt: skip
    lines += ["", *text_table(
        ["mode", "protected", "compute cyc", "total cyc", "latency us", "+cycles %",
         "+compute %", "+off-chip B %", "footprint B", "+footprint %"], summary_rows,
    )]  # fmt: skip
    if len(r.runs) > 1 and all(run.pnet.plan.n_protected == 0 for run in r.runs):
        lines.append(
            f"note: no neuron of {net.name} has NVF >= {r.threshold:g} %, so the protected "
            "runs equal the unprotected one; --top 5 protects the 5 % most vulnerable neurons"
        )
    if r.pe_faults:
        kind = "permanent stuck-at" if o.permanent else "transient flips"
        lines += [
            "", f"PE faults ({o.pe_site.value}, {kind}) uniform over PE x cycle x bit of each "
            "run, next to single-bit neuron-output faults uniform over neuron copies x bit (the "
            f"paper's view), {o.test_images:,} images; critical rate = fault x image "
            "inferences whose class changes (95 % interval)",
            *text_table(PE_HEADERS, [_pe_row(p) for p in r.pe_faults]),
            "exposure = cycles of the run / cycles of the unprotected run: with the same raw fault "
            "rate per PE and cycle, a longer protected run is hit that much more often",
        ]  # fmt: skip
    lines += ["", "wrote: " + ", ".join(map(str, r.files))]
    return lines
