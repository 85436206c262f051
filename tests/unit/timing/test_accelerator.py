"""The SimPy model: exact timelines on tiny schedules, stalls, buffering and correction."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from accelsim.config.arch import BufferSpec, CorrectionSpec, Dataflow, OffchipSpec, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.protection.plan import plan_from_neurons
from accelsim.timing.schedule import schedule_network
from accelsim.timing.simulate import simulate, timing_overhead
from tests.unit.timing.conftest import arch_with

BIG = BufferSpec(1 << 20, 1 << 10, True)


@pytest.mark.parametrize("flow", list(Dataflow))
def test_ideal_memory_runs_folds_back_to_back(tiny_net, flow):
    arch = arch_with(PEArraySpec(3, 2, flow))
    log: list = []
    schedule, report = simulate(tiny_net, arch, ideal_memory=True, log=log)
    clock = 0
    for ls, lt, starts in zip(schedule.layers, report.layers, report.fold_starts, strict=True):
        if ls.fold is None:
            assert lt.total_cycles == lt.post_cycles == ls.post_cycles
            clock += lt.total_cycles
            continue
        np.testing.assert_array_equal(
            starts, clock + np.arange(ls.fold.folds) * ls.fold.fold_cycles
        )
        assert lt.compute_cycles == lt.total_cycles == ls.fold.cycles
        assert lt.stall_cycles == 0
        clock += lt.total_cycles
    assert report.total_cycles == clock
    folds = [e for e in log if e[2] == "fold"]
    assert [e[0] for e in folds] == [int(s) for st in report.fold_starts for s in st]


def test_pooling_cycles(tiny_net):
    """2x2 max-pool over (3, 9, 9) -> (3, 4, 4): 48 windows of 4 values on 2 lanes."""
    arch = arch_with(PEArraySpec(3, 2, Dataflow.OUTPUT_STATIONARY))
    _, report = simulate(tiny_net, arch, ideal_memory=True)
    assert report.layers[1].name == "p1"
    assert report.layers[1].post_cycles == 48 * 4 // 2


def test_first_fetch_then_back_to_back_when_operands_fit(tiny_net):
    """d1 (K 16, N 7) on a 1x4 array, output stationary: 2 folds of 16 + 1 + 4 - 2 = 19 cycles.
    Inputs (16 B) and weights (7 * 16 + 7 * 4 = 140 B) fit: one fetch of 156 B at 8 B/cycle
    (20 cycles) + 10 latency before the first fold; the last fold's 3 output bytes take 1 + 10
    cycles to drain."""
    arch = arch_with(
        PEArraySpec(1, 4, Dataflow.OUTPUT_STATIONARY),
        weights=BIG, inputs=BIG, outputs=BIG, offchip=OffchipSpec(8, 10),
    )  # fmt: skip
    schedule, report = simulate(tiny_net, arch)
    k = [ls.name for ls in schedule.layers].index("d1")
    lt, starts = report.layers[k], report.fold_starts[k]
    layer_start = sum(t.total_cycles for t in report.layers[:k])
    np.testing.assert_array_equal(starts - layer_start, [30, 49])
    assert lt.total_cycles == 30 + 2 * 19 + 11
    assert lt.compute_cycles == 38
    assert lt.stall_cycles == 30 + 11
    assert lt.offchip_read_bytes == 156
    assert lt.offchip_write_bytes == 7
    # the array streams 1 x 16 inputs and 4 (then 3) x (16 + 4 bias) weight bytes per fold
    assert lt.buffer_read_bytes == 2 * 16 + 4 * 20 + 3 * 20
    assert lt.buffer_write_bytes == 4 + 3


def test_double_buffering_hides_fetches(tiny_net):
    """Weights that do not fit are fetched per fold; with two slots the next fold's fetch
    overlaps this fold's compute."""
    small_w = {"capacity_bytes": 64, "bandwidth_bytes_per_cycle": 64}
    totals = {}
    for double in (True, False):
        arch = arch_with(
            PEArraySpec(1, 2, Dataflow.OUTPUT_STATIONARY),
            weights=BufferSpec(**small_w, is_double_buffered=double),
            inputs=BufferSpec(1 << 20, 64, double),
            outputs=BIG,
            offchip=OffchipSpec(4, 0),
        )
        schedule, report = simulate(tiny_net, arch)
        k = [ls.name for ls in schedule.layers].index("d1")
        lt = report.layers[k]
        assert lt.offchip_read_bytes == 16 + 7 * 16 + 7 * 4  # every weight once, per fold
        totals[double] = lt
    assert totals[True].total_cycles < totals[False].total_cycles
    assert totals[True].compute_cycles == totals[False].compute_cycles
    assert totals[True].stall_cycles < totals[False].stall_cycles


def test_slow_buffer_stretches_folds(tiny_net):
    """Weight stationary streams M * rows input bytes per fold; at 1 B/cycle a fold of c1
    (M 81, 3 rows) needs 243 cycles instead of 2 * 3 + 2 + 81 - 2 = 87."""
    arch = arch_with(
        PEArraySpec(3, 2, Dataflow.WEIGHT_STATIONARY),
        inputs=BufferSpec(1 << 20, 1, True), weights=BIG, outputs=BIG,
    )  # fmt: skip
    _, report = simulate(tiny_net, arch, ideal_memory=False)
    c1 = report.layers[0]
    assert c1.compute_cycles == 3 * 2 * 87
    assert c1.total_cycles >= 3 * 2 * 243


def test_correction_stage_after_protected_folds(tiny_net):
    """TMR of d1's 7 neurons on a 1x4 os array: both folds re-run twice; the voter (2 lanes,
    latency 3) takes ceil(4 / 2) + 3 and ceil(3 / 2) + 3 cycles."""
    arch = arch_with(
        PEArraySpec(1, 4, Dataflow.OUTPUT_STATIONARY),
        correction=CorrectionSpec(8, 1, 2, 3),
    )
    plan = plan_from_neurons(tiny_net, ProtectionMode.TMR, {4: np.arange(7)})
    schedule, report = simulate(tiny_net, arch, plan=plan, ideal_memory=True)
    k = [ls.name for ls in schedule.layers].index("d1")
    lt = report.layers[k]
    assert lt.tiles == 6
    assert lt.copy_tiles == 4
    assert lt.compute_cycles == 6 * 19
    assert lt.correction_cycles == 2 + 2
    assert lt.correction_exposed_cycles == 2 + 3  # the last batch ends after the last fold
    assert lt.total_cycles == 6 * 19 + 5
    assert lt.copy_bytes == 2 * 7
    _, base = simulate(tiny_net, arch, ideal_memory=True)
    over = timing_overhead(report, base)
    assert over.compute_percent == pytest.approx(
        100 * (report.total("compute_cycles") / base.total("compute_cycles") - 1)
    )
    assert over.cycles_percent > 0


def test_protection_schedules_the_mode_copies(tiny_net):
    arch = arch_with(PEArraySpec(4, 4, Dataflow.OUTPUT_STATIONARY))
    split = plan_from_neurons(tiny_net, ProtectionMode.SPLIT, {0: [0, 1, 2]})
    tmr = plan_from_neurons(tiny_net, ProtectionMode.TMR, {0: [0, 1, 2]})
    ranger = plan_from_neurons(tiny_net, ProtectionMode.RANGER, {0: [0, 1, 2]})
    n = {}
    for plan in (split, tmr, ranger):
        schedule, _ = simulate(tiny_net, arch, plan=plan, ideal_memory=True)
        n[plan.mode] = int(np.count_nonzero(schedule.layers[0].copy))
    assert n == {ProtectionMode.SPLIT: 1, ProtectionMode.TMR: 2, ProtectionMode.RANGER: 0}
    base = schedule_network(tiny_net, arch)
    assert base.compute_cycles < simulate(tiny_net, arch, plan=tmr)[0].compute_cycles
    assert math.isclose(
        base.compute_cycles, simulate(tiny_net, arch, plan=ranger)[0].compute_cycles
    )


def test_one_pe_cannot_hold_separate_copies(tiny_net):
    from accelsim.errors import AccelsimError

    arch = arch_with(PEArraySpec(1, 1, Dataflow.OUTPUT_STATIONARY))
    plan = plan_from_neurons(tiny_net, ProtectionMode.SPLIT, {0: [0]})
    with pytest.raises(AccelsimError, match="cannot place 2 copies"):
        simulate(tiny_net, arch, plan=plan)


def test_same_inputs_same_report(tiny_net):
    arch = arch_with(PEArraySpec(2, 3, Dataflow.WEIGHT_STATIONARY))
    a = simulate(tiny_net, arch)[1]
    b = simulate(tiny_net, arch)[1]
    assert a.layers == b.layers
    assert dataclasses.asdict(a.layers[0]) == dataclasses.asdict(b.layers[0])


@pytest.mark.parametrize(("lcu_latency", "d2_start"), [(1, 37), (30, 51)])
def test_complete_event_log_of_a_tiny_protected_network(lcu_latency, d2_start):
    """Every event of one inference, written out by hand. Network: flatten, d1 (4 -> 3),
    d2 (3 -> 2); d1's neuron 0 split. Array 2x2 output stationary, large buffers, off-chip
    8 B/cycle with a 10-cycle read latency, LCU 8 lanes with latency 1.

    d1: M 1 x N 3 -> ceil(3 / 2) = 2 folds of K + R + C - 2 = 4 + 2 + 2 - 2 = 6 cycles; the
    split copy of neuron 0 takes the idle second row of fold 0 (no extra fold). Its operands
    fit: one fetch of 4 input + 3 x 4 weight + 3 x 4 bias = 28 B = 4 cycles + 10 latency, so
    fold 0 starts at 14 and ends at 20, when the LCU takes its 1 protected neuron (1 + 1
    cycles, done at 22) and fold 1 runs 20..26. Write-backs: 2 B at 20..21, 1 B at 26..27,
    the last one lands 10 cycles later: d1 is drained and corrected at 37.
    d2: 3 + 2 x 3 + 2 x 4 = 17 B = 3 cycles + 10, so its one fold of 3 + 2 + 2 - 2 = 5 cycles
    runs 50..55; its 2 B go out at 55..56 and land at 66. With an LCU latency of 30 the
    correction (20 + 1 + 30 = 51) outlasts the drain: d2 starts at 51 and everything after
    moves by 14 cycles."""
    from accelsim.functional.layers import Flatten
    from accelsim.functional.network import Network
    from tests.conftest import make_dense

    d1 = make_dense("d1", np.ones((3, 4)), np.zeros(3), 1.0, True)
    d2 = make_dense("d2", np.ones((2, 3)), np.zeros(2), 1.0, False)
    net = Network(
        "hand", "mnist", (1, 1, 4), 1.0, (0.0,), (1.0,), (Flatten("f", (1, 1, 4)), d1, d2)
    )
    arch = arch_with(PEArraySpec(2, 2, Dataflow.OUTPUT_STATIONARY), weights=BIG, inputs=BIG,
                     outputs=BIG, offchip=OffchipSpec(8, 10),
                     correction=CorrectionSpec(8, lcu_latency, 8, 1))  # fmt: skip
    log: list = []
    plan = plan_from_neurons(net, ProtectionMode.SPLIT, {1: [0]})
    _, report = simulate(net, arch, plan=plan, log=log)
    assert log == [
        (0, "Controller", "layer_start", 1),
        (14, "PEArray", "fold", 1),
        (20, "CorrectionStage", "correct", 1),
        (20, "PEArray", "fold", 1),
        (d2_start, "Controller", "layer_start", 2),
        (d2_start + 13, "PEArray", "fold", 2),
    ]
    d1_cycles, d2_cycles = d2_start, 13 + 5 + 1 + 10
    assert [(t.total_cycles, t.compute_cycles) for t in report.layers] == [
        (d1_cycles, 12), (d2_cycles, 5)]  # fmt: skip
    assert report.total_cycles == d1_cycles + d2_cycles


@pytest.mark.parametrize(
    ("mode", "busy"),
    [(ProtectionMode.SPLIT, 3), (ProtectionMode.DMR_AND, 3), (ProtectionMode.RANGER, 3),
     (ProtectionMode.ZERO, 3), (ProtectionMode.TMR, 2), (ProtectionMode.DMR_RECOMPUTE, 2)],
)  # fmt: skip
def test_each_mode_is_corrected_by_its_own_unit(tiny_net, mode, busy):
    """5 protected neurons of d1 finish in one fold: the LCU (2 lanes, latency 7) takes
    ceil(5 / 2) = 3 busy cycles, the voter (3 lanes, latency 11) ceil(5 / 3) = 2. Split,
    DMR-AND, Ranger and zeroing use the LCU; TMR and DMR-recompute the voter."""
    from accelsim.timing.accelerator import CORRECTION_UNIT, CorrectionUnit

    assert set(CORRECTION_UNIT) == set(ProtectionMode) - {ProtectionMode.NONE}
    arch = arch_with(PEArraySpec(8, 8, Dataflow.OUTPUT_STATIONARY), weights=BIG, inputs=BIG,
                     outputs=BIG, correction=CorrectionSpec(2, 7, 3, 11))  # fmt: skip
    d1 = [layer.name for layer in tiny_net.layers].index("d1")
    plan = plan_from_neurons(tiny_net, mode, {d1: [0, 1, 2, 3, 4]})
    log: list = []
    _, report = simulate(tiny_net, arch, plan=plan, log=log, ideal_memory=True)
    assert [e[3] for e in log if e[2] == "correct"] == [5]
    k = [lt.name for lt in report.layers].index("d1")
    assert report.layers[k].correction_cycles == busy
    latency = 7 if CORRECTION_UNIT[mode] is CorrectionUnit.LCU else 11
    assert report.layers[k].correction_exposed_cycles == busy + latency
