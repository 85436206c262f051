"""A workload's NVF with what a reader wants of it: per-layer statistics, Table I (and a finer
grid when the paper's selects almost nothing), the per-neuron CSV and the figure; the library
behind ``analyze``::

    result = analyze_workload("lenet5", n_images=200)
    print(result.table[0].critical, result.files)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import files
from accelsim.analysis.store import write_csv
from accelsim.config.workload import WorkloadSpec
from accelsim.functional.models import model_hash
from accelsim.report.plots import nvf_figure, save_figure
from accelsim.report.tables import (
    PAPER_THRESHOLDS,
    TableRow,
    critical_table,
    fine_thresholds,
    needs_fine_grid,
)
from accelsim.study.nvf import WorkloadNvf, workload_nvf
from accelsim.study.options import as_workload


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """The NVF run, Table I at the paper's thresholds (``fine``: at finer ones, when the
    paper's select almost nothing), the median neuron's 95 % half-width (fraction; normal
    approximation, and the distribution-free empirical Bernstein bound) and the files: the
    cached npz, the per-neuron CSV and the figure (PNG, SVG)."""

    nvf: WorkloadNvf
    table: tuple[TableRow, ...]
    fine: tuple[TableRow, ...]
    median_half_width: float
    median_bound_half_width: float
    files: tuple[Path, ...]

    def document(self) -> dict[str, Any]:
        """The result as one JSON-ready document (what ``analyze --json`` prints)."""
        run, result, net = self.nvf, self.nvf.result, self.nvf.net
        return {
            "network": net.name, "hash": model_hash(net), "method": result.method.value,
            "mapping": result.mapping.value if result.mapping else None,
            "gradient_check": result.has_gradient_check, "images": result.n_inputs,
            "split": run.data.split, "key": run.stem.name.rsplit("-", 1)[-1],
            "cached": run.cached, "seconds": run.seconds,
            "median_half_width_percent": 100 * self.median_half_width,
            "median_bound_half_width_percent": 100 * self.median_bound_half_width,
            "layers": [
                {"name": lay.name, "neurons": int(lay.nvf.size),
                 "mean_nvf_percent": 100 * float(lay.nvf.mean()),
                 "max_nvf_percent": 100 * float(lay.nvf.max())}
                for lay in result.layers
            ],
            "table": [vars(r) for r in self.table],
            "fine_table": [vars(r) for r in self.fine],
            "files": [str(p) for p in self.files],
        }  # fmt: skip


def analyze_workload(
    workload: WorkloadSpec | Path | str = "lenet5", **nvf_options: Any
) -> AnalysisResult:
    """``workload_nvf`` (keyword arguments are its own: ``method``, ``mapping``,
    ``gradient_check``, ``n_images``, ``split``, ``data_dir``, ``output_dir``, ``force``,
    ``on_progress``; left out, the workload's ``analysis`` settings), then the tables, the CSV
    and the figure beside the cached result."""
    run = workload_nvf(as_workload(workload), **nvf_options)
    result, net, stem = run.result, run.net, run.stem
    write_csv(result, net, files.beside(stem, ".csv"))
    figures = save_figure(nvf_figure(result, net.name), stem)
    nvf = result.nvf
    table = tuple(critical_table(nvf, PAPER_THRESHOLDS, net.name))
    fine = tuple(critical_table(nvf, fine_thresholds(nvf))) if needs_fine_grid(nvf) else ()
    half = float(np.median(np.concatenate([lay.half_width for lay in result.layers])))
    bound = float(np.median(np.concatenate([result.bound_half_width(lay)
                                            for lay in result.layers])))  # fmt: skip
    paths = (files.beside(stem, ".npz"), files.beside(stem, ".csv"), *figures)
    return AnalysisResult(run, table, fine, half, bound, paths)
