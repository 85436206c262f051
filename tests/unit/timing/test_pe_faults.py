"""PE-datapath faults: the fold-level model equals a MAC-by-MAC emulation, and a stuck-at
fault hits exactly the neurons the schedule maps to its PE."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.arch import Dataflow, PEArraySpec
from accelsim.errors import AccelsimError
from accelsim.timing.pe_faults import SITE_BITS, PeFault, PeSite, check_fault, sample_pe_faults
from accelsim.timing.schedule import neurons_on_pe, schedule_layer
from accelsim.timing.values import layer_accumulators, layer_operands
from tests.unit.timing.mac_reference import emulate_layer

ARRAYS = [(3, 2), (2, 3)]


def _setup(tiny_net, tiny_images, layer_name, pe, protected, extra):
    from accelsim.functional.network import forward_all, quantize_images

    i = tiny_net.layer_index(layer_name)
    layer = tiny_net.layers[i]
    x = quantize_images(tiny_net, tiny_images[:1])
    h = x if i == 0 else forward_all(tiny_net, x, stop=i)[-1]
    ls = schedule_layer(layer, i, pe, protected, extra)
    starts = np.arange(ls.n_tiles, dtype=np.int64) * ls.fold.fold_cycles + 5
    return layer, h, ls, starts


def _compare(layer, h, ls, pe, starts, fault):
    n_copies = int(np.max(ls.copy + ls.stack))
    acc, edits = layer_accumulators(ls, pe, layer, h, n_copies, fault, starts)
    a, w = layer_operands(layer, h)
    tiles = list(
        zip(ls.row_fold, ls.col_fold, ls.copy, ls.stack, ls.stack_offset, starts, strict=True)
    )
    ref_acc, ref_edits = emulate_layer(a[0], w, tiles, pe, n_copies, fault, ls.fold.fold_cycles)
    np.testing.assert_array_equal(acc[:, 0], ref_acc, err_msg=str(fault))
    got = {
        (c, int(m), int(n))
        for c, ms, ns in edits
        for m, n in zip(*np.broadcast_arrays(ms, ns), strict=True)
    }
    assert got == ref_edits, fault


@pytest.mark.parametrize("dataflow", list(Dataflow))
@pytest.mark.parametrize("shape", ARRAYS)
@pytest.mark.parametrize("layer_name", ["c2", "d1"])
def test_transient_faults_equal_mac_level_emulation(
    tiny_net, tiny_images, rng, dataflow, shape, layer_name
):
    pe = PEArraySpec(*shape, dataflow)
    rec = tiny_net.layers[tiny_net.layer_index(layer_name)]
    protected = np.array([0, rec.out_size - 1, rec.out_size // 2])
    layer, h, ls, starts = _setup(tiny_net, tiny_images, layer_name, pe, protected, 1)
    end = int(starts[-1]) + ls.fold.fold_cycles
    for site in PeSite:
        for _ in range(40):
            fault = PeFault(
                site,
                int(rng.integers(pe.rows)),
                int(rng.integers(pe.cols)),
                int(rng.integers(SITE_BITS[site])),
                int(rng.integers(0, end + 2)),
            )
            _compare(layer, h, ls, pe, starts, fault)


@pytest.mark.parametrize("dataflow", list(Dataflow))
def test_permanent_faults_equal_mac_level_emulation(tiny_net, tiny_images, dataflow):
    pe = PEArraySpec(3, 2, dataflow)
    layer, h, ls, starts = _setup(tiny_net, tiny_images, "c2", pe, np.array([1, 6]), 2)
    for site in PeSite:
        for r in range(pe.rows):
            for c in range(pe.cols):
                for bit, stuck in ((0, 1), (SITE_BITS[site] - 1, 0), (3, 1)):
                    _compare(layer, h, ls, pe, starts, PeFault(site, r, c, bit, None, stuck))


@pytest.mark.parametrize("dataflow", list(Dataflow))
def test_stuck_output_register_hits_exactly_the_neurons_of_its_pe(tiny_net, tiny_images, dataflow):
    """Stuck-at-1 on bit 6 of PE (1, 0)'s output register: every neuron the schedule maps to
    that PE has bit 6 set, every other neuron keeps its fault-free value."""
    pe = PEArraySpec(3, 2, dataflow)
    layer, h, ls, starts = _setup(tiny_net, tiny_images, "c1", pe, None, 0)
    fault = PeFault(PeSite.OUTPUT_REGISTER, pe.rows - 1, 0, 6, None, 1)
    _, edits = layer_accumulators(ls, pe, layer, h, 1, fault, starts)
    hit = {
        (int(m), int(n))
        for _, ms, ns in edits
        for m, n in zip(*np.broadcast_arrays(ms, ns), strict=False)
    }
    copies, flat = neurons_on_pe(ls, pe, fault.row, fault.col, outputs_only=True)
    assert np.all(copies == 0)
    mapped = {(int(f % ls.gemm.m), int(f // ls.gemm.m)) for f in flat}
    assert hit == mapped
    assert len(mapped) > 0


def test_neurons_on_pe_partition_the_outputs(tiny_net):
    """In output stationary every output neuron is computed by exactly one PE."""
    pe = PEArraySpec(3, 2, Dataflow.OUTPUT_STATIONARY)
    layer = tiny_net.layers[0]
    ls = schedule_layer(layer, 0, pe, None, 0)
    seen = np.concatenate(
        [neurons_on_pe(ls, pe, r, c)[1] for r in range(pe.rows) for c in range(pe.cols)]
    )
    np.testing.assert_array_equal(np.sort(seen), np.arange(layer.out_size))


@pytest.mark.parametrize("index", [0, 4])  # c1: copies re-run; d1: copies stacked (os)
@pytest.mark.parametrize("flow", list(Dataflow))
def test_copies_of_a_neuron_sit_on_different_pes(tiny_net, flow, index):
    pe = PEArraySpec(3, 4, flow)
    layer = tiny_net.layers[index]
    protected = np.arange(0, layer.out_size, 7)
    ls = schedule_layer(layer, index, pe, protected, 2)
    owner: dict[int, set] = {}
    for r in range(pe.rows):
        for c in range(pe.cols):
            copies, flat = neurons_on_pe(ls, pe, r, c, outputs_only=True)
            for cp, f in zip(copies, flat, strict=True):
                if f in protected:
                    owner.setdefault(int(f), set()).add((cp, r, c))
    assert sorted(owner) == protected.tolist()
    for f, places in owner.items():
        assert len({cp for cp, _, _ in places}) == 3, f
        pes_by_copy = {cp: {(r, c) for k, r, c in places if k == cp} for cp in range(3)}
        for a in range(3):
            for b in range(a + 1, 3):
                assert not pes_by_copy[a] & pes_by_copy[b], (flow, f)


def test_fault_checks_and_sampling(rng):
    with pytest.raises(AccelsimError, match="outside the 4x4 array"):
        check_fault(PeFault(PeSite.ACCUMULATOR, 4, 0, 1, 3), 4, 4, 100)
    with pytest.raises(AccelsimError, match="8-bit output_register"):
        check_fault(PeFault(PeSite.OUTPUT_REGISTER, 0, 0, 8, 3), 4, 4, 100)
    with pytest.raises(AccelsimError, match="cycle 100 outside"):
        check_fault(PeFault(PeSite.ACCUMULATOR, 0, 0, 31, 100), 4, 4, 100)
    faults = sample_pe_faults(PeSite.ACCUMULATOR, 4, 5, 1000, 2000, permanent=False, rng=rng)
    rows = np.array([f.row for f in faults])
    bits = np.array([f.bit for f in faults])
    cycles = np.array([f.cycle for f in faults])
    assert rows.min() == 0
    assert rows.max() == 3
    assert bits.max() == 31
    assert cycles.max() < 1000
    assert abs(cycles.mean() - 499.5) < 4 * 1000 / np.sqrt(12 * 2000)
    again = sample_pe_faults(
        PeSite.ACCUMULATOR, 4, 5, 1000, 2000, permanent=False, rng=np.random.default_rng(1)
    )
    assert again == sample_pe_faults(
        PeSite.ACCUMULATOR, 4, 5, 1000, 2000, permanent=False, rng=np.random.default_rng(1)
    )


def test_fault_apply_flip_and_stuck():
    flip = PeFault(PeSite.OUTPUT_REGISTER, 0, 0, 7, 0)
    np.testing.assert_array_equal(flip.apply(np.array([5, -128, 127]), 8), [-123, 0, -1])
    stuck0 = PeFault(PeSite.ACCUMULATOR, 0, 0, 31, None, 0)
    np.testing.assert_array_equal(stuck0.apply(np.array([-1, 7]), 32), [2**31 - 1, 7])
