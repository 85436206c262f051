"""Importing accelsim and drawing its figures leaves matplotlib's backend alone and never loads
pyplot; per-layer caches are bounded."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROGRAM = """
import sys
import matplotlib
import accelsim, accelsim.cli.main, accelsim.report.plots, accelsim.report.sweep_plots
from pathlib import Path
from accelsim.analysis.vulnerability import compute_nvf
from accelsim.report.plots import nvf_figure, save_figure
net = accelsim.load_network("lenet5")
x = accelsim.quantize_images(net, accelsim.load_dataset("mnist", "sample", n_images=3).images)
paths = save_figure(nvf_figure(compute_nvf(net, x), "lenet5"), Path(sys.argv[1]) / "nvf")
assert all(p.stat().st_size > 1000 for p in paths)
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_figures_need_no_backend_and_no_pyplot(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "svg"}  # a notebook's choice
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out == ["svg", "False"]


def test_per_layer_tables_are_bounded(tiny_net) -> None:
    import dataclasses

    from accelsim.faults import sparse

    dense = tiny_net.layers[-1]
    for i in range(3 * sparse.LAYER_CACHE):
        sparse._kernel_weights(dataclasses.replace(dense, name=f"d{i}"))
    assert sparse._kernel_weights.cache_info().currsize <= sparse.LAYER_CACHE


def test_import_accelsim_does_not_load_matplotlib_until_the_study_is_used() -> None:
    program = (
        "import sys, accelsim; before = 'matplotlib' in sys.modules; "
        "from accelsim import run_study; print(before, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout  # fmt: skip
    assert out.split() == ["False", "True"]
