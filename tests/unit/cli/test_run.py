"""``run``: the whole sweep on a small budget: rows, files, report, resume, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from accelsim.cli.main import main
from tests.conftest import REPO

ARCH = str(REPO / "arch" / "pe16x16.yaml")
WORKLOAD = str(REPO / "workloads" / "lenet5.yaml")
SMALL = ["--faults", "40", "--test-images", "60", "--nvf-split", "sample", "--nvf-images", "64"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["run", ARCH, WORKLOAD, "--out", str(out), *SMALL, "--json"]) == 0
    return out, json.loads(buf.getvalue())


def test_rows_cover_every_threshold_and_mode(sweep):
    _, doc = sweep
    rows = doc["rows"]
    points = doc["thresholds"]
    assert len(rows) == 1 + 2 * len(points)
    assert rows[0]["mode"] == "none"
    assert rows[0]["threshold_percent"] is None  # strict JSON: null, not NaN
    assert [r["mode"] for r in rows[1:]] == ["split", "tmr"] * len(points)
    for r in rows:
        assert r["faults"] == 40
        assert r["images"] == 60
        est = r["critical_rate"]
        assert est["lo"] <= est["value"] <= est["hi"]
    for r in rows[1:]:  # more protection: more neurons and cycles, never fewer
        assert r["neurons"] > rows[0]["neurons"]
        assert r["cycles"] >= rows[0]["cycles"]
    tmr_all = [r for r in rows if r["mode"] == "tmr" and r["threshold_percent"] == 0.0]
    assert tmr_all[0]["critical_rate"]["value"] == 0.0  # every neuron triplicated: no faults bite
    assert doc["test_images_from"] == "sample images 64..123"  # disjoint from the NVF images


def test_the_accelerator_memory_view_and_the_fixed_raw_rate(sweep):
    """By hand from each row's counts: the population of a network with n protected neurons is
    8 x (4,684 + copies x n) single-bit faults, so the rate at a fixed raw fault rate is the
    per-fault rate x population / 8 x 4,684; the accelerator holds, per split neuron, its
    copy's multiplier and shift (5 B) and its output (1 B), per TMR neuron two outputs, and the
    correction lanes of pe16x16 (16 LCU lanes x 2 copies, 16 voter lanes x 3 copies)."""
    _, doc = sweep
    rows = doc["rows"]
    base = rows[0]
    memory = base["param_bytes"] + base["activation_bytes"]
    assert base["population"] == 8 * 4684
    for r in rows:
        n = r["critical_neurons"]
        copies = {"none": 0, "split": 1, "tmr": 2}[r["mode"]]
        assert r["population"] == 8 * (4684 + copies * n)
        ratio = r["population"] / base["population"]
        for end in ("value", "lo", "hi"):
            assert r["critical_rate_fixed_raw"][end] == pytest.approx(
                r["critical_rate"][end] * ratio
            )
        held = {"none": 0, "split": 6 * n + 16 * 2, "tmr": 2 * n + 16 * 3}[r["mode"]]
        assert r["memory_overhead_percent"] == pytest.approx(100 * held / memory)


def test_files(sweep):
    out, doc = sweep
    with (out / "results.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(doc["rows"])
    assert json.loads((out / "results.json").read_text())["rows"] == json.loads(
        json.dumps(doc["rows"])
    )
    for name in ("fig4", "overhead", "nvf"):
        for ext in (".png", ".svg"):
            assert (out / "figures" / name).with_suffix(ext).stat().st_size > 10_000
    html = (out / "report.html").read_text()
    for anchor in ("figure-fig4", "figure-overhead", "figure-nvf", "results", "table-i",
                   "thresholds", "settings", "summary"):  # fmt: skip
        assert f'id="{anchor}"' in html
    assert doc["network_hash"] in html
    assert "recommended under the 5 pp" in html
    assert len(list((out / "campaigns").glob("*.sqlite"))) == len(doc["rows"])


def test_resume_reuses_the_campaigns_and_refuses_without_it(sweep, capsys):
    out, doc = sweep
    assert main(["run", ARCH, WORKLOAD, "--out", str(out), *SMALL]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["run", ARCH, WORKLOAD, "--out", str(out), *SMALL, "--resume", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    strip = ("campaign_seconds",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in again["rows"]] == [
        {k: v for k, v in r.items() if k not in strip} for r in json.loads(json.dumps(doc["rows"]))
    ]


def test_bad_options(capsys, tmp_path):
    assert main(["run", ARCH, WORKLOAD, "--out", str(tmp_path), "--faults", "0"]) == 2
    assert "--faults: expected an int >= 1, got 0" in capsys.readouterr().err


# Runs accelsim's CLI in a fresh interpreter that sends itself SIGINT right after the first
# batch of the first campaign is committed: a real Ctrl-C at a fixed point of the sweep.
SIGINT_AFTER_FIRST_BATCH = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job ignores it
import accelsim.faults.campaign as campaign
write_rows = campaign.write_rows
def write_then_interrupt(con, rows):
    write_rows(con, rows)
    os.kill(os.getpid(), signal.SIGINT)
campaign.write_rows = write_then_interrupt
from accelsim.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_then_resume_equals_an_uninterrupted_sweep(sweep, tmp_path, capsys):
    import os
    import subprocess
    import sys

    _, doc = sweep
    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SIGINT_AFTER_FIRST_BATCH, "run", ARCH, WORKLOAD, "--out", str(out),
         *SMALL],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr
    assert "rerun with --resume to finish" in proc.stdout
    assert f"0 of {len(doc['rows'])} campaigns are complete" in proc.stdout
    assert main(["run", ARCH, WORKLOAD, "--out", str(out), *SMALL, "--resume", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "campaign_seconds"} for r in rows]

    assert strip(again["rows"]) == strip(json.loads(json.dumps(doc["rows"])))
