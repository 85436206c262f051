"""How well one per-neuron score predicts another: rank correlation, error, top-k overlap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def rankdata(x: F64) -> F64:
    """Ranks 1..n, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def spearman(a: F64, b: F64) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    ra, rb = rankdata(np.asarray(a, float)), rankdata(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def top_k_overlap(predicted: F64, truth: F64, k: int) -> float:
    """Precision (= recall) of the k highest predicted scores against the k highest true ones.

    Ties at the cut are broken by index so that both sets have exactly k members.
    """
    if k <= 0:
        return float("nan")
    top_p = set(np.argsort(-predicted, kind="mergesort")[:k].tolist())
    top_t = set(np.argsort(-truth, kind="mergesort")[:k].tolist())
    return len(top_p & top_t) / k


@dataclass(frozen=True)
class SetAgreement:
    threshold_percent: float
    predicted: int
    actual: int
    precision: float  # NaN when nothing is predicted
    recall: float  # NaN when nothing is actually critical


def critical_set_agreement(predicted: F64, truth: F64, threshold_percent: float) -> SetAgreement:
    """Precision/recall of {NVF >= T} against {true vulnerability >= T}."""
    p = predicted * 100 >= threshold_percent - 1e-12
    t = truth * 100 >= threshold_percent - 1e-12
    both = int(np.sum(p & t))
    return SetAgreement(
        threshold_percent,
        int(p.sum()),
        int(t.sum()),
        both / p.sum() if p.any() else float("nan"),
        both / t.sum() if t.any() else float("nan"),
    )


def mean_absolute_error_pp(predicted: F64, truth: F64) -> float:
    """Mean absolute difference in percentage points."""
    return float(np.mean(np.abs(predicted - truth)) * 100)


def bernstein_half_width(mean: F64, normal_half_width: F64, n: int,
                         confidence: float = 0.95) -> F64:  # fmt: skip
    """A distribution-free two-sided half-width for the mean of ``n`` values in [0, 1]: the
    empirical Bernstein bound (Maurer and Pontil 2009, theorem 4, each side at (1 - confidence)
    / 2), ``sqrt(2 V ln(4 / d) / n) + 7 ln(4 / d) / (3 (n - 1))`` with d = 1 - confidence and V
    the sample variance (recovered from the normal half-width 1.96 sqrt(V / n) every NVF result
    carries). Unlike the normal approximation it holds however few inputs carry the mean, which
    is how NVF behaves: a handful of low-margin inputs hold most of a neuron's vulnerability."""
    mean = np.asarray(mean, np.float64)
    if n < 2:
        return np.ones_like(mean)
    var = n * (np.asarray(normal_half_width, np.float64) / 1.96) ** 2
    log_term = np.log(4.0 / (1.0 - confidence))
    half = np.sqrt(2.0 * var * log_term / n) + 7.0 * log_term / (3.0 * (n - 1))
    return np.minimum(half, 1.0)
