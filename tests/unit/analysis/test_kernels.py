"""The analysis numba kernels equal their numpy references bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.analysis.kernels import col2im_kernel
from accelsim.analysis.slopes import _col2im_ref
from accelsim.analysis.vulnerability import critical_deltas_linear, critical_deltas_linear_ref


@pytest.mark.parametrize(("b", "k", "n"), [(1, 2, 1), (7, 10, 33), (3, 10, 500)])
def test_critical_deltas_kernel_matches_ref(
    rng: np.random.Generator, b: int, k: int, n: int
) -> None:
    slopes = rng.normal(0, 0.05, (b, k, n))
    slopes[:, :, ::5] = 0.0  # dead neurons
    slopes[:, 1, ::7] = slopes[:, 0, ::7]  # ties between classes
    logits = rng.integers(-128, 128, (b, k), dtype=np.int8)
    logits[:, 1] = logits[:, 0]  # tied logits: margin 0
    golden = np.argmax(logits, axis=1)
    out = rng.integers(-128, 128, (b, n), dtype=np.int8)
    got = critical_deltas_linear(slopes, logits, golden, out, 0.1)
    want = critical_deltas_linear_ref(slopes, logits, golden, out, 0.1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    if n > 1:  # not vacuous: many critical deltas exist
        assert np.any(got[0] != np.iinfo(np.int64).min)


@pytest.mark.parametrize("stride", [1, 2])
def test_col2im_kernel_matches_ref(rng: np.random.Generator, stride: int) -> None:
    cols = rng.normal(size=(4, 3, 5, 2, 3, 3))
    shape = (4, 2, (3 - 1) * stride + 3, (5 - 1) * stride + 3)
    want = np.zeros(shape)
    _col2im_ref(cols, stride, want)
    got = np.zeros(shape)
    col2im_kernel(cols, stride, got)
    np.testing.assert_array_equal(got, want)
