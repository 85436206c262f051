"""Exhaustive correction tables: every fault-free value, every single and double bit flip."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from accelsim.protection.lcu import lcu, lcu_zp, relative_code
from accelsim.protection.vote import vote


@dataclass(frozen=True)
class CorrectionCounts:
    """Outcomes of a set of faulty cases: corrected (equal to fault-free), masked to a smaller
    value (wrong but smaller, in the direction a ReLU output tolerates) or left wrong (larger)."""

    scenario: str
    cases: int
    corrected: int
    smaller: int
    larger: int


def _flip_masks(n_bits: int) -> list[int]:
    return [sum(1 << b for b in bits) for bits in combinations(range(8), n_bits)]


def _classify(name: str, got: np.ndarray, want: np.ndarray) -> CorrectionCounts:
    got, want = got.astype(np.int64).ravel(), want.astype(np.int64).ravel()
    return CorrectionCounts(
        name, got.size, int(np.sum(got == want)), int(np.sum(got < want)), int(np.sum(got > want))
    )


def lcu_table(max_half: int = 64) -> list[CorrectionCounts]:
    """LCU outcomes over all fault-free halves h in [0, max_half] (a = b = h), for single and
    double flips in one copy, flips in both copies, split by direction of the flipped bits."""
    h = np.arange(0, max_half + 1, dtype=np.int64)
    want = 2 * lcu(h.astype(np.int8), h.astype(np.int8)).astype(np.int64)
    rows = []
    for n_bits, label in ((1, "single flip, one copy"), (2, "double flip, one copy")):
        masks = np.array(_flip_masks(n_bits))
        a = (h[:, None] ^ masks[None, :]).astype(np.int8)
        got = 2 * lcu(a, np.broadcast_to(h[:, None].astype(np.int8), a.shape)).astype(np.int64)
        rows.append(_classify(label, got, np.broadcast_to(want[:, None], got.shape)))
        up = (h[:, None] & masks[None, :]) == 0  # every flipped bit goes 0 -> 1
        rows.append(
            _classify(label + ", all 0->1", got[up], np.broadcast_to(want[:, None], got.shape)[up])
        )
    masks = np.array(_flip_masks(1))
    a = (h[:, None, None] ^ masks[None, :, None]).astype(np.int8)
    b = (h[:, None, None] ^ masks[None, None, :]).astype(np.int8)
    got = 2 * lcu(a, b).astype(np.int64)
    rows.append(
        _classify("single flip in each copy", got, np.broadcast_to(want[:, None, None], got.shape))
    )
    return rows


def lcu_zp_table(zero_point: int, max_half: int = 127) -> list[CorrectionCounts]:
    """``lcu_zp`` outcomes over every fault-free half h in [0, max_half] above ``zero_point``
    (stored code ``h + zero_point`` in both copies), for single and double flips of the stored
    bits in one copy and a single flip in each copy; values compared relative to the zero
    point (what the next layer adds up, doubled). The ``all 0->1`` rows are the flips that turn
    relative bits from 0 to 1."""
    if not -128 <= zero_point + max_half <= 127:
        raise ValueError(f"halves up to {max_half} above zero point {zero_point} leave int8")
    h = np.arange(0, max_half + 1, dtype=np.int64)
    code = (h + zero_point).astype(np.int8)
    want = relative_code(lcu_zp(code, code, zero_point), zero_point)
    rows = []
    for n_bits, label in ((1, "single flip, one copy"), (2, "double flip, one copy")):
        masks = np.array(_flip_masks(n_bits))
        a = (code.astype(np.int64)[:, None] ^ masks[None, :]).astype(np.int8)
        b = np.broadcast_to(code[:, None], a.shape)
        got = relative_code(lcu_zp(a, b, zero_point), zero_point)
        full = np.broadcast_to(want[:, None], got.shape)
        rows.append(_classify(label, got, full))
        rel_a = relative_code(a, zero_point)
        up = (rel_a & ~h[:, None]) == (rel_a ^ h[:, None])  # every changed relative bit 0 -> 1
        rows.append(_classify(label + ", all 0->1", got[up], full[up]))
    masks = np.array(_flip_masks(1))
    a = (code.astype(np.int64)[:, None, None] ^ masks[None, :, None]).astype(np.int8)
    b = (code.astype(np.int64)[:, None, None] ^ masks[None, None, :]).astype(np.int8)
    got = relative_code(lcu_zp(a, b, zero_point), zero_point)
    rows.append(
        _classify("single flip in each copy", got, np.broadcast_to(want[:, None, None], got.shape))
    )
    return rows


def voter_table() -> list[CorrectionCounts]:
    """Voter outcomes over all int8 values v (a = b = c = v) for single/double flips in one copy
    and a single flip in each of two copies."""
    v = np.arange(-128, 128, dtype=np.int64)
    rows = []
    for n_bits, label in ((1, "single flip, one copy"), (2, "double flip, one copy")):
        masks = np.array(_flip_masks(n_bits))
        a = (v[:, None] ^ masks[None, :]).astype(np.int8)
        same = np.broadcast_to(v[:, None].astype(np.int8), a.shape)
        rows.append(_classify(label, vote(a, same, same), np.broadcast_to(v[:, None], a.shape)))
    masks = np.array(_flip_masks(1))
    a = (v[:, None, None] ^ masks[None, :, None]).astype(np.int8)
    b = (v[:, None, None] ^ masks[None, None, :]).astype(np.int8)
    c = np.broadcast_to(v[:, None, None].astype(np.int8), (v.size, 8, 8))
    got = vote(a, b, c)
    rows.append(
        _classify(
            "single flip in each of two copies", got, np.broadcast_to(v[:, None, None], got.shape)
        )
    )
    return rows
