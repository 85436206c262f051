"""Atomic writes leave the old file or the whole new one; one process writes an output folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelsim import files
from accelsim.cli.main import main
from accelsim.errors import AccelsimError
from tests.conftest import REPO

WORKLOAD = str(REPO / "workloads" / "lenet5.yaml")


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    files.write_text(path, "old")
    files.write_text(path, "new" * 1000)
    assert path.read_text() == "new" * 1000
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    files.write_text(path, "old")

    def interrupted_write() -> None:
        with files.atomic_text(path) as fh:
            fh.write("half of the new")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_leftovers_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".r.csv.{dead}.tmp"
    stale.write_text("a killed writer's half")
    live = tmp_path / f".r.csv.{os.getppid()}.tmp"  # pytest's parent: alive
    live.write_text("someone is still writing this")
    files.write_text(tmp_path / "r.csv", "new")
    assert not stale.exists()
    assert live.exists()


HOLD = """
import os, sys, time
from accelsim.files import OutputLock
lock = OutputLock(sys.argv[1]).acquire()
if len(sys.argv) > 2 and os.fork() == 0:  # a forked child (campaign workers are forked)
    time.sleep(60)
    os._exit(0)
print("held", flush=True)
time.sleep(60)
"""


def _holder(folder: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), *extra], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_writer_is_named_and_a_killed_one_is_taken_over(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        with pytest.raises(AccelsimError, match=rf"another accelsim process .*pid {proc.pid}"):
            files.OutputLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with files.OutputLock(tmp_path):  # the kernel dropped the killed process's lock
        assert f"pid {os.getpid()}" in (tmp_path / files.LOCK_NAME).read_text()


def test_a_forked_child_does_not_keep_a_dead_parents_lock(tmp_path: Path) -> None:
    proc = _holder(tmp_path, "fork")
    try:
        with pytest.raises(AccelsimError):
            files.OutputLock(tmp_path).acquire()
        proc.kill()
        proc.wait()
        with files.OutputLock(tmp_path):  # the child still sleeps, the lock is free
            pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_inject_refuses_a_folder_another_process_writes(tmp_path: Path, capsys) -> None:
    proc = _holder(tmp_path)
    try:
        code = main(["inject", WORKLOAD, "--faults", "4", "--test-images", "10",
                     "--output-dir", str(tmp_path)])  # fmt: skip
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"pid {proc.pid}" in err
    assert not (tmp_path / "campaigns").exists()  # refused before anything was written


def test_sequential_runs_reuse_the_lock_file(tmp_path: Path) -> None:
    for _ in range(3):
        with files.OutputLock(tmp_path):
            pass
    start = time.monotonic()
    with files.OutputLock(tmp_path):
        assert time.monotonic() - start < 1


def test_a_holder_may_take_its_folder_again_and_the_outermost_release_frees_it(
    tmp_path: Path,
) -> None:
    outer = files.OutputLock(tmp_path).acquire()
    with files.OutputLock(tmp_path):  # a library call inside a command that holds the folder
        pass
    proc = subprocess.run(  # still held: another process is refused
        [sys.executable, "-c", "import sys; from accelsim.files import OutputLock; "
         "OutputLock(sys.argv[1]).acquire()", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "another accelsim process" in proc.stderr
    outer.release()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from accelsim.files import OutputLock; "
         "OutputLock(sys.argv[1]).acquire()", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_beside_keeps_dots_already_in_the_name(tmp_path: Path) -> None:
    assert files.beside(tmp_path / "campaign-net-T0.86875", ".faults.csv") == (
        tmp_path / "campaign-net-T0.86875.faults.csv"
    )
    assert files.beside("nvf-net.v2-linear", ".npz") == Path("nvf-net.v2-linear.npz")
