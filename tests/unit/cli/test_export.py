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


def test_export_scalesim_folder_writes_topology_config_and_layout(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ss"
    assert main(["export", "mobilenetv2", "--scalesim", str(out), "--arch", "pe8x8"]) == 0
    assert "python -m scalesim.scale -c mobilenetv2.cfg" in capsys.readouterr().out
    cfg = (out / "mobilenetv2.cfg").read_text()
    # pe8x8.yaml: 8 x 8 output stationary, 16 / 16 / 8 KiB buffers, 8 bytes per cycle off chip
    for line in ("ArrayHeight : 8", "ArrayWidth : 8", "Dataflow : os", "IfmapSramSzkB : 16",
                 "FilterSramSzkB : 16", "OfmapSramSzkB : 8", "Bandwidth : 8",
                 "InterfaceBandwidth : CALC"):  # fmt: skip
        assert line in cfg
    topo = (out / "mobilenetv2.csv").read_text()
    assert topo == graph_topology_csv(load_graph("mobilenetv2"))
    assert "_DP," in topo
    assert (out / "layout.csv").read_text().startswith("Layer name,")
