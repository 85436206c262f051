"""Figures from results: functions take results and return a matplotlib Figure.

Figures are built without pyplot (``Figure()`` renders PNG and SVG on its own), so importing
accelsim leaves matplotlib's backend, and any notebook's figures, alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from accelsim import files
from accelsim.analysis.vulnerability import NvfResult


def nvf_figure(result: NvfResult, title: str) -> Figure:
    """Left: NVF distribution per layer; right: portion of critical neurons vs threshold."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    data = [np.maximum(lay.nvf * 100, 1e-4) for lay in result.layers]
    left.boxplot(
        data,
        tick_labels=[lay.name for lay in result.layers],
        showfliers=True,
        flierprops={"markersize": 2, "alpha": 0.4},
    )
    left.set_yscale("log")
    left.set_ylabel("NVF (%) per neuron, log scale (0 drawn at 1e-4)")
    left.set_title("NVF distribution per layer")
    nvf = result.nvf * 100
    grid = np.linspace(0, max(float(nvf.max()), 1e-3), 200)
    portion = [100 * np.mean(nvf >= t) for t in grid]
    right.plot(grid, portion, color="C3")
    right.set_yscale("log")
    right.set_xlabel("NVF threshold (%)")
    right.set_ylabel("critical neurons (% of all, log scale)")
    right.set_title("critical portion vs threshold")
    right.grid(alpha=0.3)
    mapping = result.mapping.value if result.mapping else "-"
    fig.suptitle(
        f"{title}: {result.method.value}, mapping {mapping}, "
        f"gradient check {'on' if result.has_gradient_check else 'off'}, "
        f"{result.n_inputs} inputs"
    )
    return fig


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.svg; returns the paths."""
    paths = [files.beside(stem, ".png"), files.beside(stem, ".svg")]
    for path in paths:
        with files.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=130, format=path.suffix[1:])
    return paths
