"""The numba kernels equal the numpy reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.errors import ShapeError
from accelsim.functional import kernels as kern
from accelsim.functional import reference as ref


def _requant_params(rng: np.random.Generator, n_out: int, k: int) -> tuple[np.ndarray, ...]:
    """Per-channel multipliers that spread outputs over the int8 range (and a few > 1)."""
    scale = 60.0 / (5000.0 * np.sqrt(k))
    reals = scale * rng.uniform(0.3, 3.0, n_out)
    reals[:: max(n_out // 3, 1)] *= 1e4 if n_out > 2 else 1.0  # some multipliers above 1
    pairs = [ref.quantize_multiplier(min(r, 2.0**29)) for r in reals]
    mult = np.array([m for m, _ in pairs], np.int32)
    shift = np.array([s for _, s in pairs], np.int32)
    bias = rng.integers(-(2**15), 2**15, n_out).astype(np.int32)
    return bias, mult, shift


CONV_CASES = [  # n, c, h, w, o, k, stride, padding
    (1, 1, 1, 1, 1, 1, 1, 0),
    (3, 3, 7, 9, 5, 3, 1, 1),
    (2, 1, 28, 28, 6, 5, 1, 0),
    (2, 5, 8, 8, 7, 3, 2, 1),
    (1, 2, 5, 6, 3, 4, 3, 2),
    (2, 130, 4, 4, 3, 3, 1, 1),  # K = 1170 > EXACT_K_CHUNK: chunked GEMM
    (1, 2, 7, 7, 2, 5, 2, 3),  # padding wider than the stride
    (2, 9, 7, 6, 5, 3, 2, 2),  # channels-last gather (C >= 8), stride 2, padding 2
    (1, 8, 5, 5, 4, 5, 1, 0),  # channels-last, kernel as large as the input
    (2, 3, 6, 5, 2, 2, 3, 0),  # stride larger than the kernel
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("relu", [True, False])
def test_conv2d_matches_ref(rng: np.random.Generator, case: tuple[int, ...], relu: bool) -> None:
    n, c, h, w, o, k, stride, padding = case
    x = rng.integers(-128, 128, (n, c, h, w), dtype=np.int8)
    wt = rng.integers(-127, 128, (o, c, k, k), dtype=np.int8)
    bias, mult, shift = _requant_params(rng, o, c * k * k)
    got = kern.conv2d_int8(x, wt, bias, mult, shift, stride=stride, padding=padding, relu=relu)
    want = ref.conv2d_ref(x, wt, bias, mult, shift, stride=stride, padding=padding, relu=relu)
    assert got.shape == want.shape
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)


def test_conv2d_extreme_operands_are_exact() -> None:
    """All -128 inputs times all -128 weights over K = 1024: partial sums reach 2^24 exactly."""
    x = np.full((1, 64, 4, 4), -128, np.int8)
    wt = np.full((2, 64, 4, 4), -128, np.int8)
    acc = kern.exact_matmul(
        np.full((1, 1024), -128, np.float32), np.full((1024, 1), -128, np.float32)
    )
    assert acc[0, 0] == 2**24
    mult, shift = ref.quantize_multiplier(2.0**-18)
    m, s = np.full(2, mult, np.int32), np.full(2, shift, np.int32)
    b = np.array([0, -(2**24)], np.int32)
    got = kern.conv2d_int8(x, wt, b, m, s, stride=1, padding=0, relu=False)
    np.testing.assert_array_equal(
        got, ref.conv2d_ref(x, wt, b, m, s, stride=1, padding=0, relu=False)
    )
    assert got.ravel().tolist() == [64, 0]


@pytest.mark.parametrize(("n", "f", "o"), [(1, 1, 1), (3, 17, 5), (8, 64, 33), (5, 3000, 7)])
@pytest.mark.parametrize("relu", [True, False])
def test_dense_matches_ref(rng: np.random.Generator, n: int, f: int, o: int, relu: bool) -> None:
    x = rng.integers(-128, 128, (n, f), dtype=np.int8)
    wt = rng.integers(-127, 128, (o, f), dtype=np.int8)
    bias, mult, shift = _requant_params(rng, o, f)
    got = kern.dense_int8(x, wt, bias, mult, shift, relu=relu)
    np.testing.assert_array_equal(got, ref.dense_ref(x, wt, bias, mult, shift, relu=relu))


def test_outputs_cover_the_int8_range(rng: np.random.Generator) -> None:
    """The random cases above are meaningful only if outputs are not all saturated."""
    x = rng.integers(-128, 128, (64, 200), dtype=np.int8)
    wt = rng.integers(-127, 128, (16, 200), dtype=np.int8)
    bias, mult, shift = _requant_params(rng, 16, 200)
    out = kern.dense_int8(x, wt, bias, mult, shift, relu=False)
    assert len(np.unique(out)) > 100
    assert out.min() == -128
    assert out.max() == 127


@pytest.mark.parametrize(
    ("shape", "size", "stride"), [((2, 3, 9, 8), 2, 2), ((1, 1, 5, 5), 3, 1), ((1, 2, 1, 1), 1, 1)]
)
def test_maxpool_matches_ref(
    rng: np.random.Generator, shape: tuple[int, ...], size: int, stride: int
) -> None:
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    np.testing.assert_array_equal(
        kern.maxpool2d_int8(x, size=size, stride=stride),
        ref.maxpool2d_ref(x, size=size, stride=stride),
    )


def test_requantize_kernel_matches_ref_on_extreme_accumulators(rng: np.random.Generator) -> None:
    acc = rng.integers(-(2**31), 2**31, (3, 5, 9)).astype(np.int64)
    acc[0, 0, :] = [-(2**31), 2**31 - 1, 0, 1, -1, 2**30, -(2**30), 12345, -12345]
    bias = np.zeros(9, np.int32)
    pairs = [
        ref.quantize_multiplier(r) for r in (1e-9, 1e-6, 1e-3, 0.5, 0.999, 1.0, 1.5, 7.0, 0.25)
    ]
    mult = np.array([m for m, _ in pairs], np.int32)
    shift = np.array([s for _, s in pairs], np.int32)
    for relu in (True, False):
        want = ref.requantize_ref(acc.transpose(0, 2, 1), mult, shift, relu=relu)  # (N, O, P)
        channel_major = acc.transpose(2, 0, 1)  # (O, N, P), a strided view
        got = kern.requantize_int8(channel_major, bias, mult, shift, relu=relu)
        np.testing.assert_array_equal(got, want)
        contiguous = np.ascontiguousarray(channel_major)
        np.testing.assert_array_equal(
            kern.requantize_int8(contiguous, bias, mult, shift, relu=relu), want
        )


def test_kernels_reject_bad_shapes_and_dtypes() -> None:
    x = np.zeros((1, 2, 5, 5), np.int8)
    w = np.zeros((3, 2, 3, 3), np.int8)
    ch = np.zeros(3, np.int32)
    with pytest.raises(ShapeError, match="x: expected a 4-d int8 array, got float32"):
        kern.conv2d_int8(x.astype(np.float32), w, ch, ch, ch, stride=1, padding=0, relu=True)
    with pytest.raises(ShapeError, match="x has 2 channels, weight expects 4"):
        kern.conv2d_int8(
            x, np.zeros((3, 4, 3, 3), np.int8), ch, ch, ch, stride=1, padding=0, relu=True
        )
    with pytest.raises(ShapeError, match="does not fit input"):
        kern.conv2d_int8(
            x, np.zeros((3, 2, 7, 7), np.int8), ch, ch, ch, stride=1, padding=0, relu=True
        )
    with pytest.raises(ShapeError, match=r"per-channel array of shape \(2,\), expected \(3,\)"):
        kern.conv2d_int8(x, w, ch[:2], ch, ch, stride=1, padding=0, relu=True)
    with pytest.raises(ShapeError, match="x has 4 features, weight expects 5"):
        kern.dense_int8(np.zeros((2, 4), np.int8), np.zeros((3, 5), np.int8), ch, ch, ch, relu=True)
    with pytest.raises(ShapeError, match="window 6 does not fit"):
        kern.maxpool2d_int8(x, size=6, stride=1)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_accumulators_match_ref(rng: np.random.Generator, case: tuple[int, ...]) -> None:
    n, c, h, w, o, k, stride, padding = case
    x = rng.integers(-128, 128, (n, c, h, w), dtype=np.int8)
    wt = rng.integers(-127, 128, (o, c, k, k), dtype=np.int8)
    bias = rng.integers(-(2**20), 2**20, o).astype(np.int32)
    got = kern.conv2d_acc_int(x, wt, bias, stride=stride, padding=padding)
    np.testing.assert_array_equal(
        got, ref.conv2d_acc_ref(x, wt, bias, stride=stride, padding=padding)
    )
