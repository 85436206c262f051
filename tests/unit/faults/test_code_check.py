"""``code_thresholds`` bounds each code's accumulators exactly, against the specification's
requantisation (``graph_ref``: TFLite's fixed point and XNNPACK's fp32 scale), for channels
with and without ReLU, and the check runs where numba compiles without AVX-512."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.faults.code_check import code_thresholds
from accelsim.functional import graph_ref
from accelsim.functional.graph_ref import xnnpack_scale

INT64_MIN, INT64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def _channels(rng, requantization: str, o: int) -> tuple[tuple[np.ndarray, ...], int]:
    """``rq`` records of ``o`` random channels, and whether they are XNNPACK's fp32."""
    bias = rng.integers(-5000, 5000, o)
    zero = np.zeros(o, np.int64)
    if requantization == "tflm":
        mult, shift = rng.integers(2**30, 2**31, o), rng.integers(-14, 2, o)
        return (bias, mult, np.maximum(shift, 0), np.maximum(-shift, 0), np.zeros(o, np.float32)), 0
    return (bias, zero, zero, zero, xnnpack_scale(0.05, rng.uniform(0.0005, 0.01, o), 0.2)), 1


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("seed", range(3))
def test_each_code_owns_exactly_its_interval(requantization: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    o = 6
    rq, fp32 = _channels(rng, requantization, o)
    zp = int(rng.integers(-20, 20))
    lo = int(rng.choice([-128, zp]))  # plain, or a ReLU's floor at the zero point
    q = np.array([fp32, zp, lo, 127])
    table = code_thresholds(rq, q)
    assert table.shape == (o, 257)
    assert (table[:, 1:] >= table[:, :-1]).all()  # monotonic

    def spec(acc: np.ndarray, k: int) -> np.ndarray:
        acc = np.asarray(acc, np.int64) + rq[0][k]
        if fp32:
            y = graph_ref.requantize_fp32(acc, rq[4][k]).astype(np.int64) + zp
        else:
            shift = rq[2][k] - rq[3][k]
            y = graph_ref.multiply_by_quantized_multiplier(acc, rq[1][k], shift) + zp
        return np.clip(y, lo, 127)

    for k in range(o):
        t = table[k]
        assert (t[: lo + 129] == INT64_MIN).all()  # every accumulator gives lo or above
        finite = np.flatnonzero((t != INT64_MIN) & (t != INT64_MAX))
        assert finite.size > 10  # the test reaches many codes
        # the bound itself gives the code, one below it does not
        codes = finite - 128
        assert (spec(t[finite], k) >= codes).all()
        assert (spec(t[finite] - 1, k) < codes).all()
        # random accumulators: the code the table locates is the specification's
        acc = rng.integers(t[finite[0]] - 5000, t[finite[-1]] + 5000, 2000)
        located = np.searchsorted(t, acc, side="right") - 1 - 128
        np.testing.assert_array_equal(located, spec(acc, k))


def test_the_check_follows_the_features_numba_targets(monkeypatch) -> None:
    """AVX-512 in the features numba compiles for (``NUMBA_CPU_FEATURES``) turns the check off,
    its absence turns it on; without them the host's features decide, and a host whose
    features llvmlite cannot read gets the check."""
    from llvmlite import binding
    from numba.core import config

    from accelsim.faults.code_check import _vector_int64

    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,+avx512f")
    assert _vector_int64() is True
    monkeypatch.setattr(config, "CPU_FEATURES", "+avx2,+fma,-avx512f")
    assert _vector_int64() is False
    monkeypatch.setattr(config, "CPU_FEATURES", "")
    monkeypatch.setattr(binding, "get_host_cpu_features", lambda: {"avx2": True, "avx512f": True})
    assert _vector_int64() is True
    monkeypatch.setattr(binding, "get_host_cpu_features", lambda: {"avx2": True})
    assert _vector_int64() is False

    def unknown() -> dict:
        raise RuntimeError("no features")

    monkeypatch.setattr(binding, "get_host_cpu_features", unknown)
    assert _vector_int64() is False
