"""``inject``: JSON and CSV output, protected campaigns, errors, and surviving ``kill -9``."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelsim.cli.main import main
from tests.conftest import REPO

WORKLOAD = str(REPO / "workloads" / "lenet5.yaml")


def _inject(capsys, tmp_path: Path, *extra: str) -> dict:
    argv = ["inject", WORKLOAD, "--test-images", "200", "--output-dir", str(tmp_path), "--json"]
    assert main([*argv, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT * FROM faults ORDER BY id").fetchall()


def test_inject_json_summary_and_files(capsys, tmp_path: Path) -> None:
    doc = _inject(capsys, tmp_path, "--faults", "120", "--seed", "4")
    assert doc["faults"] == 120
    assert doc["population"] == 4684 * 8
    assert doc["images"] == 200
    s = doc["summary"]
    for key in ("accuracy_loss_pp", "critical_rate", "faults_with_effect"):
        est = s[key]
        assert est["lo"] <= est["value"] <= est["hi"]
    assert sum(d["faults"] for d in doc["per_layer"]) == 120
    assert sum(d["faults"] for d in doc["per_bit"]) == 120
    assert [d["group"] for d in doc["per_bit"]] == [str(b) for b in range(8)]
    db, faults_csv, summary_csv = (Path(f) for f in doc["files"])
    assert len(_rows(db)) == 120
    with faults_csv.open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 120
    assert {r["layer"] for r in table} <= {"conv1", "conv2", "fc1", "fc2"}
    with summary_csv.open() as fh:
        assert next(csv.DictReader(fh))["group"] == "all"


def test_dotted_thresholds_keep_their_own_csv_files(capsys, tmp_path: Path) -> None:
    """Thresholds 0.5 and 0.9 in one output folder: each campaign's CSVs carry its whole
    name (``...-T0.5.faults.csv``), so neither overwrites the other's."""
    names = {}
    for threshold in ("0.5", "0.9"):
        doc = _inject(capsys, tmp_path, "--faults", "10", "--protection", "split",
                      "--threshold", threshold, "--test-images", "20")  # fmt: skip
        names[threshold] = [Path(f).name for f in doc["files"]]
    for threshold, (db, faults_csv, summary_csv) in names.items():
        stem = f"campaign-lenet5-split-T{threshold}"
        assert (db, faults_csv, summary_csv) == (
            f"{stem}.sqlite", f"{stem}.faults.csv", f"{stem}.summary.csv")  # fmt: skip
        with (tmp_path / "campaigns" / faults_csv).open() as fh:
            assert len(list(csv.DictReader(fh))) == 10
    assert len(list((tmp_path / "campaigns").glob("*.csv"))) == 4


def test_leveugle_default_gives_the_papers_campaign_size(capsys, tmp_path: Path) -> None:
    """LeNet-5 with the workload's defaults (e = 1 %, 95 %, p = 0.5): 7,645 faults, here on
    20 images so that the test stays quick."""
    argv = ["inject", WORKLOAD, "--test-images", "20", "--output-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["faults"] == 7645


def test_protected_campaign_draws_copies_too(capsys, tmp_path: Path) -> None:
    doc = _inject(
        capsys, tmp_path, "--faults", "exhaustive", "--protection", "tmr", "--threshold", "0",
        "--images", "5", "--split", "sample", "--test-images", "10", "--kind", "stuck_at_1",
    )  # fmt: skip
    # threshold 0: every neuron protected, TMR: three copies of each, 8 bits
    assert doc["population"] == 3 * 4684 * 8
    assert doc["faults"] == doc["population"]
    assert doc["summary"]["critical_rate"]["value"] == 0.0  # TMR masks every single-copy fault
    copies = {r[3] for r in _rows(Path(doc["files"][0]))}
    assert copies == {0, 1, 2}


def test_rerun_without_resume_is_refused_and_other_settings_too(capsys, tmp_path: Path) -> None:
    _inject(capsys, tmp_path, "--faults", "20")
    argv = ["inject", WORKLOAD, "--test-images", "200", "--output-dir", str(tmp_path)]
    assert main([*argv, "--faults", "20"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--faults", "30", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "faults: stored 20, now 30" in err
    assert main([*argv, "--faults", "20", "--resume"]) == 0  # nothing left: just the summary


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--faults", "99999999"], "population holds only"),
        (["--bits", "3"], "--bits"),
        (["--workers", "0"], "--workers"),
        (["--batch-size", "0"], "--batch-size: expected an int >= 1, got 0"),
        (["--test-images", "0"], "--test-images: expected an int >= 1, got 0"),
        (["--dask", "tcp://127.0.0.1:1"], "cannot reach the scheduler"),
    ],
)
def test_bad_arguments_are_clear_errors(capsys, tmp_path: Path, extra, message) -> None:
    argv = ["inject", WORKLOAD, "--test-images", "20", "--output-dir", str(tmp_path), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "campaigns").exists()  # refused before any database was created


def test_bad_fault_count_is_a_usage_error(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inject", WORKLOAD, "--faults", "0"])
    assert exc.value.code == 2
    assert "leveugle, exhaustive or a positive int" in capsys.readouterr().err


def _worker_processes(pid: int) -> list[int]:
    """Worker processes (forked, or spawned where fork is not used) whose parent is ``pid``:
    its children but multiprocessing's resource tracker."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"resource_tracker" not in cmd:
            found.append(int(stat.parent.name))
    return found


def _wait_rows(db: Path, proc: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=0.1) as con:
                    done = con.execute("SELECT COUNT(*) FROM faults").fetchone()[0]
            except sqlite3.OperationalError:
                done = 0
            if done >= at_least:
                break
        time.sleep(0.02)
    return done


def test_crashed_worker_is_reported_and_resume_finishes(capsys, tmp_path: Path) -> None:
    """SIGKILL one worker process of a 2-worker campaign: the campaign stops with a one-line
    error (exit 2) that says to resume, keeps what it finished, and --resume completes it."""
    args = ["inject", WORKLOAD, "--faults", "600", "--test-images", "1000", "--batch-size", "3"]
    out = tmp_path / "crash"
    db = out / "campaigns" / "campaign-lenet5-none.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelsim", *args, "--workers", "2", "--output-dir", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert _wait_rows(db, proc, 30) >= 30
    workers = _worker_processes(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "worker process died" in err
    assert "--resume" in err
    partial = len(_rows(db))
    assert 30 <= partial < 600
    assert main([*args, "--output-dir", str(out), "--resume", "--json"]) == 0
    assert len(_rows(db)) == 600


def test_kill_9_then_resume_equals_an_uninterrupted_run(capsys, tmp_path: Path) -> None:
    """Kill a real campaign subprocess with SIGKILL mid-way; --resume must finish it with rows
    identical to an uninterrupted run (here with 2 worker processes)."""
    args = ["inject", WORKLOAD, "--faults", "600", "--test-images", "1000", "--batch-size", "3"]
    killed_dir = tmp_path / "killed"
    db = killed_dir / "campaigns" / "campaign-lenet5-none.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "accelsim", *args, "--output-dir", str(killed_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_rows(db, proc, 30)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = len(_rows(db))
    assert 30 <= partial < 600, "the kill must land mid-campaign"
    assert main([*args, "--output-dir", str(killed_dir), "--resume", "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert main([*args, "--output-dir", str(tmp_path / "clean"), "--workers", "2", "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert _rows(db) == _rows(Path(clean["files"][0]))
    assert resumed["summary"] == clean["summary"]
