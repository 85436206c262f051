"""Sweep thresholds, result rows, the recommendation and the HTML report."""

from __future__ import annotations

import base64
import csv
import json
import math
import re

import numpy as np
import pytest

from accelsim.config.workload import ProtectionMode
from accelsim.errors import AccelsimError
from accelsim.protection.plan import threshold_for_top
from accelsim.report.html import HtmlFigure, HtmlTable, render_report
from accelsim.sweep.results import Interval, ResultRow, recommend, write_results
from accelsim.sweep.thresholds import sweep_points

NVF = {0: np.array([0.0, 0.0, 0.01, 0.02, 0.03]), 2: np.array([0.06, 0.12, 0.2, 0.2, 0.0])}


def test_threshold_for_top_protects_that_share():
    assert threshold_for_top(NVF, 10) == pytest.approx(20.0)  # 1 of 10 -> the 0.2 tie: 2
    assert threshold_for_top(NVF, 30) == pytest.approx(12.0)
    assert threshold_for_top(NVF, 100) == pytest.approx(1.0)  # never the NVF-0 neurons
    with pytest.raises(AccelsimError, match=r"top_percent: expected a percentage in \(0, 100\]"):
        threshold_for_top(NVF, 0)
    with pytest.raises(AccelsimError, match="nothing to protect"):
        threshold_for_top({0: np.zeros(4)}, 5)


def test_sweep_points_distinct_non_empty_and_merged():
    """NVF in %: 0, 0, 1, 2, 3, 6, 12, 20, 20, 0. Grid 0/5/10/15/50 selects 10, 4, 3, 2 and
    nothing; top 10 % is NVF >= 20 % (the same 2 neurons as 15 %: merged into its label); top
    50 % is NVF >= 3 % (5 neurons, a new point)."""
    points = sweep_points(NVF, (0.0, 5.0, 10.0, 15.0, 50.0), (10.0, 50.0))
    labels = {p.n_protected: p.label for p in points}
    assert [p.n_protected for p in points] == [2, 3, 4, 5, 10]
    assert labels == {
        2: "NVF >= 15 % = top 10 %",
        3: "NVF >= 10 %",
        4: "NVF >= 5 %",
        5: "top 50 %",
        10: "NVF >= 0 %",
    }
    assert points[3].threshold_percent == pytest.approx(3.0)
    assert points[-1].top_percent == 100.0


def _row(mode, t, loss_hi, cycles, neurons=0.0):
    est = Interval(loss_hi / 2, 0.0, loss_hi)
    return ResultRow(
        ProtectionMode(mode), "x", t, 1.0, 3, 10, neurons, 100, 0, 10, 0, 0.0, 0.0, 50, 60, cycles, 100,
        800, 20, 0.9, est, Interval(0.01, 0.0, 0.02), Interval(0.01, 0.0, 0.02), Interval(0.5, 0.4, 0.6),
        1.0,
    )  # fmt: skip


def test_recommend_picks_the_cheapest_row_under_the_budget():
    rows = [_row("none", math.nan, 7.0, 0.0), _row("split", 10, 4.0, 12.0, 3),
            _row("split", 20, 4.5, 6.0, 1), _row("tmr", 20, 1.0, 9.0, 2)]  # fmt: skip
    best, why = recommend(rows, 5.0)
    assert best is rows[2]
    assert "split at NVF >= 20 %" in why
    assert "+6.00 % cycles" in why
    best, why = recommend(rows, 0.5)
    assert best is None
    assert "no configuration" in why
    best, why = recommend([_row("none", math.nan, 0.1, 0.0), *rows[1:]], 5.0)
    assert best.mode is ProtectionMode.NONE
    assert "no protection is needed" in why


def test_results_files(tmp_path):
    rows = [_row("none", math.nan, 1.0, 0.0), _row("split", 10, 0.5, 3.0)]
    csv_path, json_path = write_results(rows, tmp_path, {"seed": 3})
    with csv_path.open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["mode"] for r in table] == ["none", "split"]
    assert table[1]["accuracy_loss_pp_hi"] == "0.5"
    doc = json.loads(json_path.read_text())
    assert doc["seed"] == 3
    assert doc["rows"][1]["critical_rate"] == {"value": 0.01, "lo": 0.0, "hi": 0.02}


def test_html_report_is_self_contained(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = tmp_path / "f.png"
    fig.savefig(png)
    plt.close(fig)
    doc = render_report(
        "t <&>", ["one", "two"], {"seed": 1},
        [HtmlFigure("figure-a", "cap", png)],
        [HtmlTable("tab-b", "table b", ("h1", "h2"), (("<x>", 2),))],
    )  # fmt: skip
    assert "t &lt;&amp;&gt;" in doc
    assert "&lt;x&gt;" in doc
    assert 'id="figure-a"' in doc
    assert 'id="tab-b"' in doc
    assert "http" not in doc.replace("http-equiv", "")  # nothing fetched
    data = re.search(r'src="data:image/png;base64,([^"]+)"', doc).group(1)
    assert base64.b64decode(data) == png.read_bytes()


def test_tops_selecting_the_same_neurons_share_one_labelled_point():
    """Only 7 of 10 neurons have NVF > 0: top 80 % and top 100 % both select those 7 (never the
    NVF-0 neurons), so they are one point named by both; top 10 % is its own."""
    points = sweep_points(NVF, (), (10.0, 80.0, 100.0))
    assert [(p.n_protected, p.label) for p in points] == [
        (2, "top 10 %"),
        (7, "top 80 % = top 100 %"),
    ]
