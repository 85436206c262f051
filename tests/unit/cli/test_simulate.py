"""``simulate``: every shipped architecture with every shipped workload, JSON, CSV, trace,
protected runs with overheads, PE-fault campaigns, and clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.cli.main import main
from accelsim.config.arch import load_arch
from accelsim.functional.layers import Conv2D, Dense
from accelsim.functional.modelio import load_network
from tests.conftest import REPO

ARCHS = sorted((REPO / "arch").glob("*.yaml"))
WORKLOADS = {"lenet5": "lenet5", "mlp7": "mlp7", "alexnet": "alexnet"}


def _run(capsys, *argv: str) -> dict:
    assert main(["simulate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _scalesim_cycles(layer, pe) -> int:
    """folds x cycles per fold: os (M, N | K) K + R + C - 2; ws (K, N | M) and is (K, M | N)
    2R + C + T - 2 (DESIGN section 6, peers/SCALESIM.md)."""
    m = int(np.prod(layer.out_shape[1:])) if isinstance(layer, Conv2D) else 1
    n, k = layer.out_channels, int(np.prod(layer.weight.shape[1:]))
    r, c = pe.rows, pe.cols
    rows, cols, t = {
        "output_stationary": (m, n, k), "weight_stationary": (k, n, m),
        "input_stationary": (k, m, n),
    }[pe.dataflow.value]  # fmt: skip
    per_fold = t + r + c - 2 if pe.dataflow.value == "output_stationary" else 2 * r + c + t - 2
    return -(-rows // r) * -(-cols // c) * per_fold


@pytest.mark.parametrize("arch", ARCHS, ids=lambda p: p.stem)
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_arch_runs_every_workload(capsys, tmp_path: Path, arch: Path, workload: str):
    """With ideal memory the cycles of every layer are SCALE-Sim's closed form, written out here
    from the layer shapes (not from the schedule under test)."""
    doc = _run(
        capsys, str(arch), str(REPO / "workloads" / f"{workload}.yaml"),
        "--protection", "none", "--ideal-memory", "--output-dir", str(tmp_path),
    )  # fmt: skip
    (mode,) = doc["modes"]
    spec = load_arch(arch)
    net = load_network(WORKLOADS[workload])
    want = {
        layer.name: _scalesim_cycles(layer, spec.pe_array)
        for layer in net.layers
        if isinstance(layer, Conv2D | Dense)
    }
    got = {t["name"]: t["compute_cycles"] for t in mode["layers"] if t["tiles"]}
    assert got == want
    assert all(t["stall_cycles"] == 0 for t in mode["layers"])
    assert mode["total_cycles"] == sum(t["total_cycles"] for t in mode["layers"])


def test_csv_and_trace(capsys, tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    doc = _run(
        capsys, str(ARCHS[0]), str(REPO / "workloads" / "lenet5.yaml"), "--protection", "none",
        "--output-dir", str(tmp_path), "--trace", str(trace),
    )  # fmt: skip
    table_path = Path(doc["files"][0])
    with table_path.open() as fh:
        rows = list(csv.DictReader(fh))
    layers = doc["modes"][0]["layers"]
    assert [r["name"] for r in rows] == [t["name"] for t in layers] + ["total"]
    assert int(rows[-1]["total_cycles"]) == doc["modes"][0]["total_cycles"]
    with trace.open() as fh:
        events = list(csv.DictReader(fh))
    folds = [e for e in events if e["event"] == "fold"]
    assert len(folds) == sum(t["tiles"] for t in layers)
    assert [int(e["cycle"]) for e in events] == sorted(int(e["cycle"]) for e in events)


def test_protected_runs_report_overheads_and_pe_faults(capsys, tmp_path: Path) -> None:
    doc = _run(
        capsys, str(REPO / "arch" / "pe16x16.yaml"), str(REPO / "workloads" / "lenet5.yaml"),
        "--top", "5", "--split", "sample", "--images", "64", "--pe-faults", "12",
        "--test-images", "20", "--output-dir", str(tmp_path),
    )  # fmt: skip
    modes = {m["mode"]: m for m in doc["modes"]}
    assert list(modes) == ["none", "split", "tmr"]
    assert modes["split"]["protected"] == modes["tmr"]["protected"] > 0
    none, split, tmr = (modes[m]["total_cycles"] for m in ("none", "split", "tmr"))
    assert none < split < tmr
    assert modes["split"]["overhead_percent"]["cycles_percent"] == pytest.approx(
        100 * (split / none - 1)
    )
    assert modes["none"]["overhead_percent"]["cycles_percent"] == 0
    pe = {d["mode"]: d for d in doc["pe_faults"]}
    assert set(pe) == {"none", "split", "tmr"}
    assert pe["tmr"]["exposure_factor"] == pytest.approx(tmr / none)
    for d in pe.values():
        assert d["pe_faults"] == 12
        for view in ("pe_view", "neuron_view"):
            est = d[view]["critical_rate"]
            assert est["lo"] <= est["value"] <= est["hi"]


def test_errors_name_the_option(capsys, tmp_path: Path) -> None:
    arch, work = str(ARCHS[0]), str(REPO / "workloads" / "lenet5.yaml")
    with pytest.raises(SystemExit):
        main(["simulate", arch, work, "--protection", "split,bogus"])
    assert "expected modes from {none, split, tmr" in capsys.readouterr().err
    assert main(["simulate", arch, work, "--protection", "none", "--pe-faults", "0"]) == 2
    assert "--pe-faults: expected an int >= 1, got 0" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\narch:\n  pe_array: {rows: 0, cols: 4, dataflow: output_stationary}\n"
    )
    assert main(["simulate", str(bad), work, "--protection", "none"]) == 2
    assert "bad.yaml: arch" in capsys.readouterr().err
