"""Range-restriction baselines on one copy, with per-layer bounds profiled on training data.

- ``ranger`` (Chen et al., "Ranger", DSN 2021): clamp each protected activation to the layer's
  profiled [min, max]; a flip that pushes a value out of range is cut back to the bound.
- ``zero`` (in the spirit of "Just Say Zero", Ozen and Orailoglu, ICCAD 2020): an activation
  outside the profiled range is replaced by 0, the value a ReLU network tolerates best.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I8 = npt.NDArray[np.int8]


def merge_clamp(a: I8, lo: int, hi: int) -> I8:
    return np.clip(a, lo, hi).astype(np.int8)


def merge_zero(a: I8, lo: int, hi: int, zero: int = 0) -> I8:
    """``zero``: the code of the real value 0 (the tensor's zero point on graphs)."""
    return np.where((a < lo) | (a > hi), zero, a).astype(np.int8)
