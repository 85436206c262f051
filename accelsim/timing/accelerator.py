"""The accelerator of the paper's Fig. 1 as a SimPy discrete-event model.

Components (one SimPy process each, talking only through ports):

- ``Controller.issue``: for each layer (after the previous one is drained and corrected) and
  each fold (``Controller.fetch``), takes a buffer slot (two when operand buffers are double
  buffered, so the next fold's operands arrive while this one computes), moves the fold's
  operand slices from off-chip memory into the input and weight buffers (once per layer when
  the whole operand fits), and hands the fold to the array.
- ``PEArray.compute``: one fold at a time, ``fold_cycles`` long (SCALE-Sim's count), stretched
  when a buffer cannot stream the fold's operands at its bandwidth; finished outputs go to the
  output buffer and protected neurons to the correction stage.
- ``OutputDrain.drain``: writes output-buffer contents back off-chip.
- ``CorrectionStage.correct``: LCU (split) or voter (TMR) lanes, ``ceil(n / lanes)`` cycles plus
  the pipeline latency per batch of finished protected neurons.
- Pooling layers run on the activation/pooling unit (``post_cycles``) between two layers.

Off-chip transfers share one channel of ``offchip.bandwidth_bytes_per_cycle`` with a fixed
latency. ``simulate(..., ideal_memory=True)`` makes every transfer free, which is SCALE-Sim's
``InterfaceBandwidth: CALC`` setting: total cycles are then the compute cycles (plus any
correction), and the two tools agree layer by layer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import simpy

from accelsim.config.arch import ArchSpec, BufferSpec
from accelsim.config.workload import ProtectionMode
from accelsim.protection.plan import EXTRA_COPIES
from accelsim.timing.schedule import LayerSchedule, Schedule

EventLog = list[tuple[int, str, str, int]]
_END = -1  # sentinel: the layer's last fold went through


@dataclass
class _Stats:
    """Per-layer counters the processes fill in (mutable only inside ``simulate``)."""

    start: int = 0
    end: int = 0
    compute: int = 0
    correction_busy: int = 0
    correction_end: int = 0
    compute_end: int = 0
    offchip_input: int = 0
    offchip_weight: int = 0
    offchip_output: int = 0
    buffer_read: int = 0
    buffer_write: int = 0
    peak_input: int = 0
    peak_weight: int = 0
    peak_output: int = 0
    fold_starts: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LayerTiming:
    """One layer on the accelerator. Cycles: ``total = compute + stall + correction_exposed +
    post`` (stalls: waiting for operands, output space or bandwidth)."""

    layer: int
    name: str
    tiles: int
    copy_tiles: int
    compute_cycles: int
    stall_cycles: int
    correction_cycles: int  # busy cycles of the LCU / voter lanes
    correction_exposed_cycles: int  # after the last fold, waiting for the correction stage
    post_cycles: int  # pooling unit
    total_cycles: int
    macs: int  # MACs issued to the array, copies included
    utilisation: float  # macs / (total_cycles * PEs)
    offchip_read_bytes: int
    offchip_write_bytes: int
    buffer_read_bytes: int  # operand bytes the array streams from the input and weight buffers
    buffer_write_bytes: int  # output (and partial-sum) bytes it writes to the output buffer
    peak_input_bytes: int
    peak_weight_bytes: int
    peak_output_bytes: int
    weight_bytes: int  # int8 weights + int32 biases held for this layer
    copy_bytes: int  # extra int8 copies of protected neurons held until corrected
    oversized: tuple[str, ...] = ()  # buffers whose peak demand exceeds their capacity
    held_bytes: int = 0  # graphs: earlier tensors still awaiting a later reader (skip tensors)


@dataclass(frozen=True, eq=False)
class TimingReport:
    """The run: one ``LayerTiming`` per scheduled layer, and when each fold started (int64 per
    scheduled layer; empty for pooling), which places transient PE faults."""

    arch: str
    network: str
    mode: ProtectionMode
    layers: tuple[LayerTiming, ...]
    ideal_memory: bool
    fold_starts: tuple[npt.NDArray[np.int64], ...]
    pes: int  # processing elements of the array

    @property
    def utilisation(self) -> float:
        """MACs issued / (cycles x PEs) over the whole run."""
        return self.total("macs") / (self.total_cycles * self.pes) if self.total_cycles else 0.0

    @property
    def total_cycles(self) -> int:
        return sum(t.total_cycles for t in self.layers)

    def total(self, field: str) -> int:
        return sum(getattr(t, field) for t in self.layers)

    @property
    def footprint_bytes(self) -> int:
        """Weights and biases of every layer plus the largest input + output (+ copies, + held
        skip tensors) occupancy of any layer."""
        return self.total("weight_bytes") + max(
            (t.peak_input_bytes + t.peak_output_bytes + t.copy_bytes + t.held_bytes
             for t in self.layers),
            default=0,
        )  # fmt: skip


def _stream_cycles(nbytes: int, buf: BufferSpec, ideal: bool) -> int:
    return 0 if ideal or nbytes == 0 else math.ceil(nbytes / buf.bandwidth_bytes_per_cycle)


class OffchipChannel:
    """The one off-chip memory channel, shared by operand fetches and output write-backs."""

    def __init__(self, env: simpy.Environment, arch: ArchSpec, ideal: bool) -> None:
        self.env, self.spec, self.ideal = env, arch.offchip, ideal
        self.bus = simpy.Resource(env, capacity=1)

    def transfer(self, nbytes: int, *, posted: bool = False) -> Generator[simpy.Event, Any, None]:
        """Hold the channel for the bytes, then wait the latency (reads); a posted write
        returns as soon as its bytes are on the channel."""
        if self.ideal or nbytes <= 0:
            return
        with self.bus.request() as req:
            yield req
            yield self.env.timeout(math.ceil(nbytes / self.spec.bandwidth_bytes_per_cycle))
        if self.spec.latency_cycles and not posted:
            yield self.env.timeout(self.spec.latency_cycles)


@dataclass
class _Ports:
    offchip: OffchipChannel
    slots: simpy.Container  # free operand-buffer slots (2 when double buffered)
    ready: simpy.Store  # folds whose operands are in the buffers
    outputs: simpy.Store  # bytes to write back off-chip
    correct: simpy.Store  # protected neurons to correct
    drained: simpy.Store  # layer index, once its outputs are off-chip
    layer_done: simpy.Store  # layer index, once drained and corrected


class _Component:
    def __init__(
        self, env: simpy.Environment, schedule: Schedule, arch: ArchSpec, ports: _Ports,
        stats: list[_Stats], log: EventLog | None, ideal: bool,
    ) -> None:  # fmt: skip
        self.env, self.schedule, self.arch, self.ports = env, schedule, arch, ports
        self.stats, self.log, self.ideal = stats, log, ideal
        self.proc = env.process(self.process())

    def note(self, event: str, payload: int) -> None:
        if self.log is not None:
            self.log.append((int(self.env.now), type(self).__name__, event, payload))

    def process(self) -> Generator[simpy.Event, Any, None]:  # pragma: no cover - abstract
        """The component's SimPy process: its hardware verb (``issue``, ``compute``, ...)."""
        raise NotImplementedError


def _usable(buf: BufferSpec) -> int:
    return buf.capacity_bytes // (2 if buf.is_double_buffered else 1)


class Controller(_Component):
    """Issues folds layer by layer: fetches their operands, then queues them for the array."""

    def process(self) -> Generator[simpy.Event, Any, None]:
        return self.issue()

    def issue(self) -> Generator[simpy.Event, Any, None]:
        p, env = self.ports, self.env
        for k, ls in enumerate(self.schedule.layers):
            st = self.stats[k]
            st.start = env.now
            self.note("layer_start", ls.layer)
            if ls.fold is None:  # pooling on the activation/pooling unit
                yield from p.offchip.transfer(ls.layer_input_bytes)
                yield env.timeout(ls.post_cycles)
                yield from p.offchip.transfer(ls.layer_output_bytes)
                # windows stream through the pooling unit: nothing is held in the buffers
                st.offchip_input, st.offchip_output = ls.layer_input_bytes, ls.layer_output_bytes
            else:
                yield from self.fetch(ls, st)
                yield p.layer_done.get()
            st.end = env.now

    def fetch(self, ls: LayerSchedule, st: _Stats) -> Generator[simpy.Event, Any, None]:
        """Operands of every fold of one layer; whole operands once when they fit a buffer."""
        p = self.ports
        resident_in = ls.layer_input_bytes <= _usable(self.arch.inputs)
        resident_w = ls.layer_weight_bytes <= _usable(self.arch.weights)
        st.peak_input = ls.layer_input_bytes if resident_in else 2 * int(ls.input_bytes.max())
        st.peak_weight = ls.layer_weight_bytes if resident_w else 2 * int(ls.weight_bytes.max())
        for t in range(ls.n_tiles):
            yield p.slots.get(1)
            in_b = w_b = 0
            if ls.copy[t] == 0:  # copies re-use the operands already in the buffers
                in_b = (ls.layer_input_bytes if t == 0 else 0) if resident_in else ls.input_bytes[t]
                w_b = (ls.layer_weight_bytes if t == 0 else 0) if resident_w else ls.weight_bytes[t]
            st.offchip_input += int(in_b)
            st.offchip_weight += int(w_b)
            yield from p.offchip.transfer(int(in_b + w_b))
            yield p.ready.put(t)
        yield p.ready.put(_END)


class PEArray(_Component):
    """Computes folds; stretches a fold when a buffer cannot stream its operands in time."""

    def process(self) -> Generator[simpy.Event, Any, None]:
        return self.compute()

    def compute(self) -> Generator[simpy.Event, Any, None]:
        p, env, a = self.ports, self.env, self.arch
        for k, ls in enumerate(self.schedule.layers):
            if ls.fold is None:
                continue
            st = self.stats[k]
            base = ls.fold.fold_cycles
            st.peak_output = (2 if a.outputs.is_double_buffered else 1) * int(ls.output_bytes.max())
            while (t := (yield p.ready.get())) != _END:
                self.note("fold", ls.layer)
                st.fold_starts.append(int(env.now))
                stream = max(
                    _stream_cycles(int(ls.input_bytes[t]), a.inputs, self.ideal),
                    _stream_cycles(int(ls.weight_bytes[t]), a.weights, self.ideal),
                    _stream_cycles(int(ls.output_bytes[t]), a.outputs, self.ideal),
                )
                yield env.timeout(max(base, stream))
                st.compute += base  # a stretched fold's extra cycles count as stall
                stacked = int(ls.stack[t])
                st.buffer_read += int(ls.input_bytes[t] + ls.weight_bytes[t])
                st.buffer_write += stacked * int(ls.output_bytes[t])
                yield p.slots.put(1)
                if ls.writeback_bytes[t]:
                    yield p.outputs.put(int(ls.writeback_bytes[t]))
                if ls.protected[t]:
                    yield p.correct.put(int(ls.protected[t]))
            st.compute_end = env.now
            yield p.outputs.put(_END)
            yield p.correct.put(_END)


class OutputDrain(_Component):
    """Writes the final int8 outputs of finished folds off-chip as posted writes; a layer is
    drained when its last write has landed (one latency after it left)."""

    def process(self) -> Generator[simpy.Event, Any, None]:
        return self.drain()

    def drain(self) -> Generator[simpy.Event, Any, None]:
        p = self.ports
        latency = 0 if self.ideal else self.arch.offchip.latency_cycles
        for k, ls in enumerate(self.schedule.layers):
            if ls.fold is None:
                continue
            while (nbytes := (yield p.outputs.get())) != _END:
                yield from p.offchip.transfer(nbytes, posted=True)
                self.stats[k].offchip_output += nbytes
            if self.stats[k].offchip_output and latency:
                yield self.env.timeout(latency)
            yield p.drained.put(k)


class CorrectionUnit(enum.Enum):
    """The hardware that merges a protected neuron's copies (``arch.correction``'s lanes)."""

    LCU = "lcu"
    VOTER = "voter"


# Each protection mode's timed correction: split merges its halves in the LCU, DMR-AND ANDs its
# two copies with the LCU's gates, Ranger and zeroing check the value against its profiled range
# in the LCU lanes; TMR votes, and DMR-recompute compares its two copies in the voter lanes (a
# mismatch's recomputation is not timed: the model times fault-free inference).
CORRECTION_UNIT = {
    ProtectionMode.SPLIT: CorrectionUnit.LCU,
    ProtectionMode.SPLIT_CLAMPED: CorrectionUnit.LCU,
    ProtectionMode.DMR_AND: CorrectionUnit.LCU,
    ProtectionMode.RANGER: CorrectionUnit.LCU,
    ProtectionMode.ZERO: CorrectionUnit.LCU,
    ProtectionMode.TMR: CorrectionUnit.VOTER,
    ProtectionMode.DMR_RECOMPUTE: CorrectionUnit.VOTER,
}


def correction_register_bytes(mode: ProtectionMode, arch: ArchSpec) -> int:
    """The correction stage's input registers for ``mode``: one int8 per copy per lane (none
    for the unprotected network)."""
    if mode is ProtectionMode.NONE:
        return 0
    lanes, _ = correction_lanes(mode, arch)
    return lanes * (1 + EXTRA_COPIES[mode])


def correction_lanes(mode: ProtectionMode, arch: ArchSpec) -> tuple[int, int]:
    """(lanes, latency cycles) of the unit that corrects ``mode``'s protected neurons."""
    corr = arch.correction
    if CORRECTION_UNIT.get(mode) is CorrectionUnit.VOTER:
        return corr.voter_lanes, corr.voter_latency_cycles
    return corr.lcu_lanes, corr.lcu_latency_cycles  # NONE protects nothing: never used


class CorrectionStage(_Component):
    """LCU or voter lanes: corrects the protected neurons each finished fold hands over, then
    writes the corrected value back to the neuron's slot (both copies' slots for split)."""

    def process(self) -> Generator[simpy.Event, Any, None]:
        return self.correct()

    def correct(self) -> Generator[simpy.Event, Any, None]:
        p, env = self.ports, self.env
        lanes, latency = correction_lanes(self.schedule.mode, self.arch)
        for k, ls in enumerate(self.schedule.layers):
            if ls.fold is None:
                continue
            st = self.stats[k]
            while (n := (yield p.correct.get())) != _END:
                self.note("correct", n)
                busy = -(-n // lanes)
                yield env.timeout(busy + latency)
                st.correction_busy += busy
            st.correction_end = env.now
            yield p.drained.get()
            yield p.layer_done.put(k)


def _oversized(st: _Stats, arch: ArchSpec) -> tuple[str, ...]:
    """Buffers whose peak demand exceeds their capacity: the model then streams the slices
    through them (no blocking), which real hardware would have to tile further."""
    peaks = {"inputs": st.peak_input, "weights": st.peak_weight, "outputs": st.peak_output}
    return tuple(n for n, b in peaks.items() if b > getattr(arch, n).capacity_bytes)


def _layer_timing(ls: LayerSchedule, st: _Stats, arch: ArchSpec, extra: int) -> LayerTiming:
    pes = arch.pe_array.rows * arch.pe_array.cols
    total = st.end - st.start
    exposed = max(0, st.correction_end - st.compute_end) if ls.fold is not None else 0
    post = ls.post_cycles
    # every fold computes its share of the layer's MACs once per copy it holds (stacked copies)
    macs = ls.n_tiles and ls.gemm.m * ls.gemm.n * ls.gemm.k * int(ls.stack.sum()) // ls.fold.folds
    return LayerTiming(
        layer=ls.layer,
        name=ls.name,
        tiles=ls.n_tiles,
        copy_tiles=int(np.count_nonzero(ls.copy)),
        compute_cycles=st.compute,
        stall_cycles=total - st.compute - exposed - post,
        correction_cycles=st.correction_busy,
        correction_exposed_cycles=exposed,
        post_cycles=post,
        total_cycles=total,
        macs=int(macs),
        utilisation=float(macs / (total * pes)) if total else 0.0,
        offchip_read_bytes=st.offchip_input + st.offchip_weight,
        offchip_write_bytes=st.offchip_output,
        buffer_read_bytes=st.buffer_read,
        buffer_write_bytes=st.buffer_write,
        peak_input_bytes=st.peak_input,
        peak_weight_bytes=st.peak_weight,
        peak_output_bytes=st.peak_output,
        weight_bytes=ls.layer_weight_bytes,
        copy_bytes=int(ls.protected.sum()) * extra,
        oversized=_oversized(st, arch),
        held_bytes=ls.held_bytes,
    )


def simulate_schedule(
    schedule: Schedule, *, ideal_memory: bool = False, log: EventLog | None = None
) -> TimingReport:
    """Run the discrete-event model over a schedule; ``log`` collects (cycle, component, event,
    payload) records when given."""
    env = simpy.Environment()
    arch = schedule.arch
    slots = 2 if arch.inputs.is_double_buffered else 1
    ports = _Ports(
        OffchipChannel(env, arch, ideal_memory),
        simpy.Container(env, capacity=slots, init=slots),
        *(simpy.Store(env) for _ in range(5)),
    )
    stats = [_Stats() for _ in schedule.layers]
    args = (env, schedule, arch, ports, stats, log, ideal_memory)
    for component in (Controller, PEArray, OutputDrain, CorrectionStage):
        component(*args)
    env.run()
    return TimingReport(
        arch.name,
        schedule.network,
        schedule.mode,
        tuple(
            _layer_timing(ls, st, arch, schedule.extra_copies)
            for ls, st in zip(schedule.layers, stats, strict=True)
        ),
        ideal_memory,
        tuple(np.asarray(st.fold_starts, np.int64) for st in stats),
        arch.pe_array.rows * arch.pe_array.cols,
    )
