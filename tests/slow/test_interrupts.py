"""Interrupt torture (``pytest -m slow``): a real ``inject`` and a real ``run``, as processes,
stopped by SIGINT (Ctrl-C, to the whole process group as a terminal sends it) and by SIGKILL at
24 moments each over the whole life of the process, its first 100 ms included; each is resumed
with ``--resume`` and must end with the rows of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MOMENTS = 24  # per command and signal
EARLY = (0.0, 0.03, 0.06, 0.09)  # the first 100 ms: interpreter start, imports
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
WORKLOAD = str(REPO / "workloads" / "lenet5.yaml")
COMMANDS = {
    "inject": ["inject", WORKLOAD, "--faults", "1200", "--test-images", "1000", "--batch-size", "8",
               "--workers", "2"],
    "run": ["run", str(REPO / "arch" / "pe16x16.yaml"), WORKLOAD, "--faults", "200",
            "--test-images", "300", "--nvf-split", "sample", "--nvf-images", "48",
            "--thresholds", "", "--tops", "5"],
}  # fmt: skip


def _argv(command: str, out: Path) -> list[str]:
    where = "--output-dir" if command == "inject" else "--out"
    return [sys.executable, "-m", "accelsim", *COMMANDS[command], where, str(out)]


def _final(command: str, out: Path) -> object:
    """What must not depend on interrupts: every fault's row (inject), every result row (run)."""
    if command == "inject":
        return (out / "campaigns" / "campaign-lenet5-none.faults.csv").read_text()
    doc = json.loads((out / "results.json").read_text())
    return [{k: v for k, v in r.items() if k != "campaign_seconds"} for r in doc["rows"]]


def _start(command: str, out: Path, **kwargs) -> subprocess.Popen:
    """The command in its own folder: its NVF cache (the workload's output_dir, relative to the
    current folder) is its own too, so interrupts also land in the NVF analysis."""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(_argv(command, out), env=ENV, text=True, cwd=out,
                            preexec_fn=_default_sigint, **kwargs)  # fmt: skip


def _default_sigint() -> None:
    """Ctrl-C as in a terminal, even where this test runs as a background job of a shell
    (which starts it with SIGINT ignored, and Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _complete(command: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*_argv(command, out), "--resume"], env=ENV, capture_output=True,
                          text=True, timeout=600, cwd=out)  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_interrupted_anywhere_then_resumed_equals_uninterrupted(tmp_path, command, sig):
    # a first run fills numba's cache (a fresh clone has none): timed, it would make the
    # reference's lifetime longer than every later run's, and most signals would land too late
    warm = _start(command, tmp_path / "warm-up", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert warm.wait(timeout=600) == 0, warm.stderr.read()
    reference = tmp_path / "reference"
    start = time.perf_counter()
    done = _start(command, reference, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = done.communicate(timeout=600)
    lifetime = time.perf_counter() - start
    assert done.returncode == 0, err
    want = _final(command, reference)
    rng = np.random.default_rng(14 + int(sig) + len(command))
    later = np.sort(rng.uniform(0.1, lifetime, MOMENTS - len(EARLY)))
    survived, finished_first = 0, 0
    for i, moment in enumerate((*EARLY, *later)):
        out = tmp_path / f"try{i}"
        proc = _start(
            command, out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        time.sleep(moment)
        try:
            if sig == signal.SIGINT:
                os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C: the workers get it too
            else:
                proc.kill()  # kill -9 of the campaign's process only
        except ProcessLookupError:
            pass
        _, err = proc.communicate(timeout=600)
        finished_first += proc.returncode == 0
        # a Ctrl-C inside the interpreter's own start (importing site, before any of
        # accelsim's code runs) is CPython's "Fatal Python error: init_import_site", exit 1
        before_python = proc.returncode == 1 and "init_import_site" in err
        assert proc.returncode in (0, 130, -signal.SIGINT, -signal.SIGKILL) or before_python, err
        again = _complete(command, out)
        assert again.returncode == 0, f"{sig!r} at {moment:.3f} s: {again.stderr}"
        assert _final(command, out) == want, f"{sig!r} at {moment:.3f} s: rows differ"
        assert not [p for p in out.rglob(".*.tmp") if p.is_file()], "a partly written file"
        survived += 1
    print(  # noqa: T201 (the README's reliability section quotes these counts)
        f"{command} {sig.name}: {survived} of {MOMENTS} interrupts survived "
        f"({finished_first} came after the process had finished; lifetime {lifetime:.1f} s)"
    )
    assert survived == MOMENTS
    assert finished_first <= MOMENTS // 4  # the signals really landed inside the processes
