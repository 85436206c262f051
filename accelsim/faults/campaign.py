"""Running a campaign: fault batches to an executor, results streamed into SQLite.

One engine for every fault source: neuron-output faults (``CampaignInputs``, evaluated by the
incremental kernels) and PE-datapath faults (``timing.pe_campaign.PeCampaignInputs``, evaluated
fold by fold on the array) travel as the same flat ``FaultBatch`` through the same executors
and store; ``run_stored`` is the whole recipe (store, golden classes, resume, Ctrl-C).

Executors: this process (``workers=1``), local worker processes (``workers > 1``), or an
existing Dask distributed cluster (``dask_address``). Each worker receives the network under
test and the images once, computes the golden state once (cached per process; local workers
forked on Linux inherit the parent's instead), and evaluates fault batches, which group the
faults of each max-pool window (``propagate.locality_order``). A fault's result depends only
on the fault and the images, never on the batch or worker that evaluated it, so every
executor and worker count gives identical rows.

Only batches not yet in the database are sent, so a killed campaign resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from accelsim.config.workload import FaultSpec
from accelsim.errors import AccelsimError, ParameterError, positive_int
from accelsim.faults.golden import GoldenState, compute_golden
from accelsim.faults.model import FaultBatch, fault_batch
from accelsim.faults.propagate import faulty_classes, locality_order
from accelsim.faults.sampling import Population, build_population, sample_faults
from accelsim.faults.store import (
    FaultRows,
    database_path,
    done_ids,
    open_store,
    read_rows,
    write_rows,
)
from accelsim.functional.graph import graph_from_network
from accelsim.functional.models import model_hash
from accelsim.functional.network import Network, classify
from accelsim.protection.plan import plan_hash
from accelsim.protection.protected import ProtectedNetwork, protected_logits

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class CampaignInputs:
    """What every worker needs: the network under test, int8 network inputs (N, *input) and
    labels (N,). ``key`` hashes all of it: workers cache the golden state under it."""

    pnet: ProtectedNetwork
    x: I8
    labels: I64
    key: str = field(init=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256(model_hash(self.pnet.net).encode())
        h.update(plan_hash(self.pnet.plan).encode())
        h.update(repr(sorted(self.pnet.ranges.items())).encode())
        for arr in (self.x, self.labels):
            h.update(np.ascontiguousarray(arr).tobytes())
        object.__setattr__(self, "key", h.hexdigest())

    def golden(self) -> GoldenState:
        """What every fault of this source is evaluated against (computed once per process)."""
        return compute_golden(self.pnet, self.x, self.labels)

    def order(self, faults: FaultBatch) -> I64:
        """The order to evaluate ``faults`` in: the faults of each max-pool window together."""
        return locality_order(self.pnet.net.layers, faults)

    def fault_free_classes(self) -> I64:
        """The classes of one fault-free (protected) inference."""
        return classify(protected_logits(self.pnet, self.x))

    def evaluate(self, state: GoldenState, batch: FaultBatch) -> FaultRows:
        """One row per fault: images whose class changed, images still correct."""
        classes = faulty_classes(state, batch)
        return FaultRows(
            batch.ids, batch.layer, batch.index, batch.copy, batch.mask, batch.kind,
            (classes != state.classes[None, :]).sum(axis=1).astype(np.int64),
            (classes == state.labels[None, :]).sum(axis=1).astype(np.int64),
        )  # fmt: skip


class FaultSource(Protocol):
    """What the engine runs: a fault population's inputs (``CampaignInputs`` for neuron-output
    faults, ``timing.pe_campaign.PeCampaignInputs`` for PE-datapath faults,
    ``faults.graph_campaign.GraphCampaignInputs`` for faults in a graph network's tensors).
    ``key`` identifies the inputs (workers cache the golden state under it); ``golden``
    computes that state (it has ``classes``); ``fault_free_classes`` the classes alone, from
    one inference; ``order`` sorts a batch for evaluation; ``evaluate`` gives its rows."""

    key: str
    x: I8
    labels: I64

    def golden(self) -> Any: ...

    def fault_free_classes(self) -> I64: ...

    def order(self, faults: FaultBatch) -> I64: ...

    def evaluate(self, state: Any, batch: FaultBatch) -> FaultRows: ...


# Local workers are forked where that is safe (Linux: the workers never run the threaded
# analysis kernels, and numpy's OpenBLAS re-creates its threads after a fork); spawned elsewhere.
FORK_WORKERS = sys.platform.startswith("linux")
_STATES: dict[str, Any] = {}
_INPUTS: list[FaultSource] = []
_LOCK = threading.Lock()  # Dask runs tasks on threads: one golden state per process


def golden_state(inputs: FaultSource, *, rebuild: bool = False) -> Any:
    """The golden state of ``inputs``, computed once per process (again with ``rebuild``, as a
    benchmark timing it does)."""
    with _LOCK:
        if rebuild or inputs.key not in _STATES:
            _STATES.clear()
            _STATES[inputs.key] = inputs.golden()
        return _STATES[inputs.key]


def campaign_settings(
    pnet: ProtectedNetwork, fault_spec: FaultSpec, n_faults: int, x: I8, labels: I64,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """What identifies a campaign in its database (``store.open_store`` refuses a database of
    other settings): the network, plan and ranges, the fault model, the sample size and the
    images; ``extra`` adds the caller's own keys."""
    return {
        "network_hash": model_hash(pnet.net),
        "protection": pnet.plan.mode.value,
        "plan_hash": plan_hash(pnet.plan),
        "ranges": sorted((int(k), list(v)) for k, v in pnet.ranges.items()),
        "fault_model": {
            k: (v.value if hasattr(v, "value") else v) for k, v in asdict(fault_spec).items()
        },
        "faults": n_faults,
        "images_hash": images_hash(x, labels),
        **extra,
    }


def images_hash(x: I8, labels: I64) -> str:
    """What identifies a campaign's images in its settings: 16 hex digits of their SHA-256."""
    return hashlib.sha256(x.tobytes() + labels.tobytes()).hexdigest()[:16]


def golden_classes(inputs: FaultSource, *, in_process: bool) -> npt.NDArray[np.int64]:
    """The fault-free classes: from the golden state when this process runs the campaign (it
    needs that state anyway), else from one protected inference."""
    if in_process:
        return golden_state(inputs).classes
    return inputs.fault_free_classes()


def evaluate_batch(inputs: FaultSource, batch: FaultBatch) -> FaultRows:
    """One row per fault of ``batch``: images whose class changed, images still correct."""
    return inputs.evaluate(golden_state(inputs), batch)


def _init_worker(inputs: FaultSource, parent: int) -> None:
    _exit_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the campaign's process, which
    # shuts the pool down; workers that also raised KeyboardInterrupt would only print tracebacks
    threadpool_limits(1)  # one process per core: BLAS threads would only contend
    _INPUTS[:] = [inputs]


def _exit_with(parent: int) -> None:
    """Linux: this worker is killed when the campaign's process dies (``kill -9`` of it would
    otherwise leave workers evaluating batches nobody will write)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker_batch(batch: FaultBatch) -> FaultRows:
    return evaluate_batch(_INPUTS[0], batch)


def default_batch_size(n_images: int) -> int:
    """Faults per task: about 6.4e5 fault x image pairs, 1 .. 64 faults. The kernels run the
    pairs of one image back to back, so more faults per task reuse each image's golden rows
    more often while they are in cache (LeNet-5, 10,000 images: 20 faults per task ran 20 %
    slower than 64; 64 to 512 alike)."""
    return int(np.clip(640_000 // max(n_images, 1), 1, 64))


def pending_batches(faults: FaultBatch, done: set[int], batch_size: int) -> list[FaultBatch]:
    """The faults not in ``done``, in order, cut into batches."""
    todo = np.flatnonzero(~np.isin(faults.ids, np.fromiter(done, np.int64, len(done))))
    return [faults.take(todo[s : s + batch_size]) for s in range(0, todo.size, batch_size)]


def run_campaign(
    inputs: FaultSource,
    faults: FaultBatch,
    con: sqlite3.Connection,
    *,
    workers: int = 1,
    dask_address: str | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> FaultRows:
    """Evaluate every fault of ``faults`` not yet in the database ``con``; return all rows."""
    positive_int("workers", workers)
    size = _batch_size(batch_size, len(inputs.x), len(faults), workers)
    stored = read_rows(con)
    check_stored(stored, faults, len(inputs.x), database_path(con))
    ordered = faults.take(inputs.order(faults))
    batches = pending_batches(ordered, set(stored.ids.tolist()), size)
    for rows in _results(inputs, batches, workers, dask_address):
        write_rows(con, rows)
        if on_progress is not None:
            on_progress(len(rows))
    return read_rows(con)


def evaluate_faults(
    inputs: FaultSource,
    faults: FaultBatch,
    *,
    workers: int = 1,
    dask_address: str | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> FaultRows:
    """Every fault's row, sorted by id, on the same executors as ``run_campaign`` but kept in
    memory (no store, no resume): for callers that consume the rows at once, such as the
    exhaustive NVF."""
    positive_int("workers", workers)
    ordered = faults.take(inputs.order(faults))
    size = _batch_size(batch_size, len(inputs.x), len(faults), workers)
    batches = pending_batches(ordered, set(), size)
    parts = []
    for rows in _results(inputs, batches, workers, dask_address, stored=False):
        parts.append(rows)
        if on_progress is not None:
            on_progress(len(rows))
    return FaultRows.concat(parts)


def _batch_size(batch_size: int | None, n_images: int, n_faults: int, workers: int) -> int:
    """``batch_size`` when given (an int >= 1), else ``default_batch_size``, made small enough
    that each of several workers gets at least four batches: 40 ResNet-20 faults x 1,000 images
    were one batch of 64, so one worker ran them all, and faults of early nodes cost several
    times those of late ones (batches hold faults of one node together), so a few large
    batches leave a worker idle."""
    if batch_size is not None:
        return positive_int("batch_size", batch_size)
    size = default_batch_size(n_images)
    if workers > 1:
        size = min(size, max(1, -(-n_faults // (4 * workers))))
    return size


def _results(inputs: FaultSource, batches: list[FaultBatch], workers: int,
             dask_address: str | None, *, stored: bool = True) -> Iterator[FaultRows]:  # fmt: skip
    """Each batch's rows as they complete, on the executor the arguments choose."""
    if dask_address is not None:
        return _on_dask(inputs, batches, dask_address)
    if workers == 1:
        return (evaluate_batch(inputs, b) for b in batches)
    return _pool_errors(_on_processes(inputs, batches, workers), stored=stored)


class CampaignInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a stored campaign: ``done`` of ``total`` faults are saved in
    ``database``; opening it again with ``resume=True`` finishes it."""

    def __init__(self, done: int, total: int, database: Path) -> None:
        super().__init__(f"{done:,} of {total:,} faults are saved in {database}")
        self.done, self.total, self.database = done, total, database


@dataclass(frozen=True, eq=False)
class StoredCampaign:
    """A finished campaign: every fault's row, the fault-free classes' correct count and the
    faults this call evaluated (the others were in the database already)."""

    rows: FaultRows
    golden_correct: int
    evaluated: int
    database: Path


# A chain of at least this many MACs per image runs on the graph engine, protected or not:
# measured on the zoo's chains (docs/benchmarks.md), the graph engine's sparse convolutions from
# the golden accumulators are 1.7-2.6x faster on AlexNet (90 M MACs), the chain engine's logit
# bounds 2.2-3.8x faster on LeNet-5 (0.28 M) and MLP-7 (1.9 M); on a protected AlexNet (150
# faults x 1,000 images) the graph engine is 1.42-2.09x faster with 0.6 % of the neurons split,
# under TMR or ranger, and 1.37-2.99x with 10 %.
GRAPH_ENGINE_MACS = 10_000_000


def fault_source(pnet: ProtectedNetwork, x: I8, labels: I64) -> FaultSource:
    """The fault source of neuron-output faults in ``pnet``: ``CampaignInputs`` for a chain,
    ``faults.graph_campaign.GraphCampaignInputs`` for a graph, and for a chain of
    ``GRAPH_ENGINE_MACS`` or more (the chain as a graph, with the same protection plan: the
    same rows, faster)."""
    from accelsim.faults.graph_campaign import GraphCampaignInputs

    net = pnet.net
    if isinstance(net, Network):
        if net.macs >= GRAPH_ENGINE_MACS:
            g = graph_from_network(net)
            return GraphCampaignInputs(g, x, labels, pnet.plan, dict(pnet.ranges))
        return CampaignInputs(pnet, x, labels)
    return GraphCampaignInputs(net, x, labels, pnet.plan, dict(pnet.ranges))


def neuron_faults(pnet: ProtectedNetwork, spec: FaultSpec) -> tuple[Population, FaultBatch]:
    """The fault population of the network under test and the sample ``spec`` asks for (seeded
    by ``spec.seed``): what every neuron-output campaign runs."""
    pop = build_population(pnet.net, pnet.plan, spec.kind, spec.n_bits)
    return pop, fault_batch(sample_faults(pop, spec, rng=np.random.default_rng(spec.seed)))


def run_stored(
    inputs: FaultSource,
    faults: FaultBatch,
    database: Path,
    settings: dict[str, Any],
    *,
    resume: bool = False,
    workers: int = 1,
    dask_address: str | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> StoredCampaign:
    """A whole campaign into the SQLite ``database`` (``store.open_store``: refused when it
    holds another campaign's settings, continued when ``resume``): the golden classes, every
    fault not stored yet, all rows. ``on_progress(n)``: n more faults are stored (first those
    stored before, when resuming). Ctrl-C raises :class:`CampaignInterrupted`."""
    positive_int("workers", workers)
    if dask_address is not None:
        check_reachable(dask_address)  # before the database exists: nothing to resume yet
    database = Path(database)
    con = open_store(database, settings, resume=resume, on_note=on_note)
    try:
        golden = golden_classes(inputs, in_process=dask_address is None and workers == 1)
        before = len(done_ids(con))
        if before and on_progress is not None:
            on_progress(before)
        try:
            rows = run_campaign(inputs, faults, con, workers=workers, dask_address=dask_address,
                                batch_size=batch_size, on_progress=on_progress)  # fmt: skip
        except KeyboardInterrupt:
            done = len(done_ids(con))
            raise CampaignInterrupted(done, len(faults), database) from None
    finally:
        con.close()
    correct = int((golden == inputs.labels).sum())
    return StoredCampaign(rows, correct, len(rows) - before, database)


def check_stored(rows: FaultRows, faults: FaultBatch, n_images: int, where: str) -> None:
    """Rows already in the database ``where`` are faults of this campaign with counts in range;
    a database edited or damaged otherwise is refused rather than resumed into wrong results."""
    if not len(rows):
        return
    order = np.argsort(faults.ids, kind="stable")
    if not len(order):
        raise AccelsimError(f"{where}: holds rows, but the campaign has no faults")
    found = np.minimum(np.searchsorted(faults.ids[order], rows.ids), len(order) - 1)
    pos = order[found]
    same = faults.ids[pos] == rows.ids
    for mine, theirs in ((rows.layer, faults.layer), (rows.neuron, faults.index),
                         (rows.copy, faults.copy), (rows.mask, faults.mask),
                         (rows.kind, faults.kind)):  # fmt: skip
        same &= mine == theirs[pos]
    same &= (rows.n_changed >= 0) & (rows.n_changed <= n_images)
    same &= (rows.n_correct >= 0) & (rows.n_correct <= n_images)
    if not same.all():
        bad = int(rows.ids[np.flatnonzero(~same)[0]])
        raise AccelsimError(
            f"{where}: row of fault {bad} is not this campaign's fault {bad} or its counts are "
            f"outside 0..{n_images} (an edited or damaged database): remove it to start again"
        )


def _on_processes(
    inputs: FaultSource, batches: list[FaultBatch], workers: int
) -> Iterator[FaultRows]:
    if FORK_WORKERS and batches:
        # the golden state once, here, with every core, and the kernels loaded from numba's
        # cache by one fault (its row is discarded; a worker evaluates it in its batch):
        # forked workers share both (the state's read-only pages
        # copy-on-write) instead of each building them after a fresh interpreter's imports
        evaluate_batch(inputs, batches[0].take([0]))
    with _deferred_sigint() as stop:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("fork" if FORK_WORKERS else "spawn"),
            initializer=_init_worker,
            initargs=(inputs, os.getpid()),
        )
        try:
            yield from _bounded(lambda b: pool.submit(_worker_batch, b), batches, 2 * workers, stop)
        except BaseException:  # Ctrl-C, an error, the caller stopped: running batches not awaited
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        # Every batch done: wait for the pool's manager thread to finish. Left running, it raced
        # Python 3.11's exit hook, which wakes it through a pipe the thread may close between the
        # hook's check and its write: "OSError: [Errno 9] Bad file descriptor" in two benchmark
        # scripts that exited right after their campaign (later CPythons lock it: gh-125451).
        pool.shutdown(wait=True)


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[threading.Event]:
    """While a process pool runs, Ctrl-C (SIGINT) only sets the event it yields, and the
    campaign raises KeyboardInterrupt at the next safe point. A KeyboardInterrupt raised inside
    ``concurrent.futures.wait`` can leave futures' locks held (it takes them one by one), and the
    interpreter's exit then waits forever for the pool's manager thread (seen in the interrupt
    torture test: 1 hang in 24). SIGINT that is ignored (a shell's background job), or a
    handler of the caller's own, is left as it is."""
    stop = threading.Event()
    mine = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if mine else None
    try:
        yield stop
    finally:
        if mine:
            signal.signal(signal.SIGINT, previous)
            if stop.is_set():  # a Ctrl-C after the last wait: delivered now, not lost
                signal.raise_signal(signal.SIGINT)


def _pool_errors(results: Iterator[FaultRows], *, stored: bool = True) -> Iterator[FaultRows]:
    try:
        yield from results
    except BrokenProcessPool:
        if not stored:
            raise ParameterError(
                "workers",
                "a worker process died (out of memory or killed); rerun, with "
                "fewer {parameter} if memory ran out",
            ) from None
        raise ParameterError(
            "resume",
            "a campaign worker process died (out of memory or killed); the faults finished so "
            "far are saved: rerun with {parameter} to finish",
            spelled="resume=True",
        ) from None


def _bounded(
    submit: Callable[[FaultBatch], Future],
    batches: list[FaultBatch],
    in_flight: int,
    stop: threading.Event | None = None,
) -> Iterator[FaultRows]:
    """Results as they complete, with at most ``in_flight`` batches submitted at a time;
    KeyboardInterrupt here, between two waits, once ``stop`` is set."""
    queue = iter(batches)
    running = {submit(b) for b in _take(queue, in_flight)}
    while running:
        finished, running = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
        if stop is not None and stop.is_set():
            stop.clear()
            raise KeyboardInterrupt
        for fut in finished:
            yield fut.result()
        running |= {submit(b) for b in _take(queue, len(finished))}


def _take(it: Iterator[FaultBatch], n: int) -> list[FaultBatch]:
    return [b for _, b in zip(range(n), it, strict=False)]


def _on_dask(inputs: FaultSource, batches: list[FaultBatch], address: str) -> Iterator[FaultRows]:
    from dask.distributed import Client, as_completed  # slow to import: only when used

    check_reachable(address)
    try:
        client = Client(address, timeout=30)
    except OSError as err:
        raise ParameterError(
            "dask_address", f"{{parameter}} {address}: cannot reach the scheduler ({err})"
        ) from None
    try:
        shared = client.scatter(inputs, broadcast=True)
        in_flight = 2 * max(1, sum(client.nthreads().values()))
        queue = iter(batches)
        pending = as_completed(
            [client.submit(evaluate_batch, shared, b, pure=False) for b in _take(queue, in_flight)]
        )
        for fut in pending:
            rows = fut.result()
            fut.release()
            for b in _take(queue, 1):
                pending.add(client.submit(evaluate_batch, shared, b, pure=False))
            yield rows
    finally:
        client.close()


def check_reachable(address: str) -> None:
    """Fail in seconds, not after the client's timeout, when nothing listens at ``address``."""
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ParameterError(
            "dask_address", f"{{parameter}}: expected tcp://HOST:PORT, got {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError, OverflowError) as err:
        raise ParameterError(
            "dask_address", f"{{parameter}} {address}: cannot reach the scheduler ({err})"
        ) from None
