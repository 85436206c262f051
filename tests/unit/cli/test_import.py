"""``python -m accelsim import``: a converter's ``.tflite`` plus the user's own ``.npz`` data, then
the study's commands on the workload the import wrote (offline: the data is the bundled MNIST
sample saved as arrays)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accelsim import load_dataset, load_graph, load_workload
from accelsim.cli.main import main
from accelsim.functional.graph import graph_forward, quantize_graph_images
from tests.conftest import DATA
from tests.unit.interop.test_onnx_import import _needs
from tests.unit.interop.test_tflite_micro import tflm_logits

LENET = DATA / "models" / "lenet5_keras.tflite"


@pytest.fixture
def own_data(tmp_path: Path) -> Path:
    """The first 600 bundled MNIST test images as the user's ``.npz`` (N x H x W, labels)."""
    d = load_dataset("mnist", "sample", n_images=600)
    path = tmp_path / "data" / "digits.npz"
    path.parent.mkdir()
    np.savez(path, images=d.images[:, 0], labels=d.labels)
    return path


def test_import_writes_model_and_workload_and_measures_accuracy(tmp_path, own_data, capsys):
    out = tmp_path / "models"
    argv = ["import", str(LENET), "--out", str(out), "--dataset", str(own_data), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ops"] == {"CONV_2D": 2, "MAX_POOL_2D": 2, "RESHAPE": 1, "FULLY_CONNECTED": 3}
    # neurons: the conv and fc outputs but the classifier's (pools are not neurons)
    assert doc["neurons"] == 6 * 24 * 24 + 16 * 8 * 8 + 120 + 84
    assert doc["input"]["zero_point"] == -128
    assert doc["eval_images"] == 600
    g = load_graph(out / "lenet5_keras.yaml")
    assert Path(g.dataset) == own_data.resolve()
    x = quantize_graph_images(g, load_dataset(str(own_data), "test").images)
    preds = graph_forward(g, x).argmax(1)
    labels = load_dataset(str(own_data), "test").labels
    assert doc["int8_accuracy"] == pytest.approx(np.mean(preds == labels))
    np.testing.assert_array_equal(tflm_logits(LENET.read_bytes(), x[:50]), graph_forward(g, x[:50]))
    spec = load_workload(out / "lenet5_keras-workload.yaml")
    assert spec.network == str((out / "lenet5_keras.yaml").resolve())


def test_the_study_runs_on_an_imported_model_and_own_data(tmp_path, own_data, capsys) -> None:
    out = tmp_path / "models"
    assert main(["import", str(LENET), "--out", str(out), "--dataset", str(own_data)]) == 0
    text = capsys.readouterr().out
    assert "int8 accuracy" in text
    assert "next: python -m accelsim run" in text
    workload = str(out / "lenet5_keras-workload.yaml")
    res = tmp_path / "res"
    small = ["--faults", "40", "--test-images", "60", "--nvf-images", "40", "--tops", "5",
             "--thresholds", "", "--modes", "split,tmr"]  # fmt: skip
    assert main(["run", "pe8x8", workload, "--out", str(res), *small, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["mode"] for r in doc["rows"]} == {"none", "split", "tmr"}
    assert (res / "report.html").is_file()
    args = ["--output-dir", str(tmp_path / "o"), "--images", "30"]
    assert main(["analyze", workload, *args, "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert sum(d["neurons"] for d in layers) == load_graph(out / "lenet5_keras.yaml").n_neurons
    exact = ["--output-dir", str(tmp_path / "e"), "--images", "2", "--method", "exact", "--json"]
    assert main(["analyze", workload, *exact]) == 0  # the exact search on a graph, from the CLI
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "exact"
    assert sum(d["neurons"] for d in doc["layers"]) == sum(d["neurons"] for d in layers)
    assert main(["inject", workload, "--faults", "20", "--test-images", "40", *args]) == 0
    assert main(["simulate", "pe8x8", workload, "--protection", "split", *args]) == 0
    capsys.readouterr()
    assert main(["eval", workload, "--images", "100", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["images"] == 100
    assert ev["split"] == "test"


def test_import_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["import", str(tmp_path / "none.tflite")]) == 2
    assert "none.tflite: cannot read" in capsys.readouterr().err
    assert main(["import", str(DATA / "models" / "models.json")]) == 2
    assert "supported model formats are .tflite" in capsys.readouterr().err
    bad = ["import", str(LENET), "--out", str(tmp_path), "--dataset", str(tmp_path / "x.npz")]
    assert main(bad) == 2
    assert "is neither mnist, cifar10" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        main(["import", str(LENET), "--mean", "a,b"])
    assert "expected comma-separated numbers" in capsys.readouterr().err


def test_import_of_a_float_onnx_model_quantises_it_on_own_data(tmp_path, own_data, capsys):
    _needs("onnx")
    out = tmp_path / "m"
    argv = ["import", str(DATA / "models" / "lenet5_bn_torch.onnx"), "--out", str(out),
            "--dataset", str(own_data), "--mean", "0.1307", "--std", "0.3081",
            "--calibration-images", "200", "--json"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ops"] == {"CONV_2D": 2, "MAX_POOL_2D": 2, "RESHAPE": 1, "FULLY_CONNECTED": 3}
    assert doc["float_accuracy"] > 0.8  # the float model on the first 600 sample images
    assert abs(doc["int8_accuracy"] - doc["float_accuracy"]) <= 0.03
    g = load_graph(out / "lenet5_bn_torch.yaml")
    assert g.mean == (0.1307,)
    assert any("calibration: the first 200 train images" in e for e in doc["edges"])


def test_own_data_that_does_not_fit_the_model_is_named(tmp_path, capsys) -> None:
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, images=np.zeros((4, 32, 32, 3), np.uint8), labels=[0, 1, 2, 3])
    out = tmp_path / "m"
    assert main(["import", str(LENET), "--out", str(out), "--dataset", str(rgb)]) == 2
    err = capsys.readouterr().err
    assert f"{rgb}: images are 3 x 32 x 32 (C x H x W), the model takes 1 x 28 x 28" in err
    assert not out.exists()  # nothing written for a model that cannot run on its data


def test_a_workload_names_its_own_dataset_over_the_models(tmp_path, own_data, capsys) -> None:
    """``dataset.source`` (relative to the workload file) replaces the model's dataset; a
    source or a model ``dataset:`` that does not exist is named with its key."""
    out = tmp_path / "m"
    assert main(["import", str(LENET), "--out", str(out), "--eval-images", "0"]) == 0
    assert load_graph(out / "lenet5_keras.yaml").dataset == "mnist"  # from the input shape
    small = own_data.parent / "small.npz"
    d = np.load(own_data)
    np.savez(small, images=d["images"][:70], labels=d["labels"][:70])
    text = (out / "lenet5_keras-workload.yaml").read_text()
    workload = out / "own.yaml"
    workload.write_text(text.replace("  dataset:\n", "  dataset:\n    source: ../data/small.npz\n"))
    capsys.readouterr()
    assert main(["eval", str(workload), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 70
    bad = out / "bad.yaml"
    bad.write_text(text.replace("  dataset:\n", "  dataset:\n    source: none.npz\n"))
    assert main(["eval", str(bad)]) == 2
    assert "workload.dataset.source" in capsys.readouterr().err
    model = (out / "lenet5_keras.yaml").read_text()
    (out / "lenet5_keras.yaml").write_text(model.replace("dataset: mnist", "dataset: none.npz"))
    assert main(["eval", str(out / "lenet5_keras-workload.yaml")]) == 2
    err = capsys.readouterr().err
    assert "network.dataset" in err
    assert "none.npz does not exist" in err
