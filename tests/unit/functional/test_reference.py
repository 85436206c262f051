"""The numpy reference against hand-computed TFLite/gemmlowp values."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.functional.reference import (
    conv2d_acc_ref,
    dense_acc_ref,
    maxpool2d_ref,
    quantize_multiplier,
    requantize_ref,
    rounding_divide_by_pot_ref,
    saturating_rounding_doubling_high_mul_ref,
)


@pytest.mark.parametrize(
    ("real", "expected"),
    [
        (0.5, (1 << 30, 0)),  # frexp(0.5) = 0.5 * 2^0
        (1.0, (1 << 30, 1)),
        (0.75, (1610612736, 0)),
        (0.1, (1717986918, -3)),  # 0.8 * 2^-3; 0.8 * 2^31 = 1717986918.4
        (0.0, (0, 0)),
        (2.0**-40, (0, 0)),  # shift below -31 flushes to zero, as TFLite does
    ],
)
def test_quantize_multiplier_matches_tflite(real: float, expected: tuple[int, int]) -> None:
    assert quantize_multiplier(real) == expected


def test_quantize_multiplier_rounds_up_to_next_power() -> None:
    # q just below 1 rounds to 2^31, which TFLite turns into 2^30 with shift + 1
    assert quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)


def test_quantize_multiplier_rejects_negative() -> None:
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        quantize_multiplier(-0.1)


@pytest.mark.parametrize(
    ("a", "expected"),
    [(100, 50), (101, 51), (-100, -50), (-101, -50), (-103, -51), (0, 0)],
)
def test_srdhm_by_one_half(a: int, expected: int) -> None:
    # x * 2^30 / 2^31 with gemmlowp's nudge: halves go up for positives, toward zero for negatives
    assert saturating_rounding_doubling_high_mul_ref(np.int64(a), np.int64(1 << 30)) == expected


def test_srdhm_saturates_the_single_overflow_case() -> None:
    m = np.int64(-(2**31))
    assert saturating_rounding_doubling_high_mul_ref(m, m) == 2**31 - 1


@pytest.mark.parametrize(
    ("x", "e", "expected"),
    [(5, 1, 3), (-5, 1, -3), (-3, 2, -1), (6, 2, 2), (7, 0, 7), (-4, 1, -2)],
)
def test_rounding_divide_by_pot(x: int, e: int, expected: int) -> None:
    assert rounding_divide_by_pot_ref(np.int64(x), np.int64(e)) == expected


def test_requantize_hand_values() -> None:
    # M = 0.1 -> (0.8 * 2^31, shift -3). -1005: SRDHM gives -804 (-803.99... nudged, truncated),
    # then -804 / 8 = -100.5 rounds away from zero to -101.
    mult, shift = quantize_multiplier(0.1)
    acc = np.array([[1000, 1005, -1005, 5000, -5000, 4]], dtype=np.int64).reshape(1, 1, 6)
    m, s = np.array([mult], np.int32), np.array([shift], np.int32)
    np.testing.assert_array_equal(
        requantize_ref(acc, m, s, relu=False), [[[100, 101, -101, 127, -128, 0]]]
    )
    np.testing.assert_array_equal(
        requantize_ref(acc, m, s, relu=True), [[[100, 101, 0, 127, 0, 0]]]
    )


def test_requantize_multiplier_above_one_shifts_left() -> None:
    mult, shift = quantize_multiplier(3.0)  # 0.75 * 2^2
    acc = np.array([10, -7, 50], dtype=np.int64).reshape(1, 1, 3)
    out = requantize_ref(acc, np.array([mult], np.int32), np.array([shift], np.int32), relu=False)
    np.testing.assert_array_equal(out, [[[30, -21, 127]]])


def test_conv2d_acc_hand_example() -> None:
    x = np.arange(9, dtype=np.int8).reshape(1, 1, 3, 3)
    w = np.array([[[[1, 0], [0, -1]]]], dtype=np.int8)
    acc = conv2d_acc_ref(x, w, np.array([10], np.int32), stride=1, padding=0)
    np.testing.assert_array_equal(acc, [[[[10 + 0 - 4, 10 + 1 - 5], [10 + 3 - 7, 10 + 4 - 8]]]])
    padded = conv2d_acc_ref(x, w, np.array([0], np.int32), stride=2, padding=1)
    # windows at padded (0,0), (0,2), (2,0), (2,2): w[0,0] sees padding except at (2,2)
    np.testing.assert_array_equal(padded, [[[[0, -2], [-6, 4 - 8]]]])


def test_dense_acc_and_maxpool_hand_example() -> None:
    x = np.array([[1, -2, 3]], dtype=np.int8)
    w = np.array([[1, 1, 1], [-128, 0, 127]], dtype=np.int8)
    np.testing.assert_array_equal(
        dense_acc_ref(x, w, np.array([0, 1], np.int32)), [[2, -128 + 381 + 1]]
    )
    p = np.array([[[[1, -5, 3], [7, 2, -128], [0, 0, 127]]]], dtype=np.int8)
    np.testing.assert_array_equal(maxpool2d_ref(p, size=2, stride=1), [[[[7, 3], [7, 127]]]])
