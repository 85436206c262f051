"""The headline study: NVF analysis (cached), then for the unprotected network and every NVF
threshold x protection mode a fault-injection campaign and a cycle simulation; results, Table I,
figures and a self-contained HTML report, written as they finish.

Two steps, so that a caller can show what will run before it runs::

    study = prepare_study("pe16x16", "lenet5", StudyOptions(faults=200))
    print(study.header)
    result = study.run()          # or run_study("pe16x16", "lenet5", faults=200) in one call

The output folder is held by this process while the study runs (``files.OutputLock``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import __version__
from accelsim.analysis.exhaustive import estimate_exhaustive_seconds
from accelsim.analysis.vulnerability import NvfResult
from accelsim.config.arch import ArchSpec, load_arch
from accelsim.config.workload import (
    BitMapping,
    NvfMethod,
    ProtectionMode,
    WorkloadSpec,
    dataset_source,
    load_workload,
)
from accelsim.datasets import load_dataset
from accelsim.errors import AccelsimError, DatasetError, ParameterError, positive_int, seed_int
from accelsim.files import OutputLock
from accelsim.functional.models import (
    AnyNetwork,
    input_shape,
    layer_sizes,
    load_model,
    model_hash,
    quantize_inputs,
)
from accelsim.protection.plan import SPLITS, splittable
from accelsim.report.html import HtmlFigure, HtmlTable, render_report, write_report
from accelsim.report.plots import nvf_figure, save_figure
from accelsim.report.sweep_plots import fig4_figure, overhead_figure
from accelsim.report.tables import PAPER_THRESHOLDS, critical_table
from accelsim.study.nvf import WorkloadNvf, workload_nvf
from accelsim.study.options import as_enum, as_modes, check_split
from accelsim.sweep.results import ResultRow, recommend, row_document, write_results
from accelsim.sweep.runner import SweepConfig, plan_jobs, run_sweep
from accelsim.sweep.thresholds import DEFAULT_TOPS, SweepPoint, sweep_points

QUICK_FAULTS, QUICK_IMAGES, QUICK_NVF_IMAGES = 1000, 1000, 500


class NvfChoice(enum.Enum):
    """How ``run`` computes the NVF that selects the neurons to protect. auto: the exhaustive
    ground truth (every bit flip through the campaign engine) when its estimated time fits
    ``nvf_budget_seconds``, else the workload's analysis settings; exhaustive: always;
    workload: the workload's ``analysis`` settings; paper: the paper's setting (Algorithm 1:
    the critical deltas by injection, its bit mapping, the gradient check)."""

    AUTO = "auto"
    EXHAUSTIVE = "exhaustive"
    WORKLOAD = "workload"
    PAPER = "paper"


class Scale(enum.Enum):
    """quick: 1,000 faults x 1,000 images per campaign, NVF over <= 500 images (the bundled
    sample when the analysis split is not on disk); paper: Leveugle sample sizes, the full test
    split, the workload's NVF images."""

    QUICK = "quick"
    PAPER = "paper"


def _percents(name: str, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    out = tuple(values)
    for v in out:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 100
        if not ok:
            raise ParameterError(
                name, f"{{parameter}}: expected percentages in [0, 100], got {v!r}"
            )
    return tuple(float(v) for v in out)


@dataclass(frozen=True)
class StudyOptions:
    """How to run the study; None takes the workload's setting or the scale's default.

    ``out_dir``: the output folder (default: the workload's ``output_dir/run-ARCH``);
    ``modes``: protection modes besides the unprotected network; ``thresholds``: NVF thresholds
    in percent; ``tops``: also protect the top P % of neurons (default 1, 2, 5, 10, 20, 50);
    ``faults`` / ``test_images``: per campaign; ``nvf_images``: analysis images; ``workers``:
    local worker processes per campaign; ``seed``: fault sampling; ``resume``: continue the
    study in ``out_dir``; ``data_dir``: dataset folder."""

    scale: Scale = Scale.QUICK
    out_dir: Path | None = None
    modes: tuple[ProtectionMode, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    tops: tuple[float, ...] | None = None
    faults: int | None = None
    test_images: int | None = None
    test_split: str | None = None
    nvf_split: str | None = None
    nvf_images: int | None = None
    nvf: NvfChoice = NvfChoice.AUTO
    nvf_budget_seconds: float = 600.0
    workers: int = 1
    seed: int | None = None
    resume: bool = False
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", as_enum("scale", Scale, self.scale))
        object.__setattr__(self, "nvf", as_enum("nvf", NvfChoice, self.nvf))
        budget = self.nvf_budget_seconds
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget >= 0:
            raise ParameterError(
                "nvf_budget_seconds", f"{{parameter}}: expected seconds >= 0, got {budget!r}"
            )
        for name in ("faults", "test_images", "nvf_images"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        positive_int("workers", self.workers)
        for name in ("test_split", "nvf_split"):
            check_split(name, getattr(self, name))
        if self.modes is not None:
            object.__setattr__(self, "modes", as_modes("modes", self.modes))
        object.__setattr__(self, "thresholds", _percents("thresholds", self.thresholds))
        object.__setattr__(self, "tops", _percents("tops", self.tops))
        if self.seed is not None:
            seed_int("seed", self.seed)


def row_cells(r: ResultRow) -> list[str]:
    """One result row as the report's and the console's table cells."""
    a, c, w = r.accuracy_loss_pp, r.critical_rate, r.critical_rate_fixed_raw
    t = "-" if math.isnan(r.threshold_percent) else f"{r.threshold_percent:.4g}"
    return [
        r.mode.value, r.label, t, f"{r.critical_neurons:,}", f"{r.neurons:,}",
        f"{r.neurons_overhead_percent:+.2f}", f"{r.memory_overhead_percent:+.2f}",
        f"{r.memory_overhead_transform_percent:+.2f}",
        f"{r.cycles:,}", f"{r.cycle_overhead_percent:+.2f}",
        f"{a.value:.4f} ± {(a.hi - a.lo) / 2:.4f}",
        f"{100 * c.value:.4f} ± {100 * (c.hi - c.lo) / 2:.4f}",
        f"{100 * w.value:.4f} ± {100 * (w.hi - w.lo) / 2:.4f}",
        f"{r.faults:,}", f"{100 * r.fault_free_accuracy:.2f}",
    ]  # fmt: skip


# "+memory %": what the accelerator holds (copies re-read the weights); "(transform)": the
# paper's network-transform view; "critical @raw (%)": the critical rate at a fixed raw fault
# rate per bit, relative to the unprotected network (per-fault rate x population ratio)
ROW_HEADERS = (
    "mode", "threshold", "NVF >= %", "critical", "neurons", "+neurons %", "+memory %",
    "+memory % (transform)", "cycles", "+cycles %", "accuracy loss (pp)", "critical rate (%)",
    "critical @raw (%)", "faults", "fault-free acc %",
)  # fmt: skip
TABLE_I_HEADERS = ("NVF >= %", "critical", "portion %", "paper", "paper portion %")


@dataclass(frozen=True, eq=False)
class StudyResult:
    """What a study found and wrote: one row per threshold x mode (the unprotected network
    first), the recommendation under the workload's accuracy-loss budget (``advice`` says it
    as a sentence), Table I, the settings (``meta``), the files written and the seconds the
    study took, its preparation (NVF, images) included."""

    rows: tuple[ResultRow, ...]
    recommended: ResultRow | None
    recommendation: str
    advice: str
    precision: str
    table_i: tuple[tuple[Any, ...], ...]
    meta: dict[str, Any]
    out_dir: Path
    files: tuple[Path, ...]
    seconds: float

    def document(self) -> dict[str, Any]:
        """The result as one JSON-ready document (what ``run --json`` prints)."""
        rec = self.recommended
        return {**self.meta, "rows": [row_document(r) for r in self.rows],
                "recommendation": self.recommendation,
                "recommended": None if rec is None else row_document(rec),
                "seconds": self.seconds, "files": [str(p) for p in self.files]}  # fmt: skip


@dataclass(eq=False)
class Study:
    """A prepared study: everything decided before the first campaign (``header`` says what
    will run; ``note`` says what was substituted, e.g. the bundled sample for NVF)."""

    arch: ArchSpec
    spec: WorkloadSpec
    options: StudyOptions
    net: AnyNetwork
    out_dir: Path
    result: NvfResult
    x: np.ndarray
    labels: np.ndarray
    ranges: dict
    config: SweepConfig
    points: tuple[SweepPoint, ...]
    jobs: list
    meta: dict[str, Any]
    header: str
    sizes: str
    note: str | None
    prepare_seconds: float
    done: list[ResultRow] = field(default_factory=list)

    @property
    def n_faults(self) -> int:
        return sum(j.n_faults for j in self.jobs)

    def run(
        self,
        *,
        on_stage: Callable[[str], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> StudyResult:
        """Run the campaigns (results rewritten after each; ``done`` holds the finished rows
        when an interrupt stops it), then write the figures and ``report.html``."""
        started = time.perf_counter()

        def on_row(rows: list[ResultRow]) -> None:
            self.done[:] = rows
            write_results(rows, self.out_dir, self.meta)

        with OutputLock(self.out_dir):
            rows = run_sweep(
                self.net, self.arch, self.jobs, self.ranges, self.x, self.labels, self.config,
                self.out_dir, resume=self.options.resume, on_stage=on_stage,
                on_progress=on_progress, on_row=on_row,
            )  # fmt: skip
            seconds = self.prepare_seconds + time.perf_counter() - started
            return _report(self, rows, seconds)


def _analysis(
    spec: WorkloadSpec, o: StudyOptions, on_progress: Callable[[int], None] | None
) -> tuple[WorkloadNvf, str | None, str]:
    """NVF (cached under the workload's output folder) by the method ``o.nvf`` chooses, and why
    (a sentence); quick runs fall back to the bundled sample when the analysis split is not on
    disk (the note says so)."""
    images = o.nvf_images or (
        spec.analysis.n_images
        if o.scale is Scale.PAPER
        else min(spec.analysis.n_images, QUICK_NVF_IMAGES)
    )
    net = load_model(spec.network)
    split, note = o.nvf_split or spec.analysis.split, None
    source, shape = dataset_source(spec, net.dataset), input_shape(net)
    try:
        data = load_dataset(source, split, shape=shape, data_dir=o.data_dir, n_images=images)
    except DatasetError as exc:
        if o.scale is Scale.PAPER or o.nvf_split is not None or source != "mnist":
            raise
        note = (
            f"the {spec.analysis.split} split is not on disk ({str(exc).split(':')[0]}; see "
            "`python -m accelsim data info`): NVF on the bundled MNIST sample instead"
        )
        split = "sample"
        data = load_dataset(source, split, shape=shape, data_dir=o.data_dir, n_images=images)
    settings, why = _nvf_settings(spec, o, net, quantize_inputs(net, data.images))
    run = workload_nvf(spec, data=data, on_progress=on_progress, **settings)
    return run, note, why


def _nvf_settings(spec: WorkloadSpec, o: StudyOptions, net: AnyNetwork,
                  x: np.ndarray) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The ``workload_nvf`` settings ``o.nvf`` asks for, and the sentence that says why."""
    a = spec.analysis
    own = (f"the workload's {a.method.value} / {a.bit_mapping.value} / gradient check "
           f"{'on' if a.has_gradient_check else 'off'}")  # fmt: skip
    exhaustive = {"method": NvfMethod.EXHAUSTIVE, "workers": o.workers}
    if o.nvf is NvfChoice.WORKLOAD:
        return {}, f"{own} (nvf=workload)"
    if o.nvf is NvfChoice.PAPER:
        paper = {"method": NvfMethod.EXACT, "mapping": BitMapping.PAPER, "gradient_check": True}
        return paper, "the paper's setting: exact search, Algorithm 1's bit mapping, gradient check"
    if o.nvf is NvfChoice.EXHAUSTIVE:
        return exhaustive, "exhaustive: every bit flip of every neuron (nvf=exhaustive)"
    seconds = estimate_exhaustive_seconds(net, x, workers=o.workers)
    budget = o.nvf_budget_seconds
    if seconds <= budget:
        return exhaustive, (f"exhaustive, the ground truth (estimated {seconds:,.0f} s within "
                            f"the {budget:,.0f} s NVF budget)")  # fmt: skip
    return {}, (f"{own}: exhaustive would take about {seconds / 3600:,.1f} h, over the "
                f"{budget:,.0f} s NVF budget")  # fmt: skip


def _test_data(o: StudyOptions, spec: WorkloadSpec, net: AnyNetwork, nvf_split: str,
               nvf_images: int):  # fmt: skip
    """Campaign images: the workload's split, its first 1,000 images in a quick run, the whole
    test split at paper scale; disjoint from the NVF images when both come from the bundled
    sample."""
    split = o.test_split or spec.dataset.split
    if o.scale is Scale.PAPER:  # the full test split (the bundled sample is only its start)
        split = o.test_split or ("test" if split == "sample" else split)
        n = o.test_images
    else:
        n = o.test_images or QUICK_IMAGES
        if spec.dataset.n_images is not None:
            n = min(n, spec.dataset.n_images)
    if split == "sample" and nvf_split == "sample":
        data = load_dataset(
            dataset_source(spec, net.dataset), split, shape=input_shape(net), data_dir=o.data_dir
        )
        skip = min(nvf_images, len(data.labels) - 1)
        images, labels = data.images[skip:], data.labels[skip:]
        return images[:n], labels[:n], f"sample images {skip}..{skip + len(labels[:n]) - 1}"
    data = load_dataset(
        dataset_source(spec, net.dataset),
        split,
        shape=input_shape(net),
        data_dir=o.data_dir,
        n_images=n,
    )
    return data.images, data.labels, f"{split} images 0..{len(data.labels) - 1}"


def _check_out(out_dir: Path, resume: bool) -> None:
    if not resume and any((out_dir / "campaigns").glob("*.sqlite")):
        raise ParameterError(
            "resume",
            f"{out_dir} already holds a sweep's campaigns; pass {{parameter}} to continue it, "
            "or choose another output folder",
            spelled="resume=True",
        )


def prepare_study(
    arch: ArchSpec | Path | str, workload: WorkloadSpec | Path | str,
    options: StudyOptions | None = None,
    *, on_nvf_progress: Callable[[int], None] | None = None,
) -> Study:  # fmt: skip
    """Load the inputs (files or built-in names), run or load the NVF (``on_nvf_progress(n)``:
    n more analysis images' worth done), choose the images, thresholds and campaigns; nothing
    is written to the output folder yet."""
    started = time.perf_counter()
    o = options or StudyOptions()
    arch = arch if isinstance(arch, ArchSpec) else load_arch(arch)
    spec = workload if isinstance(workload, WorkloadSpec) else load_workload(workload)
    out_dir = Path(o.out_dir) if o.out_dir else spec.output_dir / f"run-{arch.name}"
    _check_out(out_dir, o.resume)
    nvf_run, note, nvf_why = _analysis(spec, o, on_nvf_progress)
    net, analysis_data, result = nvf_run.net, nvf_run.data, nvf_run.result
    nvf = result.by_layer
    images, labels, test_desc = _test_data(o, spec, net, analysis_data.split, result.n_inputs)
    x, labels = quantize_inputs(net, images), labels.astype(np.int64)
    faults = o.faults or (spec.faults.samples if o.scale is Scale.PAPER else QUICK_FAULTS)
    seed = spec.faults.seed if o.seed is None else o.seed
    fspec = dataclasses.replace(spec.faults, samples=faults, seed=seed)
    modes = tuple(m for m in (o.modes or spec.protection_modes) if m is not ProtectionMode.NONE)
    grid = spec.thresholds_percent if o.thresholds is None else o.thresholds
    tops = DEFAULT_TOPS if o.tops is None else tuple(t for t in o.tops if t > 0)
    points = sweep_points(nvf, grid, tops)
    if not points:
        raise AccelsimError("no threshold selects any neuron: lower the thresholds or add tops")
    config = SweepConfig(modes, fspec, o.workers)
    jobs = plan_jobs(net, nvf, points, config)
    meta = {
        "accelsim_version": __version__, "arch": arch.name, "workload": spec.name,
        "network": net.name, "network_hash": model_hash(net), "seed": seed,
        "scale": o.scale.value, "faults_per_campaign": faults, "fault_kind": fspec.kind.value,
        "test_images": len(x), "test_images_from": test_desc,
        "nvf_method": result.method.value, "nvf_choice": o.nvf.value, "nvf_why": nvf_why,
        "nvf_images": result.n_inputs,
        "nvf_split": analysis_data.split, "nvf_cached": nvf_run.cached,
        "accuracy_loss_budget_pp": spec.accuracy_loss_budget_percent,
        "thresholds": [dataclasses.asdict(p) for p in points],
        "table_i": [vars(r) for r in critical_table(result.nvf, PAPER_THRESHOLDS, net.name)],
    }  # fmt: skip
    split_note = _split_note(net, modes)
    if split_note:
        meta["split_note"] = split_note
        note = split_note if note is None else f"{note}; {split_note}"
    counts = sorted({j.n_faults for j in jobs})
    sizes = f"{counts[0]:,}" + (f"..{counts[-1]:,}" if len(counts) > 1 else "")
    sampling = faults if isinstance(faults, str) else "fixed count"
    header = (
        f"{net.name} on {arch.name}: {len(points)} thresholds x {len(modes)} modes + "
        f"unprotected = {len(jobs)} campaigns of {sizes} faults ({sampling}) x "
        f"{len(x):,} images ({test_desc}); NVF over {result.n_inputs} "
        f"{analysis_data.split} images{' [cached]' if nvf_run.cached else ''}: {nvf_why}"
    )
    return Study(arch, spec, o, net, out_dir, result, x, labels, nvf_run.ranges, config, points,
                 jobs, meta, header, sizes, note, time.perf_counter() - started)  # fmt: skip


def _split_note(net: AnyNetwork, modes: tuple[ProtectionMode, ...]) -> str | None:
    """What a split sweep on a graph leaves out: the neuron nodes whose activation does not
    clamp at zero point -128 or 0 (a ResNet's convolutions feeding an ADD)."""
    if not any(m in SPLITS for m in modes):
        return None
    sizes = layer_sizes(net)
    left = [i for i in sizes if not splittable(net, i)]
    if not left:
        return None
    n_left = sum(sizes[i] for i in left)
    total = sum(sizes.values())
    return (
        f"split rows protect only the splittable nodes' critical neurons: {len(left)} of "
        f"{len(sizes)} neuron nodes ({n_left:,} of {total:,} neurons) have no activation "
        "clamping at zero point -128 or 0 and are left unprotected there"
    )


def run_study(
    arch: ArchSpec | Path | str = "pe16x16", workload: WorkloadSpec | Path | str = "lenet5",
    **options: Any,
) -> StudyResult:  # fmt: skip
    """The whole study in one call: ``run_study("pe16x16", "lenet5", faults=200)``; keyword
    arguments are :class:`StudyOptions` fields."""
    return prepare_study(arch, workload, StudyOptions(**options)).run()


def _figures(study: Study, rows: list[ResultRow]) -> list[HtmlFigure]:
    fig_dir = study.out_dir / "figures"
    name = study.net.name
    made = [
        ("fig4", "Accuracy loss, critical-fault rate and network size vs NVF threshold",
         fig4_figure(rows, name)),
        ("overhead", "Accuracy loss and critical-fault rate vs cycle and memory overhead",
         overhead_figure(rows, name)),
        ("nvf", "NVF distribution per layer and critical portion vs threshold",
         nvf_figure(study.result, name)),
    ]  # fmt: skip
    out = []
    for stem, caption, fig in made:
        paths = save_figure(fig, fig_dir / stem)
        out.append(HtmlFigure(f"figure-{stem}", caption, paths[0]))
    return out


def _table_i_rows(meta: dict[str, Any]) -> tuple[tuple[Any, ...], ...]:
    return tuple(
        (f"{r['threshold_percent']:g}", r["critical"], f"{r['portion_percent']:.2f}",
         "-" if r["paper_critical"] is None else r["paper_critical"],
         "-" if r["paper_portion_percent"] is None else f"{r['paper_portion_percent']:.2f}")
        for r in meta["table_i"]
    )  # fmt: skip


def _report(study: Study, rows: list[ResultRow], seconds: float) -> StudyResult:
    """Figures and report.html; the result."""
    figures = _figures(study, rows)
    budget = study.spec.accuracy_loss_budget_percent
    best, why = recommend(rows, budget)
    half_a = float(np.median([(r.accuracy_loss_pp.hi - r.accuracy_loss_pp.lo) / 2 for r in rows]))
    half_c = float(np.median([(r.critical_rate.hi - r.critical_rate.lo) / 2 for r in rows]))
    precision = (
        f"campaigns: {study.sizes} faults x {len(study.x):,} images each; median 95 % "
        f"half-width {half_a:.4f} pp (accuracy loss), {100 * half_c:.4f} % (critical-fault rate)"
    )
    advice = f"recommended under the {budget:g} pp accuracy-loss budget: {why}"
    t1 = _table_i_rows(study.meta)
    tables = [
        HtmlTable("results", "Results: one row per threshold x mode (95 % intervals)",
                  ROW_HEADERS, tuple(tuple(row_cells(r)) for r in rows)),
        HtmlTable("table-i", "Table I: critical neurons per NVF threshold (ours | paper)",
                  TABLE_I_HEADERS, t1),
        HtmlTable("thresholds", "Thresholds of the sweep",
                  ("NVF >= %", "label", "protected", "share %"),
                  tuple((f"{p.threshold_percent:.4g}", p.label, p.n_protected,
                         f"{p.top_percent:.2f}") for p in study.points)),
    ]  # fmt: skip
    settings = {k: v for k, v in study.meta.items() if k not in ("thresholds", "table_i")}
    settings["thresholds"] = ", ".join(p.label for p in study.points)
    title = f"accelsim: {study.net.name} on {study.arch.name}"
    report = write_report(
        study.out_dir / "report.html",
        render_report(title, [study.header, precision, advice], settings, figures, tables),
    )
    files = (study.out_dir / "results.csv", study.out_dir / "results.json", report,
             *(f.png for f in figures))  # fmt: skip
    return StudyResult(tuple(rows), best, why, advice, precision, t1, study.meta, study.out_dir,
                       files, seconds)  # fmt: skip
