"""``run``: the headline. NVF analysis (cached), then for the unprotected network and every NVF
threshold x protection mode a fault-injection campaign and a cycle simulation; results,
Table I, figures and a self-contained HTML report, written as they finish."""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from tqdm import tqdm

from accelsim import __version__
from accelsim.cli.commands import _emit, _nvf, _table, check_positive
from accelsim.config.arch import load_arch
from accelsim.config.workload import ProtectionMode, load_workload
from accelsim.datasets import load_dataset
from accelsim.errors import AccelsimError, DatasetError
from accelsim.files import OutputLock
from accelsim.functional.modelio import network_hash
from accelsim.functional.network import quantize_images
from accelsim.protection.protected import profile_ranges
from accelsim.report.html import HtmlFigure, HtmlTable, render_report, write_report
from accelsim.report.plots import nvf_figure, save_figure
from accelsim.report.sweep_plots import fig4_figure, overhead_figure
from accelsim.report.tables import PAPER_THRESHOLDS, critical_table
from accelsim.sweep.results import ResultRow, recommend, row_document, write_results
from accelsim.sweep.runner import SweepConfig, plan_jobs, run_sweep
from accelsim.sweep.thresholds import DEFAULT_TOPS, sweep_points

QUICK_FAULTS, QUICK_IMAGES, QUICK_NVF_IMAGES = 1000, 1000, 500


def _analysis(args, spec) -> tuple[Any, ...]:
    """NVF (cached under the workload's output folder); quick runs fall back to the bundled
    sample when the analysis split is not on disk."""
    images = args.nvf_images or (
        spec.analysis.n_images
        if args.scale == "paper"
        else min(spec.analysis.n_images, QUICK_NVF_IMAGES)
    )
    ns = SimpleNamespace(images=images, split=args.nvf_split, data_dir=args.data_dir,
                         output_dir=None, force=False)  # fmt: skip
    try:
        return (*_nvf(ns, spec), None)
    except DatasetError as exc:
        if args.scale == "paper" or args.nvf_split is not None:
            raise
        ns.split = "sample"
        note = (
            f"the {spec.analysis.split} split is not on disk ({str(exc).split(':')[0]}; see "
            "`python -m accelsim data info`): NVF on the bundled MNIST sample instead"
        )
        return (*_nvf(ns, spec), note)


def _test_data(args, spec, net, nvf_split: str, nvf_images: int):
    """Campaign images: the workload's split, its first 1,000 images in a quick run, the whole
    test split at paper scale; disjoint from the NVF images when both come from the bundled
    sample."""
    split = args.test_split or spec.dataset.split
    if args.scale == "paper":  # the full test split (the bundled sample is only its start)
        split = args.test_split or ("test" if split == "sample" else split)
        n = args.test_images
    else:
        n = args.test_images or QUICK_IMAGES
        if spec.dataset.n_images is not None:
            n = min(n, spec.dataset.n_images)
    if split == "sample" and nvf_split == "sample":
        data = load_dataset(net.dataset, split, data_dir=args.data_dir)
        skip = min(nvf_images, len(data.labels) - 1)
        images, labels = data.images[skip:], data.labels[skip:]
        return images[:n], labels[:n], f"sample images {skip}..{skip + len(labels[:n]) - 1}"
    data = load_dataset(net.dataset, split, data_dir=args.data_dir, n_images=n)
    return data.images, data.labels, f"{split} images 0..{len(data.labels) - 1}"


def parse_percents(text: str) -> tuple[float, ...]:
    """--thresholds / --tops: comma-separated percentages in [0, 100] ('' for none)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 100:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated percentages in [0, 100], got {part!r}"
            )
        out.append(value)
    return tuple(out)


def _row_cells(r: ResultRow) -> list[str]:
    a, c = r.accuracy_loss_pp, r.critical_rate
    t = "-" if math.isnan(r.threshold_percent) else f"{r.threshold_percent:.4g}"
    return [
        r.mode, r.label, t, f"{r.critical_neurons:,}", f"{r.neurons:,}",
        f"{r.neurons_overhead_percent:+.2f}", f"{r.memory_overhead_percent:+.2f}",
        f"{r.cycles:,}", f"{r.cycle_overhead_percent:+.2f}",
        f"{a.value:.4f} ± {(a.hi - a.lo) / 2:.4f}",
        f"{100 * c.value:.4f} ± {100 * (c.hi - c.lo) / 2:.4f}",
        f"{r.faults:,}", f"{100 * r.fault_free_accuracy:.2f}",
    ]  # fmt: skip


ROW_HEADERS = (
    "mode", "threshold", "NVF >= %", "critical", "neurons", "+neurons %", "+memory %", "cycles",
    "+cycles %", "accuracy loss (pp)", "critical rate (%)", "faults", "fault-free acc %",
)  # fmt: skip


def _check_out(out_dir: Path, resume: bool) -> None:
    if not resume and any((out_dir / "campaigns").glob("*.sqlite")):
        raise AccelsimError(
            f"{out_dir} already holds a sweep's campaigns; pass --resume to continue it, or "
            "choose another --out"
        )


def _figures(rows, result, net, out_dir: Path) -> list[HtmlFigure]:
    fig_dir = out_dir / "figures"
    made = [
        ("fig4", "Accuracy loss, critical-fault rate and network size vs NVF threshold",
         fig4_figure(rows, net.name)),
        ("overhead", "Accuracy loss and critical-fault rate vs cycle and memory overhead",
         overhead_figure(rows, net.name)),
        ("nvf", "NVF distribution per layer and critical portion vs threshold",
         nvf_figure(result, net.name)),
    ]  # fmt: skip
    out = []
    for name, caption, fig in made:
        paths = save_figure(fig, fig_dir / name)
        out.append(HtmlFigure(f"figure-{name}", caption, paths[0]))
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class _Sweep:
    """Everything the sweep and its report need, decided before the first campaign."""

    arch: Any
    spec: Any
    net: Any
    out_dir: Path
    result: Any  # the NVF
    x: np.ndarray
    labels: np.ndarray
    ranges: dict
    config: SweepConfig
    points: tuple
    jobs: list
    meta: dict
    header: str
    sizes: str


def _prepare(args: argparse.Namespace, arch, spec, out_dir: Path) -> tuple[_Sweep, str | None]:
    _check_out(out_dir, args.resume)
    net, analysis_data, result, _, cached, _, note = _analysis(args, spec)
    nvf = {lay.layer: lay.nvf for lay in result.layers}
    images, labels, test_desc = _test_data(args, spec, net, analysis_data.split, result.n_inputs)
    x, labels = quantize_images(net, images), labels.astype(np.int64)
    faults = args.faults or (spec.faults.samples if args.scale == "paper" else QUICK_FAULTS)
    seed = spec.faults.seed if args.seed is None else args.seed
    fspec = dataclasses.replace(spec.faults, samples=faults, seed=seed)
    modes = tuple(m for m in (args.modes or spec.protection_modes) if m is not ProtectionMode.NONE)
    grid = spec.thresholds_percent if args.thresholds is None else args.thresholds
    tops = DEFAULT_TOPS if args.tops is None else tuple(t for t in args.tops if t > 0)
    points = sweep_points(nvf, grid, tops)
    if not points:
        raise AccelsimError("no threshold selects any neuron: lower --thresholds or add --tops")
    config = SweepConfig(modes, fspec, args.workers or 1)
    jobs = plan_jobs(net, nvf, points, config)
    meta = {
        "accelsim_version": __version__, "arch": arch.name, "workload": spec.name,
        "network": net.name, "network_hash": network_hash(net), "seed": seed,
        "scale": args.scale, "faults_per_campaign": faults, "fault_kind": fspec.kind.value,
        "test_images": len(x), "test_images_from": test_desc,
        "nvf_method": result.method.value, "nvf_images": result.n_inputs,
        "nvf_split": analysis_data.split, "nvf_cached": cached,
        "accuracy_loss_budget_pp": spec.accuracy_loss_budget_percent,
        "thresholds": [dataclasses.asdict(p) for p in points],
        "table_i": [vars(r) for r in critical_table(result.nvf, PAPER_THRESHOLDS, net.name)],
    }  # fmt: skip
    counts = sorted({j.n_faults for j in jobs})
    sizes = f"{counts[0]:,}" + (f"..{counts[-1]:,}" if len(counts) > 1 else "")
    sampling = faults if isinstance(faults, str) else "fixed count"
    header = (
        f"{net.name} on {arch.name}: {len(points)} thresholds x {len(modes)} modes + "
        f"unprotected = {len(jobs)} campaigns of {sizes} faults ({sampling}) x "
        f"{len(x):,} images ({test_desc}); NVF over {result.n_inputs} "
        f"{analysis_data.split} images{' [cached]' if cached else ''}"
    )
    ranges = profile_ranges(net, quantize_images(net, analysis_data.images))
    sweep = _Sweep(arch, spec, net, out_dir, result, x, labels, ranges, config, points, jobs,
                   meta, header, sizes)  # fmt: skip
    return sweep, note


def _run(sw: _Sweep, resume: bool) -> list[ResultRow] | None:
    """The campaigns, results rewritten after each; None when interrupted (Ctrl-C)."""
    done: list[ResultRow] = []

    def on_row(rows: list[ResultRow]) -> None:
        done[:] = rows
        write_results(rows, sw.out_dir, sw.meta)

    with tqdm(total=sum(j.n_faults for j in sw.jobs), unit="fault", desc="sweep",
              disable=None, smoothing=0.05) as bar:  # fmt: skip
        try:
            return run_sweep(
                sw.net, sw.arch, sw.jobs, sw.ranges, sw.x, sw.labels, sw.config, sw.out_dir,
                resume=resume, on_stage=lambda s: bar.set_description(f"sweep {s}"),
                on_progress=bar.update, on_row=on_row,
            )  # fmt: skip
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: {len(done)} of {len(sw.jobs)} campaigns are complete in "
                f"{sw.out_dir} (results.csv holds them; the running campaign's faults are "
                "saved); rerun with --resume to finish"
            )
            return None


def _table_i_rows(sw: _Sweep) -> tuple[tuple[Any, ...], ...]:
    return tuple(
        (f"{r['threshold_percent']:g}", r["critical"], f"{r['portion_percent']:.2f}",
         "-" if r["paper_critical"] is None else r["paper_critical"],
         "-" if r["paper_portion_percent"] is None else f"{r['paper_portion_percent']:.2f}")
        for r in sw.meta["table_i"]
    )  # fmt: skip


def _report(sw: _Sweep, rows: list[ResultRow], seconds: float) -> tuple[dict, list[str]]:
    """Figures, report.html, the JSON document and the console lines."""
    figures = _figures(rows, sw.result, sw.net, sw.out_dir)
    budget = sw.spec.accuracy_loss_budget_percent
    best, why = recommend(rows, budget)
    half_a = float(np.median([(r.accuracy_loss_pp.hi - r.accuracy_loss_pp.lo) / 2 for r in rows]))
    half_c = float(np.median([(r.critical_rate.hi - r.critical_rate.lo) / 2 for r in rows]))
    precision = (
        f"campaigns: {sw.sizes} faults x {len(sw.x):,} images each; median 95 % half-width "
        f"{half_a:.4f} pp (accuracy loss), {100 * half_c:.4f} % (critical-fault rate)"
    )
    advice = f"recommended under the {budget:g} pp accuracy-loss budget: {why}"
    t1 = _table_i_rows(sw)
    t1_headers = ("NVF >= %", "critical", "portion %", "paper", "paper portion %")
    tables = [
        HtmlTable("results", "Results: one row per threshold x mode (95 % intervals)",
                  ROW_HEADERS, tuple(tuple(_row_cells(r)) for r in rows)),
        HtmlTable("table-i", "Table I: critical neurons per NVF threshold (ours | paper)",
                  t1_headers, t1),
        HtmlTable("thresholds", "Thresholds of the sweep",
                  ("NVF >= %", "label", "protected", "share %"),
                  tuple((f"{p.threshold_percent:.4g}", p.label, p.n_protected,
                         f"{p.top_percent:.2f}") for p in sw.points)),
    ]  # fmt: skip
    settings = {k: v for k, v in sw.meta.items() if k not in ("thresholds", "table_i")}
    settings["thresholds"] = ", ".join(p.label for p in sw.points)
    title = f"accelsim: {sw.net.name} on {sw.arch.name}"
    report = write_report(
        sw.out_dir / "report.html",
        render_report(title, [sw.header, precision, advice], settings, figures, tables),
    )
    files = [sw.out_dir / "results.csv", sw.out_dir / "results.json", report]
    doc = {**sw.meta, "rows": [row_document(r) for r in rows], "recommendation": why,
           "recommended": None if best is None else row_document(best), "seconds": seconds,
           "files": [str(p) for p in files] + [str(f.png) for f in figures]}  # fmt: skip
    lines = [
        "", *_table(list(ROW_HEADERS), [_row_cells(r) for r in rows]), "", precision, "",
        "Table I: critical neurons per NVF threshold (ours | paper)",
        *_table(list(t1_headers), [list(r) for r in t1]),
        "", f"done in {seconds:.0f} s; wrote {sw.out_dir}/: results.csv, results.json, "
        "figures/ (fig4, overhead, nvf: PNG + SVG), report.html, campaigns/", "", advice,
    ]  # fmt: skip
    return doc, lines


def run_command(args: argparse.Namespace) -> int:
    """The whole sweep: prepare (NVF, images, thresholds), run the campaigns, report."""
    check_positive(args, "faults", "test_images", "workers", "nvf_images")
    started = time.perf_counter()
    arch, spec = load_arch(args.arch), load_workload(args.workload)
    out_dir = Path(args.out) if args.out else spec.output_dir / f"run-{arch.name}"
    with OutputLock(out_dir):
        sw, note = _prepare(args, arch, spec, out_dir)
        if not args.json:
            print(sw.header + (f"\nnote: {note}" if note else ""), flush=True)
        rows = _run(sw, args.resume)
        if rows is None:
            return 130
        doc, lines = _report(sw, rows, time.perf_counter() - started)
    _emit(args, doc, lines)
    return 0
