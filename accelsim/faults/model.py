"""The fault record and what a fault does to an int8 value.

A fault sits in one copy of one neuron of one layer (copy 0 is the neuron itself; protected
neurons have more copies, DESIGN.md section 4) and is present during the inference of every test
image of a campaign (DESIGN.md section 5). Kinds: a flip of one bit (the paper's), a flip of
several bits (adjacent or chosen at random), and one bit stuck at 0 or 1.

Kernels never see records: a fault reaches them as flat integer arrays (layer, index, copy, mask,
kind code), built by ``fault_arrays``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind, FaultSite

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
KIND_CODES = {kind: code for code, kind in enumerate(FaultKind)}


@dataclass(frozen=True)
class Fault:
    """A fault in copy ``copy`` of neuron ``index`` (flat, C-H-W order) of layer ``layer``.

    ``bits``: the bit positions involved (0 = LSB, 7 = sign), sorted. ``cycle`` is for timed
    faults of the accelerator model; None means present for the whole inference.
    """

    site: FaultSite
    layer: int
    index: int
    copy: int
    bits: tuple[int, ...]
    kind: FaultKind
    cycle: int | None = None

    @property
    def neuron(self) -> int:  # the name ``protection.protected`` reads
        return self.index

    @property
    def mask(self) -> int:
        return sum(1 << b for b in self.bits)

    def apply(self, values: npt.ArrayLike) -> I8:
        """The faulty values of int8 ``values`` (any shape)."""
        return apply_fault(np.asarray(values, np.int8), self.mask, KIND_CODES[self.kind])


def apply_fault(values: I8, mask: npt.ArrayLike, kind_code: npt.ArrayLike) -> I8:
    """int8 ``values`` with the bits in ``mask`` flipped (flip kinds) or forced to 0 or 1.
    ``mask`` and ``kind_code`` broadcast against ``values`` (one per column of a (N, m) array)."""
    m = np.asarray(mask, np.int64).astype(np.int8)
    kind = np.asarray(kind_code)
    return np.where(
        kind == KIND_CODES[FaultKind.STUCK_AT_0],
        values & ~m,
        np.where(kind == KIND_CODES[FaultKind.STUCK_AT_1], values | m, values ^ m),
    ).astype(np.int8)


@dataclass(frozen=True, eq=False)
class FaultBatch:
    """Faults as flat int64 arrays of equal length (what kernels and workers receive): campaign
    ids, layer, neuron index, copy, bit mask and kind code (``KIND_CODES``)."""

    ids: I64
    layer: I64
    index: I64
    copy: I64
    mask: I64
    kind: I64

    def __post_init__(self) -> None:
        for arr in (self.ids, self.layer, self.index, self.copy, self.mask, self.kind):
            arr.setflags(write=False)

    def __len__(self) -> int:
        return int(self.ids.size)

    def take(self, rows: npt.ArrayLike) -> FaultBatch:
        rows = np.asarray(rows)
        return FaultBatch(
            self.ids[rows], self.layer[rows], self.index[rows], self.copy[rows],
            self.mask[rows], self.kind[rows],
        )  # fmt: skip


def fault_batch(faults: Sequence[Fault], ids: npt.ArrayLike | None = None) -> FaultBatch:
    """The flat form of ``faults``; ids default to 0 .. len - 1."""
    ids = np.arange(len(faults)) if ids is None else ids
    return FaultBatch(
        np.asarray(ids, np.int64),
        np.array([f.layer for f in faults], np.int64),
        np.array([f.index for f in faults], np.int64),
        np.array([f.copy for f in faults], np.int64),
        np.array([f.mask for f in faults], np.int64),
        np.array([KIND_CODES[f.kind] for f in faults], np.int64),
    )


def bits_label(bits: tuple[int, ...]) -> str:
    """'3' for one bit, '3+4' for several: the key of the per-bit breakdown."""
    return "+".join(str(b) for b in bits)
