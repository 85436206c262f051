"""Executors give identical rows; the SQLite store resumes and refuses foreign campaigns."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from dask.distributed import LocalCluster

from accelsim.config.workload import FaultKind, FaultSite, FaultSpec
from accelsim.config.workload import ProtectionMode as Mode
from accelsim.errors import AccelsimError
from accelsim.faults import campaign as campaign_module
from accelsim.faults.campaign import (
    CampaignInputs,
    evaluate_faults,
    pending_batches,
    run_campaign,
)
from accelsim.faults.model import fault_batch
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.faults.store import FaultRows, open_store, read_rows
from accelsim.functional.network import quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork, protected_predict

SETTINGS = {"network": "tiny", "faults": 200, "seed": 3}


@pytest.fixture
def campaign(tiny_net, tiny_images):
    plan = plan_from_neurons(tiny_net, Mode.SPLIT, {0: np.arange(0, 243, 3), 4: [1, 2]})
    pnet = ProtectedNetwork(tiny_net, plan, {})
    x = quantize_images(tiny_net, tiny_images)
    labels = protected_predict(pnet, tiny_images[::-1])  # any labels
    pop = build_population(tiny_net, plan, FaultKind.SINGLE_BIT, 1)
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, 200, 0.01, 0.95, 0.5, 3)
    faults = fault_batch(sample_faults(pop, spec, rng=np.random.default_rng(3)))
    return CampaignInputs(pnet, x, labels.astype(np.int64)), faults


def _fields(rows: FaultRows) -> list[list[int]]:
    return [
        getattr(rows, f).tolist()
        for f in ("ids", "layer", "neuron", "copy", "mask", "n_changed", "n_correct")
    ]


def _run(tmp_path: Path, name: str, campaign, **kw) -> FaultRows:
    inputs, faults = campaign
    con = open_store(tmp_path / f"{name}.sqlite", SETTINGS, resume=False)
    try:
        return run_campaign(inputs, faults, con, batch_size=7, **kw)
    finally:
        con.close()


def test_rows_hold_the_fault_and_its_outcome(tmp_path: Path, campaign) -> None:
    rows = _run(tmp_path, "one", campaign)
    inputs, faults = campaign
    assert rows.ids.tolist() == list(range(len(faults)))
    np.testing.assert_array_equal(rows.mask, faults.mask)
    assert (rows.n_changed > 0).any()
    assert (rows.n_changed <= len(inputs.x)).all()


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_local_workers_give_identical_rows(tmp_path: Path, campaign, fork, monkeypatch) -> None:
    """Forked workers (Linux: they share the parent's golden state) and spawned ones (elsewhere:
    each computes its own) give the rows of one process."""
    monkeypatch.setattr(campaign_module, "FORK_WORKERS", fork)
    one = _run(tmp_path, "one", campaign, workers=1)
    two = _run(tmp_path, "two", campaign, workers=2)
    assert _fields(one) == _fields(two)


def test_dask_local_cluster_gives_identical_rows(tmp_path: Path, campaign) -> None:
    one = _run(tmp_path, "one", campaign, workers=1)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        dask = _run(tmp_path, "dask", campaign, dask_address=cluster.scheduler_address)
    assert _fields(one) == _fields(dask)


def test_resume_finishes_only_what_is_missing(tmp_path: Path, campaign) -> None:
    inputs, faults = campaign
    full = _run(tmp_path, "full", campaign)
    path = tmp_path / "part.sqlite"
    con = open_store(path, SETTINGS, resume=False)
    run_campaign(inputs, faults.take(np.arange(0, 200, 3)), con, batch_size=5)  # a third
    con.close()
    con = open_store(path, SETTINGS, resume=True)
    seen = []
    rows = run_campaign(inputs, faults, con, batch_size=5, on_progress=seen.append)
    con.close()
    assert sum(seen) == 200 - 67  # only the missing faults were evaluated
    assert _fields(rows) == _fields(full)


def test_store_refuses_overwrite_and_foreign_settings(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    open_store(path, SETTINGS, resume=False).close()
    with pytest.raises(AccelsimError, match="resume=True"):
        open_store(path, SETTINGS, resume=False)
    with pytest.raises(AccelsimError, match=r"seed: stored 3, now 4"):
        open_store(path, {**SETTINGS, "seed": 4}, resume=True)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AccelsimError, match="not an accelsim campaign database"):
        open_store(junk, SETTINGS, resume=True)
    assert len(read_rows(open_store(path, SETTINGS, resume=True))) == 0


@pytest.mark.parametrize("where", ["table name", "settings"])
def test_store_with_damaged_text_is_refused_in_one_line(tmp_path: Path, where: str) -> None:
    """Bytes that are not UTF-8 in a table's name or in the stored settings (what the database
    fuzz found: sqlite3 raises UnicodeDecodeError, not one of its own errors, on reading them)."""
    path = tmp_path / "c.sqlite"
    open_store(path, SETTINGS, resume=False).close()
    if where == "table name":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE zzzq (a)")
        con.commit()
        con.close()
        target = b"zzzq"
    else:
        target = b'"seed": 3'
    data = path.read_bytes()
    at = data.find(target)  # the first copy: the name column (the CREATE statement still parses)
    assert at >= 0
    path.write_bytes(data[:at] + b"\x80" + data[at + 1 :])
    with pytest.raises(AccelsimError) as err:
        open_store(path, SETTINGS, resume=True)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_pending_batches_skip_done_faults(campaign) -> None:
    _, faults = campaign
    batches = pending_batches(faults, {0, 1, 2, 50}, 10)
    ids = np.concatenate([b.ids for b in batches])
    assert ids.tolist() == [i for i in range(200) if i not in {0, 1, 2, 50}]
    assert max(len(b) for b in batches) == 10


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _no_tables(path: Path) -> None:  # what open_store's first PRAGMA left before 2026-12
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()


def _tables_without_settings(path: Path) -> None:  # Python 3.11 commits CREATE TABLE at once
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.execute("CREATE TABLE faults (id INTEGER PRIMARY KEY, layer INTEGER, neuron INTEGER, "
                "copy INTEGER, mask INTEGER, kind INTEGER, n_changed INTEGER, n_correct INTEGER)")  # fmt: skip
    con.commit()
    con.close()


@pytest.mark.parametrize("leave", [_empty_file, _no_tables, _tables_without_settings])
@pytest.mark.parametrize("resume", [True, False])
def test_a_database_an_interrupt_left_incomplete_is_started_again(tmp_path, leave, resume):
    """Whatever an interrupted creation can leave (by earlier versions too) holds no campaign:
    it is started again with a one-line note, with or without resume, never refused."""
    path = tmp_path / "c.sqlite"
    leave(path)
    notes: list[str] = []
    con = open_store(path, SETTINGS, resume=resume, on_note=notes.append)
    assert len(read_rows(con)) == 0
    con.close()
    assert len(notes) == 1
    assert "holds no campaign" in notes[0]
    assert "\n" not in notes[0]
    with pytest.raises(AccelsimError, match=r"seed: stored 3, now 4"):  # a real one now
        open_store(path, {**SETTINGS, "seed": 4}, resume=True)


class _Interrupted(KeyboardInterrupt):
    pass


class _Steps:
    """Counts the store's steps (every call on a SQLite connection, every rename) and raises
    KeyboardInterrupt before step ``stop``, as Ctrl-C would there. ``die()`` then closes what
    the process had open, as its exit would (an open transaction rolls back)."""

    def __init__(self, stop: int) -> None:
        self.stop, self.count, self.open = stop, 0, []

    def step(self) -> None:
        if self.count == self.stop:
            raise _Interrupted
        self.count += 1

    def connect(self, *args, **kwargs):
        self.step()
        con = sqlite3.connect(*args, **kwargs)
        self.open.append(con)
        return _Connection(con, self)

    def die(self) -> None:
        for con in self.open:
            con.close()


class _Connection:
    def __init__(self, con, steps: _Steps) -> None:
        self._con, self._steps = con, steps

    def __getattr__(self, name):
        attr = getattr(self._con, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self._steps.step()
            return attr(*args, **kwargs)

        return call

    def __enter__(self):
        self._steps.step()
        return self._con.__enter__()

    def __exit__(self, *exc):
        self._steps.step()
        return self._con.__exit__(*exc)


def test_an_interrupt_at_every_step_of_creation_and_batch_writes_resumes_exactly(
    campaign, tmp_path: Path, monkeypatch
) -> None:
    """Ctrl-C before each step of creating the store and of writing two batches: the database
    is then absent or a complete campaign (never refused), and resuming gives the rows of an
    uninterrupted campaign."""
    import os
    import types

    from accelsim import files as files_module
    from accelsim.faults import store as store_module
    from accelsim.faults.store import write_rows

    inputs, faults = campaign
    con = open_store(tmp_path / "full.sqlite", SETTINGS, resume=False)
    full = _fields(run_campaign(inputs, faults, con, batch_size=50))
    con.close()
    first = run_campaign(inputs, faults.take(np.arange(20)), open_store(
        tmp_path / "part.sqlite", SETTINGS, resume=False), batch_size=10)  # fmt: skip
    stop = 0
    while True:
        path = tmp_path / f"run{stop}" / "c.sqlite"
        steps = _Steps(stop)
        real_replace = os.replace

        def replace(src, dst, steps=steps, real_replace=real_replace):
            steps.step()
            real_replace(src, dst)

        fake = types.SimpleNamespace(**vars(sqlite3))
        fake.connect = steps.connect
        monkeypatch.setattr(store_module, "sqlite3", fake)
        monkeypatch.setattr(files_module.os, "replace", replace)
        try:
            con = open_store(path, SETTINGS, resume=False)
            write_rows(con, first.take(np.arange(10)))
            write_rows(con, first.take(np.arange(10, 20)))
            con.close()
            finished = True
        except _Interrupted:
            finished = False
        finally:
            monkeypatch.undo()
            steps.die()
        notes: list[str] = []
        con = open_store(path, SETTINGS, resume=True, on_note=notes.append)
        done = len(read_rows(con))
        assert done in (0, 10, 20)  # whole batches only
        rows = run_campaign(inputs, faults, con, batch_size=50)
        con.close()
        assert _fields(rows) == full, f"interrupted before step {stop}"
        assert not list(path.parent.glob(".*.tmp*")), "a temporary file was left behind"
        assert not notes  # nothing incomplete was ever left
        if finished:
            break
        stop += 1
    # creation: connect, BEGIN, 2 tables, meta, COMMIT, close, rename, connect, 2 PRAGMAs;
    # each batch: enter, executemany, exit; then close (the docs quote these 18 steps)
    assert stop == 18


def test_ctrl_c_beside_a_process_pool_is_deferred_to_a_safe_point() -> None:
    """While a pool runs, SIGINT only sets a flag (a KeyboardInterrupt inside
    concurrent.futures.wait could leave the futures' locks held and hang the exit); the campaign
    raises it between two waits, and one that came after the last wait is delivered on leaving."""
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from accelsim.faults.campaign import _bounded, _deferred_sigint

    # Python's own Ctrl-C handler, whatever this test runner was started with (a shell's
    # background job starts with SIGINT ignored, which _deferred_sigint leaves alone)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _deferred_sigint() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.is_set()  # no KeyboardInterrupt here
            with ThreadPoolExecutor(1) as pool, pytest.raises(KeyboardInterrupt):
                list(_bounded(lambda b: pool.submit(lambda: b), [1, 2, 3], 2, stop))
            assert not stop.is_set()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

        def interrupted_after_the_last_wait() -> None:
            with _deferred_sigint():
                os.kill(os.getpid(), signal.SIGINT)

        with pytest.raises(KeyboardInterrupt):
            interrupted_after_the_last_wait()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job's: left alone
        try:
            with _deferred_sigint() as stop:
                assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        finally:
            signal.signal(signal.SIGINT, old)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_default_batches_give_every_worker_work() -> None:
    """40 faults on 1,000 images: one batch of 64 on one worker; with two workers, batches of
    5 (four each), so that neither waits; a batch size given is kept."""
    from accelsim.faults.campaign import _batch_size

    assert _batch_size(None, 1000, 40, 1) == 64
    assert _batch_size(None, 1000, 40, 2) == 5
    assert _batch_size(None, 1000, 3, 4) == 1
    assert _batch_size(None, 10_000, 600, 2) == 64  # LeNet-5's benchmark: unchanged
    assert _batch_size(7, 1000, 40, 2) == 7


def test_a_finished_pool_leaves_no_thread_behind(campaign) -> None:
    """Once every batch is done the process pool's manager thread has ended: left running, it
    races Python 3.11's exit hook (a write to a pipe it closes: EBADF at interpreter exit)."""
    from concurrent.futures.process import _ExecutorManagerThread

    inputs, faults = campaign
    rows = evaluate_faults(inputs, faults, workers=2, batch_size=7)
    assert len(rows) == len(faults)
    alive = [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread)]
    assert alive == []
