"""Exhaustive correction tables: every fault-free value, every single and double bit flip."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from accelsim.protection.lcu import lcu
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
