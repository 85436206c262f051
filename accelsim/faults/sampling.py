"""Which faults a campaign injects: the population, the Leveugle sample size, the sample.

The population of a network under test is every (neuron copy, bit choice) pair: the neurons of
every neuron layer (copy 0), then the extra copies of the protected neurons (split, DMR: one;
TMR: two), times the bit choices of the fault kind: 8 single bits (flip, stuck-at), 9 - k
positions of k adjacent bits, or C(8, k) sets of k random bits. Sampling is uniform over that
population without replacement (DESIGN.md section 5).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind, FaultSite, FaultSpec
from accelsim.errors import AccelsimError
from accelsim.faults.model import Fault
from accelsim.functional.models import AnyNetwork, layer_sizes
from accelsim.protection.plan import EXTRA_COPIES, ProtectionPlan

I64 = npt.NDArray[np.int64]
BITS = 8


def leveugle_size(population: int, *, error_margin: float, confidence: float, p: float) -> int:
    """Leveugle et al. (DATE 2009): ``n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p)))``, rounded up;
    t is the two-sided normal quantile of ``confidence`` (1.96 at 95 %)."""
    t = z_value(confidence)
    n = population / (1 + error_margin**2 * (population - 1) / (t * t * p * (1 - p)))
    return min(population, math.ceil(n - 1e-9))


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def bit_choices(kind: FaultKind, n_bits: int) -> tuple[tuple[int, ...], ...]:
    """The bit sets one neuron copy can take for this kind, in a fixed order."""
    if kind is FaultKind.ADJACENT_BITS:
        return tuple(tuple(range(b, b + n_bits)) for b in range(BITS - n_bits + 1))
    if kind is FaultKind.RANDOM_BITS:
        return tuple(itertools.combinations(range(BITS), n_bits))
    return tuple((b,) for b in range(BITS))


@dataclass(frozen=True, eq=False)
class Population:
    """Neuron copies per neuron layer: ``layers[k]`` has ``sizes[k]`` neurons (copy 0) and
    ``protected[k]`` (sorted flat indices) with ``extra_copies`` more copies each."""

    layers: tuple[int, ...]
    sizes: tuple[int, ...]
    protected: tuple[I64, ...]
    extra_copies: int
    choices: tuple[tuple[int, ...], ...]

    @property
    def units_per_layer(self) -> I64:
        return np.array(
            [
                s + self.extra_copies * p.size
                for s, p in zip(self.sizes, self.protected, strict=True)
            ],
            np.int64,
        )

    @property
    def n_copies(self) -> int:
        return int(self.units_per_layer.sum())

    @property
    def size(self) -> int:
        return self.n_copies * len(self.choices)

    def decode(self, samples: I64) -> tuple[I64, I64, I64, I64]:
        """Population indices -> (layer, neuron index, copy, bit-choice index) arrays."""
        samples = np.asarray(samples, np.int64)
        unit, choice = np.divmod(samples, len(self.choices))
        ends = np.cumsum(self.units_per_layer)
        k = np.searchsorted(ends, unit, side="right")
        u = unit - (ends[k] - self.units_per_layer[k])
        layer = np.asarray(self.layers, np.int64)[k]
        index, copy = u.copy(), np.zeros_like(u)
        for j in np.unique(k):
            rows = np.flatnonzero((k == j) & (u >= self.sizes[j]))
            if rows.size:
                extra = u[rows] - self.sizes[j]
                copy[rows] = 1 + extra // self.protected[j].size
                index[rows] = self.protected[j][extra % self.protected[j].size]
        return layer, index, copy, choice


def build_population(
    net: AnyNetwork, plan: ProtectionPlan, kind: FaultKind, n_bits: int
) -> Population:
    """The population of ``net`` (a chain or a graph) protected by ``plan`` (mode none: the
    network itself)."""
    empty = np.zeros(0, np.int64)
    sizes = layer_sizes(net)
    return Population(
        layers=tuple(sizes),
        sizes=tuple(sizes.values()),
        protected=tuple(empty if (p := plan.for_layer(i)) is None else p for i in sizes),
        extra_copies=EXTRA_COPIES[plan.mode],
        choices=bit_choices(kind, n_bits),
    )


def sample_size(spec: FaultSpec, population: Population) -> int:
    """How many faults ``spec.samples`` asks for on this population."""
    if spec.samples == "exhaustive":
        return population.size
    if spec.samples == "leveugle":
        return leveugle_size(
            population.size, error_margin=spec.error_margin, confidence=spec.confidence, p=spec.p
        )
    if spec.samples > population.size:
        raise AccelsimError(
            f"faults.samples: {spec.samples} faults asked for, but the population holds only "
            f"{population.size} (neuron copy, bit) pairs; use samples: exhaustive"
        )
    return int(spec.samples)


def sample_faults(
    population: Population, spec: FaultSpec, *, rng: np.random.Generator
) -> tuple[Fault, ...]:
    """A uniform sample without replacement, in population order (faults of a layer together,
    which is how they are evaluated best)."""
    n = sample_size(spec, population)
    if n == population.size:
        picks = np.arange(n, dtype=np.int64)
    else:
        picks = np.sort(rng.choice(population.size, size=n, replace=False)).astype(np.int64)
    layer, index, copy, choice = population.decode(picks)
    return tuple(
        Fault(FaultSite(spec.site), int(a), int(b), int(c), population.choices[d], spec.kind)
        for a, b, c, d in zip(layer, index, copy, choice, strict=True)
    )
