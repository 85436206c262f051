"""``run``: the headline study (``accelsim.study``) with a progress bar, the console tables and
``--json``; the library does the work and writes the files."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from tqdm import tqdm

from accelsim import ROW_HEADERS, TABLE_I_HEADERS, StudyOptions, prepare_study, row_cells
from accelsim.cli.common import emit, text_table


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


def _options(args: argparse.Namespace) -> StudyOptions:
    return StudyOptions(
        scale=args.scale, out_dir=Path(args.out) if args.out else None, modes=args.modes,
        thresholds=args.thresholds, tops=args.tops, faults=args.faults,
        test_images=args.test_images, test_split=args.test_split, nvf_split=args.nvf_split,
        nvf_images=args.nvf_images, nvf=args.nvf, nvf_budget_seconds=args.nvf_budget,
        workers=1 if args.workers is None else args.workers,
        seed=args.seed,
        resume=args.resume, data_dir=args.data_dir,
    )  # fmt: skip


def run_command(args: argparse.Namespace) -> int:
    """The whole sweep: prepare (NVF, images, thresholds), run the campaigns, report."""
    options = _options(args)
    with tqdm(total=None, unit="img", desc="NVF", disable=None, leave=False) as bar:
        study = prepare_study(args.arch, args.workload, options, on_nvf_progress=bar.update)
    if not args.json:
        print(study.header + (f"\nnote: {study.note}" if study.note else ""), flush=True)
    with tqdm(total=study.n_faults, unit="fault", desc="sweep", disable=None,
              smoothing=0.05) as bar:  # fmt: skip
        try:
            result = study.run(
                on_stage=lambda s: bar.set_description(f"sweep {s}"), on_progress=bar.update
            )
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: {len(study.done)} of {len(study.jobs)} campaigns are complete "
                f"in {study.out_dir} (results.csv holds them; the running campaign's faults are "
                "saved); rerun with --resume to finish"
            )
            return 130
    doc = result.document()
    lines = [
        "", *text_table(list(ROW_HEADERS), [row_cells(r) for r in result.rows]), "",
        result.precision, "", "Table I: critical neurons per NVF threshold (ours | paper)",
        *text_table(list(TABLE_I_HEADERS), [list(r) for r in result.table_i]),
        "", f"done in {result.seconds:.0f} s; wrote {study.out_dir}/: results.csv, "
        "results.json, figures/ (fig4, overhead, nvf: PNG + SVG), report.html, campaigns/", "",
        result.advice,
    ]  # fmt: skip
    emit(args, doc, lines)
    return 0
