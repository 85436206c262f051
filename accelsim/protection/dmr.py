"""Selective DMR baselines (two copies of the neuron, no halving).

- ``dmr_and``: the next layer sees ``a & b``. Like the LCU, the AND undoes 0 -> 1 flips confined
  to one copy and turns 1 -> 0 flips into smaller values; unlike split, nothing is halved, so bit
  6 is kept and the copies cost a full neuron each.
- ``dmr_recompute``: on a mismatch ``a != b`` the neuron is computed a third time (assumed
  fault-free: a transient fault does not repeat) and that value goes on; every single-copy fault
  is corrected at the price of the recomputation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I8 = npt.NDArray[np.int8]


def merge_and(a: I8, b: I8) -> I8:
    return a & b


def merge_recompute(a: I8, b: I8, recomputed: I8) -> I8:
    return np.where(a == b, a, recomputed)
