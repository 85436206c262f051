"""`protect`: one plan per mode, the overhead table, fault-free accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsim.cli.main import main
from accelsim.functional.modelio import load_network
from accelsim.protection.plan import load_plan
from tests.conftest import REPO


def test_protect_writes_plans_and_overheads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [
        "protect",
        str(REPO / "workloads" / "lenet5.yaml"),
        "--threshold",
        "0.5",
        "--images",
        "20",
        "--split",
        "sample",
        "--eval-images",
        "200",
        "--output-dir",
        str(tmp_path),
        "--json",
    ]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    modes = {r["mode"]: r for r in doc["modes"]}
    assert set(modes) == {
        "split",
        "tmr",
        "dmr_and",
        "dmr_recompute",
        "ranger",
        "zero",
        "split_clamped",
    }
    n = modes["split"]["protected"]
    assert n > 0
    assert all(r["protected"] == n for r in modes.values())
    assert modes["split"]["neurons"] == 4684 + n
    assert modes["tmr"]["neurons"] == 4684 + 2 * n
    assert modes["ranger"]["neurons"] == 4684
    # ranger/zero may change images whose activations leave the range profiled on the
    # analysis images; the redundancy modes must not change any
    for mode in ("tmr", "dmr_and", "dmr_recompute"):
        assert modes[mode]["changed_images"] == 0
        assert modes[mode]["accuracy"] == doc["unprotected_accuracy"]
    plan = load_plan(Path(modes["tmr"]["plan"]), load_network("lenet5"))
    assert plan.n_protected == n
    assert plan.threshold_percent == 0.5
