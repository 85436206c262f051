"""Campaign metrics with 95 % confidence intervals (DESIGN.md section 5), overall, per layer and
per bit.

Faults are a sample without replacement from a finite population, so every interval carries the
finite-population correction ``sqrt((N - n) / (N - 1))`` (an exhaustive campaign is exact, width
0). Images are not independent trials: they share the fault, so the accuracy loss and the
critical-fault rate are means over faults of per-fault values, with the across-fault standard
error (cluster sampling). The fraction of faults that change at least one image is a proportion
over faults: Wilson score interval on the effective sample size ``n (N - 1) / (N - n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.faults.sampling import z_value
from accelsim.faults.store import FaultRows

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its interval [lo, hi]."""

    value: float
    lo: float
    hi: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


@dataclass(frozen=True)
class Summary:
    """Metrics of a group of faults (all, one layer, one bit): accuracy loss in percentage
    points, critical-fault rate and fraction of faults changing >= 1 image, as fractions."""

    group: str
    n_faults: int
    population: int
    accuracy_loss_pp: Estimate
    critical_rate: Estimate
    faults_with_effect: Estimate


def _fpc(n: int, population: int) -> float:
    return math.sqrt((population - n) / (population - 1)) if population > 1 else 0.0


def mean_estimate(values: F64, population: int, confidence: float) -> Estimate:
    """Mean of per-fault values with a normal interval and the finite-population correction."""
    n = values.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if n == 1 or n >= population:
        return (
            Estimate(mean, mean, mean) if n >= population else Estimate(mean, -math.inf, math.inf)
        )
    half = z_value(confidence) * float(values.std(ddof=1)) / math.sqrt(n) * _fpc(n, population)
    return Estimate(mean, mean - half, mean + half)


def proportion_estimate(k: int, n: int, population: int, confidence: float) -> Estimate:
    """Wilson score interval for k successes in n draws without replacement from population."""
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    p = k / n
    if n >= population:
        return Estimate(p, p, p)
    n_eff = n / _fpc(n, population) ** 2
    z = z_value(confidence)
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z / (1 + z * z / n_eff) * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff**2))
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def summarize(
    group: str,
    rows: FaultRows,
    *,
    n_images: int,
    golden_correct: int,
    population: int,
    confidence: float = 0.95,
) -> Summary:
    """The three metrics of the faults in ``rows`` (a sample of ``population``)."""
    loss = 100.0 * (golden_correct - rows.n_correct.astype(np.float64)) / n_images
    rate = rows.n_changed.astype(np.float64) / n_images
    effect = int((rows.n_changed > 0).sum())
    return Summary(
        group,
        len(rows),
        population,
        mean_estimate(loss, population, confidence),
        mean_estimate(rate, population, confidence),
        proportion_estimate(effect, len(rows), population, confidence),
    )
