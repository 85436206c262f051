"""The command line: help, JSON documents, and user errors as exit 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accelsim.cli.main import main
from accelsim.datasets import load_dataset
from accelsim.datasets.fetch import FETCHERS
from accelsim.functional.modelio import load_network
from accelsim.functional.network import predict
from tests.conftest import REPO


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accelsim", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    for command in ("models", "eval", "data"):
        assert command in proc.stdout


def test_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models", "--json")
    assert code == 0
    docs = {d["name"]: d for d in json.loads(out)}
    assert {"lenet5", "mlp7", "alexnet"} <= set(docs)
    assert {docs[n]["kind"] for n in ("lenet5", "mlp7", "alexnet")} == {"chain"}
    if "mobilenetv2" in docs:  # a graph: neurons of the stem, 8 blocks (expand, dw, project), head
        mb = docs.pop("mobilenetv2")
        assert mb["kind"] == "graph"
        blocks = [
            24 * 32 * 32 + 16 * 32 * 32,  # s1b1: dw, project (no expansion)
            64 * 32 * 32 + 64 * 16 * 16 + 24 * 16 * 16,  # s2b1: stride 2
            2 * 96 * 16 * 16 + 24 * 16 * 16,
            96 * 16 * 16 + 96 * 8 * 8 + 32 * 8 * 8,  # s3b1: stride 2
            2 * (2 * 128 * 8 * 8 + 32 * 8 * 8),
            128 * 8 * 8 + 128 * 4 * 4 + 64 * 4 * 4,  # s4b1: stride 2
            2 * 256 * 4 * 4 + 64 * 4 * 4,
        ]
        assert mb["neurons"] == 24 * 32 * 32 + sum(blocks) + 192 * 4 * 4
    if "resnet20" in docs:  # stem, 3 stages x 3 blocks of two convolutions, 2 projections
        rn = docs.pop("resnet20")
        assert rn["kind"] == "graph"
        stages = 6 * 16 * 32 * 32 + 7 * 32 * 16 * 16 + 7 * 64 * 8 * 8
        assert rn["neurons"] == 16 * 32 * 32 + stages
    docs = {n: d for n, d in docs.items() if d["kind"] == "chain"}
    assert [docs[n]["neurons"] for n in ("mlp7", "lenet5", "alexnet")] == [2816, 4684, 103168]
    for doc in docs.values():
        assert {"parameters", "macs", "float_accuracy", "int8_accuracy"} <= set(doc)
        assert 0.5 < doc["int8_accuracy"] <= 1.0
    assert (
        docs["lenet5"]["macs"]
        == 6 * 24 * 24 * 25 + 16 * 8 * 8 * 150 + 256 * 120 + 120 * 84 + 84 * 10
    )


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models")
    assert code == 0
    assert "4,684" in out
    assert "103,168" in out


def test_eval_on_bundled_sample_matches_predict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "eval", str(REPO / "workloads" / "lenet5.yaml"), "--images", "300", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    ds = load_dataset("mnist", "sample", n_images=300)
    want = int(np.sum(predict(load_network("lenet5"), ds.images) == ds.labels))
    assert doc["images"] == 300
    assert doc["correct"] == want
    assert doc["split"] == "sample"
    assert doc["int8_accuracy"] > 0.95


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["eval", "workloads/none.yaml"],
            "workloads/none.yaml: <file>: expected a readable YAML file",
        ),
        (
            ["eval", "lenet5", "--split", "sample", "--images", "0"],
            "--images: expected an int >= 1, got 0",
        ),
        (
            ["eval", "alexnet", "--split", "train", "--data-dir", "/nonexistent"],
            "cifar10 not found",
        ),
        (
            ["eval", str(REPO / "tests/data/broken/workload_split.yaml")],
            "workload.dataset.split: expected one of",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("accelsim: error: ")
    assert message in err


def test_error_through_python_m_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accelsim", "eval", str(tmp_path / "x.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("accelsim: error:")


def test_data_info_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "data", "info", "--data-dir", str(tmp_path), "--json")
    assert code == 0
    doc = json.loads(out)
    found = {(s["dataset"], s["split"]): s["images"] for s in doc["splits"]}
    assert found[("mnist", "sample")] == 2000
    assert found[("mnist", "test")] == 0
    assert found[("cifar10", "train")] == 0


def test_data_fetch_uses_the_resolved_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    monkeypatch.setitem(FETCHERS, "mnist", lambda dest: seen.append(dest) or [dest / "f"])
    monkeypatch.setenv("ACCELSIM_DATA", str(tmp_path))
    code, out, _ = _run(capsys, "data", "fetch", "mnist", "--json")
    assert code == 0
    assert seen == [tmp_path]
    assert json.loads(out)["files"] == [str(tmp_path / "f")]
