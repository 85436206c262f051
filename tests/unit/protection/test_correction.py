"""LCU and voter: hand values and exhaustive flips over every int8 operand."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from accelsim.protection.lcu import lcu
from accelsim.protection.tables import lcu_table, voter_table
from accelsim.protection.vote import vote

ALL = np.arange(-128, 128, dtype=np.int64)
SINGLE = [1 << b for b in range(8)]
DOUBLE = [(1 << i) | (1 << j) for i, j in combinations(range(8), 2)]


def test_lcu_hand_values() -> None:
    assert lcu(np.int8(0b0010_1101), np.int8(0b0010_1101)) == 0b0010_1101
    assert lcu(np.int8(0b0110_1101), np.int8(0b0010_1101)) == 0b0010_1101  # bit 6 0->1 in one copy
    assert lcu(np.int8(0b0110_1101), np.int8(0b0110_1101)) == 0b0010_1101  # bit 6 is always cleared
    assert (
        lcu(np.int8(-128), np.int8(5)) == 0
    )  # sign flip in one copy: ANDed away... and 5 & -128 = 0
    assert lcu(np.int8(-1), np.int8(-1)) == np.int8(~0x40)


def test_lcu_corrects_every_zero_to_one_flip_in_one_copy() -> None:
    """Over every valid half h in [0, 63] and every set of 0->1 flips in one copy."""
    for h in range(64):
        for mask in range(1, 256):
            if h & mask:
                continue
            a = np.int8(np.int64(h ^ mask).astype(np.int8))
            assert lcu(a, np.int8(h)) == h, (h, mask)
            assert lcu(np.int8(h), a) == h


def test_lcu_one_to_zero_flips_only_shrink_the_value() -> None:
    for h in range(64):
        for mask in SINGLE + DOUBLE:
            if h & mask == 0:
                continue
            a = np.int8(np.int64(h ^ mask).astype(np.int8))
            got = int(lcu(a, np.int8(h)))
            assert 0 <= got < h
            assert got == h & ~mask & ~0x40


def test_voter_corrects_any_flips_in_one_copy_for_every_int8() -> None:
    for mask in range(1, 256):
        a = (ALL ^ mask).astype(np.int8)
        v = ALL.astype(np.int8)
        np.testing.assert_array_equal(vote(a, v, v), v)
        np.testing.assert_array_equal(vote(v, a, v), v)
        np.testing.assert_array_equal(vote(v, v, a), v)


def test_voter_loses_when_two_copies_flip_the_same_bit() -> None:
    v = ALL.astype(np.int8)
    for bit in SINGLE:
        a = (ALL ^ bit).astype(np.int8)
        np.testing.assert_array_equal(vote(a, a, v), a)
    a, b = (ALL ^ 1).astype(np.int8), (ALL ^ 2).astype(np.int8)  # different bits: still corrected
    np.testing.assert_array_equal(vote(a, b, v), v)


def test_tables_add_up() -> None:
    rows = {r.scenario: r for r in lcu_table()}
    single = rows["single flip, one copy"]
    assert single.cases == 65 * 8
    assert single.corrected + single.smaller + single.larger == single.cases
    assert single.larger == 0  # a single flip never leaves a larger value
    up = rows["single flip, one copy, all 0->1"]
    assert up.corrected == up.cases
    votes = {r.scenario: r for r in voter_table()}
    assert votes["single flip, one copy"].corrected == 256 * 8
    assert votes["double flip, one copy"].corrected == 256 * 28
    two = votes["single flip in each of two copies"]
    assert two.corrected == 256 * 56  # different bits: corrected; same bit (8 of 64): wrong
    assert two.smaller + two.larger == 256 * 8


def test_split_clamped_halves_keep_the_guarantees() -> None:
    """Halves 0..63 (split_clamped's whole fault-free range): 64 x 8 single flips; the 0 -> 1
    ones are the zero bits of each half, sum over h of (8 - popcount h) = 512 - 192 = 320, and
    every one is corrected; a flip in one copy never leaves a larger value."""
    rows = {r.scenario: r for r in lcu_table(max_half=63)}
    single = rows["single flip, one copy"]
    assert (single.cases, single.corrected, single.larger) == (512, 320, 0)
    up = rows["single flip, one copy, all 0->1"]
    assert up.cases == up.corrected == 8 * 64 - sum(bin(h).count("1") for h in range(64))
    double = rows["double flip, one copy"]
    assert double.cases == 64 * 28
    assert double.larger == 0
    assert rows["double flip, one copy, all 0->1"].smaller == 0


def test_lcu_on_codes_relative_to_the_zero_point() -> None:
    from accelsim.protection.lcu import lcu_zp

    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    a8, b8 = a.astype(np.int8), b.astype(np.int8)
    # zero point -128: the relative code is the stored code with bit 7 inverted
    want = (((a ^ 0x80) & (b ^ 0x80) & 0x7F) ^ 0x80).astype(np.int8)
    np.testing.assert_array_equal(lcu_zp(a8, b8, -128), want)
    # zero point 0: the symmetric LCU with bit 7 cleared instead of bit 6
    np.testing.assert_array_equal(lcu_zp(a8, b8, 0), (a & b & 0x7F).astype(np.int8))


def test_lcu_zp_keeps_the_guarantees_at_zero_point_minus_128() -> None:
    """Halves 0..127 above zero point -128 (stored codes -128..-1): 128 x 8 single flips in one
    copy; the relative 0 -> 1 ones are the zero bits of each half, sum over h of (8 - popcount
    h) = 1024 - 448 = 576, every one corrected; a flip in one copy never leaves a larger value;
    the table is the zero-point-0 table row for row (a stored flip is a relative flip)."""
    from accelsim.protection.tables import lcu_zp_table

    rows = {r.scenario: r for r in lcu_zp_table(-128)}
    single = rows["single flip, one copy"]
    assert (single.cases, single.corrected, single.smaller, single.larger) == (1024, 576, 448, 0)
    up = rows["single flip, one copy, all 0->1"]
    assert up.cases == up.corrected == 1024 - sum(bin(h).count("1") for h in range(128))
    assert rows["double flip, one copy"].larger == 0
    assert rows["double flip, one copy, all 0->1"].smaller == 0
    assert lcu_zp_table(-128) == lcu_zp_table(0)  # same counts, scenario by scenario


def test_lcu_zp_loses_corrections_at_other_zero_points() -> None:
    """At zero point -100 a stored flip can borrow into other relative bits: fewer single flips
    are corrected (448 of 1,024 instead of 576), which is why a split needs zero point -128."""
    from accelsim.protection.tables import lcu_zp_table

    single = {r.scenario: r for r in lcu_zp_table(-100)}["single flip, one copy"]
    assert (single.corrected, single.smaller, single.larger) == (448, 576, 0)
