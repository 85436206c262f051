"""Saved NVF results round-trip, are refused for other settings, and `analyze` reuses them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.analysis.store import analysis_key, load_nvf, save_nvf
from accelsim.analysis.vulnerability import Mapping, Method, compute_nvf
from accelsim.cli.main import main
from accelsim.errors import ModelFormatError
from accelsim.functional.network import quantize_images
from accelsim.report.tables import critical_table, fine_thresholds, needs_fine_grid
from tests.conftest import REPO


def test_round_trip_and_key_check(tiny_net, tiny_images, tmp_path: Path) -> None:
    x = quantize_images(tiny_net, tiny_images[:5])
    result = compute_nvf(tiny_net, x)
    key = analysis_key(tiny_net, x, Method.LINEAR, Mapping.LOG2, True)
    assert key != analysis_key(tiny_net, x, Method.LINEAR, Mapping.VALUE, True)
    assert key != analysis_key(tiny_net, x[:4], Method.LINEAR, Mapping.LOG2, True)
    save_nvf(result, tmp_path / "r.npz", key)
    back = load_nvf(tmp_path / "r.npz", key)
    assert back.method is Method.LINEAR
    assert back.n_inputs == 5
    np.testing.assert_array_equal(back.nvf, result.nvf)
    for a, b in zip(back.layers, result.layers, strict=True):
        np.testing.assert_array_equal(a.bit_map, b.bit_map)
        np.testing.assert_array_equal(a.half_width, b.half_width)
    with pytest.raises(ModelFormatError, match="computed for another network, images or settings"):
        load_nvf(tmp_path / "r.npz", "other")


def test_critical_table_counts_and_paper_column() -> None:
    nvf = np.array([0.0, 0.04, 0.05, 0.2, 0.21])
    rows = critical_table(nvf, (0.0, 5.0, 20.0, 25.0), "lenet5")
    assert [r.critical for r in rows] == [5, 3, 2, 0]
    assert [r.paper_critical for r in rows] == [4684, 4380, 187, 70]
    assert rows[2].portion_percent == 40.0
    assert critical_table(nvf, (1.5,), "lenet5")[0].paper_critical is None
    assert not needs_fine_grid(nvf)
    small = np.array([0.0, 0.001, 0.0123])
    assert needs_fine_grid(small)
    grid = fine_thresholds(small)
    assert grid[0] == 0.0
    assert grid[-1] <= 1.23
    assert critical_table(small, (grid[-1],))[0].critical == 1


def test_analyze_cli_writes_files_and_reuses_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [
        "analyze",
        str(REPO / "workloads" / "lenet5.yaml"),
        "--split",
        "sample",
        "--images",
        "12",
        "--output-dir",
        str(tmp_path),
        "--json",
    ]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["cached"] is False
    assert first["images"] == 12
    assert [r["threshold_percent"] for r in first["table"]] == [float(t) for t in range(0, 55, 5)]
    assert first["table"][0]["critical"] == 4684
    assert first["table"][4]["paper_critical"] == 187
    assert sum(d["neurons"] for d in first["layers"]) == 4684
    for path in first["files"]:
        assert Path(path).is_file()
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cached"] is True
    assert second["table"] == first["table"]
    assert main([*argv, "--mapping", "value"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is False


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01 not a zip " * 50)


def _other_key(path: Path) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["key"] = np.array("0123456789abcdef0123")
    np.savez_compressed(path, **arrays)


def _wrong_shape(path: Path) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    name = str(arrays["names"][0])
    arrays[f"{name}.nvf"] = arrays[f"{name}.nvf"][:-1]
    np.savez_compressed(path, **arrays)


def _missing_array(path: Path) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.endswith(".bit_map")}
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("spoil", [_truncate, _garbage, _other_key, _wrong_shape, _missing_array])
def test_a_cache_that_fails_to_load_is_recomputed_with_a_note(capsys, tmp_path, spoil) -> None:
    """A cached NVF that is truncated, not an npz, keyed for something else or malformed is
    never trusted and never a traceback: analyze says so on one line and computes it again."""
    argv = ["analyze", str(REPO / "workloads" / "lenet5.yaml"), "--split", "sample",
            "--images", "6", "--output-dir", str(tmp_path), "--json"]  # fmt: skip
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    npz = Path(first["files"][0])
    spoil(npz)
    assert main(argv) == 0
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    assert again["cached"] is False
    assert again["table"] == first["table"]
    notes = [line for line in captured.err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1
    assert str(npz) in notes[0]
    assert "computing the NVF again" in notes[0]
    assert main(argv) == 0  # the recomputed cache is whole again
    assert json.loads(capsys.readouterr().out)["cached"] is True
