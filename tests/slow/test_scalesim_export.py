"""``export --scalesim DIR`` run in SCALE-Sim v3 itself: its per-layer compute cycles equal
accelsim's.

SCALE-Sim 3.0.0 needs numpy < 2.3, so it runs in its own virtualenv: ``SCALESIM_PYTHON`` names
its interpreter; without it the test builds one in the user cache
(``~/.cache/accelsim/scalesim-venv``: ``numpy<2.3 scalesim==3.0.0`` from the package index).
SCALE-Sim's "Total Cycles" is the index of the last cycle, so it is compared plus one.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelsim import graph_compute_cycles, import_tflite, load_arch, load_graph
from accelsim.cli.main import main
from accelsim.functional.graphio import save_graph
from tests.conftest import DATA

pytestmark = pytest.mark.slow


def _scalesim_python() -> str:
    env = os.environ.get("SCALESIM_PYTHON")
    if env:
        return env
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = cache / "accelsim" / "scalesim-venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy<2.3",
                        "scalesim==3.0.0"], check=True)  # fmt: skip
    return str(python)


def _scalesim_cycles(folder: Path, name: str) -> dict[str, int]:
    """Per-node compute cycles from SCALE-Sim's report (a DP row's channels summed)."""
    subprocess.run(
        [_scalesim_python(), "-m", "scalesim.scale", "-c", f"{name}.cfg", "-t", f"{name}.csv",
         "-l", "layout.csv", "-p", "out"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    report = next((folder / "out").rglob("COMPUTE_REPORT.csv"))
    rows = list(csv.reader(report.open()))
    col = [h.strip() for h in rows[0]].index("Total Cycles")
    topo = [r for r in csv.reader((folder / f"{name}.csv").open())][1:]
    layers = []
    for r in topo:
        node, n = r[0].strip(), 1
        if node.endswith("_DP"):
            node, n = node[: -len("_DP")], int(r[5])  # one SCALE-Sim layer per channel
        layers += [node] * n
    cycles: dict[str, int] = {}
    for node, row in zip(layers, rows[1:], strict=True):
        cycles[node] = cycles.get(node, 0) + int(float(row[col])) + 1
    return cycles


@pytest.mark.parametrize(
    ("model", "arch"),
    [("lenet5", "pe8x8"), ("resdw_keras", "pe16x16"), ("resnet20", "pe32x32")],
)
def test_scalesim_on_the_export_counts_accelsims_compute_cycles(tmp_path, model, arch) -> None:
    if model == "resdw_keras":  # an imported model: depthwise (multipliers 1 and 2), ADD, MEAN
        g = import_tflite(DATA / "models" / "resdw_keras.tflite", dataset="cifar10").graph
        source = str(save_graph(g, tmp_path / "resdw_keras.yaml"))
    else:
        g, source = load_graph(model), model
    out = tmp_path / "ss"
    assert main(["export", source, "--scalesim", str(out), "--arch", arch]) == 0
    ours = graph_compute_cycles(g, load_arch(arch).pe_array)
    assert _scalesim_cycles(out, g.name) == ours
