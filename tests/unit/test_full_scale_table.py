"""experiments/paper/alexnet_full_scale.py: the paper-scale comparison table from kept campaign
summaries, on hand-made summaries with hand-computed ratios."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = (
    "group_kind,group,faults,population,accuracy_loss_pp_value,accuracy_loss_pp_lo,"
    "accuracy_loss_pp_hi,critical_rate_value,critical_rate_lo,critical_rate_hi,"
    "faults_with_effect_value,faults_with_effect_lo,faults_with_effect_hi\n"
)


def _script():
    spec = importlib.util.spec_from_file_location(
        "alexnet_full_scale", ROOT / "experiments" / "paper" / "alexnet_full_scale.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_by_hand(tmp_path: Path) -> None:
    (tmp_path / "campaign-alexnet-none.summary.csv").write_text(
        HEADER + "all,all,9494,825344,0.04,0.03,0.05,0.005,0.004,0.006,1,1,1\n"
        "layer,conv1,3017,262144,0.1,0.1,0.1,0.1,0.1,0.1,1,1,1\n"
    )
    # 625 neurons under TMR: (103,168 + 2 x 625) x 8 bits
    (tmp_path / "campaign-alexnet-tmr-T0.86875.summary.csv").write_text(
        HEADER + "all,all,9495,835344,0.02,0.01,0.03,0.0025,0.002,0.003,1,1,1\n"
    )
    script = _script()
    found = script.find([tmp_path])
    assert sorted(found) == ["none", "tmr"]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in script.table(found)}
    assert "| 0 | not run | 625 |" in rows["protected neurons"]
    assert "0.2500 [0.2000, 0.3000]" in rows["critical-fault rate (%)"]
    # 0.5 / 0.25 = 2; near ends 0.4 / 0.3, far ends 0.6 / 0.2
    assert rows["critical faults, unprotected / this"].endswith("| 2.00x [1.33, 3.00] |")
    # accuracy loss 0.04 / 0.02, near 0.03 / 0.03, far 0.05 / 0.01
    assert rows["accuracy loss, unprotected / this"].endswith("| 2.00x [1.00, 5.00] |")
    # fixed raw rate: 0.25 % x 835,344 / 825,344 = 0.2530 %; 0.5 / 0.2530 = 1.98
    assert "0.2530 [0.2024, 0.3036]" in rows["critical rate at a fixed raw fault rate (%)"]
    fixed = rows["critical faults at a fixed raw fault rate, unprotected / this"]
    assert fixed.endswith("| 1.98x [1.32, 2.96] |")
