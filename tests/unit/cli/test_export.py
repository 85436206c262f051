"""``python -m accelsim export``: .tflite and SCALE-Sim topology files from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accelsim import (
    forward,
    graph_topology_csv,
    load_dataset,
    load_graph,
    load_network,
    quantize_images,
)
from accelsim.cli.main import main
from tests.unit.interop.test_tflite_micro import tflm_logits


def test_export_writes_a_tflite_that_tflite_micro_runs_identically(tmp_path: Path, capsys) -> None:
    out = tmp_path / "lenet5.tflite"
    topo = tmp_path / "lenet5.csv"
    assert main(["export", "lenet5", "--tflite", str(out), "--scalesim", str(topo)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    net = load_network("lenet5")
    x = quantize_images(net, load_dataset("mnist", "sample").images[:100])
    np.testing.assert_array_equal(tflm_logits(out.read_bytes(), x), forward(net, x))
    assert topo.read_text() == graph_topology_csv(load_graph("lenet5"))


def test_export_needs_a_target(capsys) -> None:
    assert main(["export", "lenet5"]) == 2
    assert "export needs --tflite or --scalesim" in capsys.readouterr().err


def test_export_names_a_missing_model(tmp_path: Path, capsys) -> None:
    assert main(["export", str(tmp_path / "none.yaml"), "--tflite", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "no such model file" in err
    assert err.count("\n") == 1
