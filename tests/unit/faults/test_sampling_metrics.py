"""Fault model, population and sampling, and the metrics' confidence intervals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from accelsim.config.workload import FaultKind, FaultSite, FaultSpec
from accelsim.config.workload import ProtectionMode as Mode
from accelsim.errors import AccelsimError
from accelsim.faults.metrics import mean_estimate, proportion_estimate, summarize
from accelsim.faults.model import Fault, apply_fault, fault_batch
from accelsim.faults.sampling import (
    Population,
    bit_choices,
    build_population,
    leveugle_size,
    sample_faults,
)
from accelsim.faults.store import FaultRows
from accelsim.protection.plan import plan_from_neurons

KIND = {k: i for i, k in enumerate(FaultKind)}


@pytest.mark.parametrize(("neurons", "paper"), [(2816, 6734), (4684, 7645), (103168, 9494)])
def test_leveugle_sizes_are_the_papers(neurons: int, paper: int) -> None:
    """DESIGN.md section 5: 6,734 / 7,645 / 9,494 for MLP-7, LeNet-5, AlexNet."""
    assert leveugle_size(neurons * 8, error_margin=0.01, confidence=0.95, p=0.5) == paper


def test_leveugle_never_exceeds_the_population() -> None:
    assert leveugle_size(100, error_margin=0.01, confidence=0.95, p=0.5) <= 100
    assert leveugle_size(1, error_margin=0.01, confidence=0.95, p=0.5) == 1


def test_fault_kinds_by_hand() -> None:
    v = np.array([0, 5, -1, 127, -128], np.int8)
    flip = apply_fault(v, 0b101, KIND[FaultKind.SINGLE_BIT])
    np.testing.assert_array_equal(flip, [5, 0, -6, 122, -123])
    np.testing.assert_array_equal(
        apply_fault(v, 0x80, KIND[FaultKind.SINGLE_BIT]), [-128, -123, 127, -1, 0]
    )
    np.testing.assert_array_equal(
        apply_fault(v, 0b100, KIND[FaultKind.STUCK_AT_0]), [0, 1, -5, 123, -128]
    )
    np.testing.assert_array_equal(
        apply_fault(v, 0b100, KIND[FaultKind.STUCK_AT_1]), [4, 5, -1, 127, -124]
    )
    f = Fault(FaultSite.NEURON_OUTPUT, 0, 3, 0, (6, 7), FaultKind.ADJACENT_BITS)
    assert f.mask == 0xC0
    np.testing.assert_array_equal(f.apply([1]), [np.int8(1 ^ -64)])


def test_bit_choices() -> None:
    assert bit_choices(FaultKind.SINGLE_BIT, 1) == tuple((b,) for b in range(8))
    assert bit_choices(FaultKind.ADJACENT_BITS, 3)[-1] == (5, 6, 7)
    assert len(bit_choices(FaultKind.ADJACENT_BITS, 3)) == 6
    assert len(bit_choices(FaultKind.RANDOM_BITS, 2)) == 28


def test_population_counts_copies_and_decodes_every_unit_once(tiny_net) -> None:
    protected = {0: [1, 5, 7], 4: [2]}
    for mode, extra in [(Mode.NONE, 0), (Mode.SPLIT, 1), (Mode.TMR, 2), (Mode.RANGER, 0)]:
        plan = plan_from_neurons(tiny_net, mode, {} if mode is Mode.NONE else protected)
        pop = build_population(tiny_net, plan, FaultKind.SINGLE_BIT, 1)
        n_prot = 0 if mode is Mode.NONE else 4
        assert pop.n_copies == tiny_net.n_neurons + extra * n_prot
        layer, index, copy, choice = pop.decode(np.arange(pop.size))
        units = set(
            zip(layer.tolist(), index.tolist(), copy.tolist(), choice.tolist(), strict=True)
        )
        assert len(units) == pop.size  # every (copy, bit) exactly once
        extra_units = [(lay, i) for lay, i, c, _ in units if c > 0]
        assert {(lay, i) for lay, i in extra_units} == (
            set() if extra == 0 else {(0, 1), (0, 5), (0, 7), (4, 2)}
        )
        assert max(c for _, _, c, _ in units) == extra


def _spec(samples, seed: int = 0) -> FaultSpec:
    return FaultSpec(
        FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, samples, 0.01, 0.95, 0.5, seed
    )


def test_sampling_is_uniform_without_replacement_and_seeded(tiny_net) -> None:
    plan = plan_from_neurons(tiny_net, Mode.NONE, {})
    pop = build_population(tiny_net, plan, FaultKind.SINGLE_BIT, 1)
    a = sample_faults(pop, _spec(300), rng=np.random.default_rng(5))
    b = sample_faults(pop, _spec(300), rng=np.random.default_rng(5))
    c = sample_faults(pop, _spec(300), rng=np.random.default_rng(6))
    assert a == b
    assert a != c
    assert len(set(a)) == 300
    assert len(sample_faults(pop, _spec("exhaustive"), rng=np.random.default_rng(0))) == pop.size
    # uniform: each bit position drawn about 300/8 times over many seeds (4 sigma)
    bits = np.array(
        [
            f.bits[0]
            for s in range(20)
            for f in sample_faults(pop, _spec(300), rng=np.random.default_rng(s))
        ]
    )
    counts = np.bincount(bits, minlength=8)
    assert np.all(np.abs(counts - 750) < 4 * math.sqrt(750))


def test_too_many_faults_is_a_clear_error(tiny_net) -> None:
    plan = plan_from_neurons(tiny_net, Mode.NONE, {})
    pop = build_population(tiny_net, plan, FaultKind.SINGLE_BIT, 1)
    with pytest.raises(AccelsimError, match="population holds only"):
        sample_faults(pop, _spec(pop.size + 1), rng=np.random.default_rng(0))


def test_fault_batch_round_trip() -> None:
    faults = [
        Fault(FaultSite.NEURON_OUTPUT, 2, 9, 1, (3,), FaultKind.STUCK_AT_1),
        Fault(FaultSite.NEURON_OUTPUT, 0, 0, 0, (0, 1), FaultKind.ADJACENT_BITS),
    ]
    b = fault_batch(faults, ids=[7, 8])
    assert b.ids.tolist() == [7, 8]
    assert b.mask.tolist() == [8, 3]
    assert b.take([1]).layer.tolist() == [0]


def _rows(n_changed, n_correct) -> FaultRows:
    n = len(n_changed)
    z = np.zeros(n, np.int64)
    return FaultRows(np.arange(n), z, z, z, z, z, np.array(n_changed), np.array(n_correct))


def test_summary_by_hand() -> None:
    rows = _rows([0, 10, 0, 30], [90, 85, 90, 60])
    s = summarize("all", rows, n_images=100, golden_correct=90, population=4)
    assert s.accuracy_loss_pp.value == pytest.approx((0 + 5 + 0 + 30) / 4)
    assert s.critical_rate.value == pytest.approx(0.1)
    assert s.faults_with_effect.value == 0.5
    # exhaustive: the population is known exactly
    for e in (s.accuracy_loss_pp, s.critical_rate, s.faults_with_effect):
        assert e.lo == e.hi == e.value


def test_intervals_shrink_with_the_finite_population_correction() -> None:
    values = np.random.default_rng(0).random(500)
    big = mean_estimate(values, 10**9, 0.95)
    small = mean_estimate(values, 1000, 0.95)
    se = values.std(ddof=1) / math.sqrt(500)
    assert big.half_width == pytest.approx(1.959964 * se, rel=1e-4)
    assert small.half_width == pytest.approx(big.half_width * math.sqrt(500 / 999), rel=1e-4)
    wilson = proportion_estimate(0, 500, 10**9, 0.95)
    assert wilson.lo == 0
    assert 0 < wilson.hi < 0.01


def test_intervals_cover_the_population_value_about_95_percent() -> None:
    """Draw many samples without replacement from a synthetic population; the 95 % intervals
    must cover the population mean in 95 % +- 4 sigma of the draws."""
    rng = np.random.default_rng(1)
    pop_n, n, trials = 5000, 400, 600
    per_fault = np.where(rng.random(pop_n) < 0.3, rng.random(pop_n), 0.0)
    effect = per_fault > 0
    hits_mean = hits_prop = 0
    for _ in range(trials):
        pick = rng.choice(pop_n, n, replace=False)
        e = mean_estimate(per_fault[pick], pop_n, 0.95)
        hits_mean += e.lo <= per_fault.mean() <= e.hi
        p = proportion_estimate(int(effect[pick].sum()), n, pop_n, 0.95)
        hits_prop += p.lo <= effect.mean() <= p.hi
    sigma = math.sqrt(0.95 * 0.05 / trials)
    for hits in (hits_mean, hits_prop):
        assert abs(hits / trials - 0.95) < 4 * sigma


def test_population_decode_handles_layers_without_protection() -> None:
    pop = Population((0, 2), (4, 3), (np.array([1, 3]), np.zeros(0, np.int64)), 1, ((0,), (1,)))
    assert pop.n_copies == 4 + 2 + 3
    layer, index, copy, _ = pop.decode(np.arange(pop.size))
    got = sorted(set(zip(layer.tolist(), index.tolist(), copy.tolist(), strict=True)))
    want = sorted(
        {(0, i, 0) for i in range(4)} | {(0, 1, 1), (0, 3, 1)} | {(2, i, 0) for i in range(3)}
    )
    assert got == want
    assert list(itertools.chain(bit_choices(FaultKind.STUCK_AT_0, 1))) == [(b,) for b in range(8)]
