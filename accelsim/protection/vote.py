"""The TMR voter: bitwise majority of three int8 copies, ``(a & b) | (a & c) | (b & c)``.

Any fault confined to one copy is outvoted bit by bit; two copies flipped in the same bit
position win the vote.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I8 = npt.NDArray[np.int8]


def vote(a: I8, b: I8, c: I8) -> I8:
    """Bitwise majority of three int8 arrays."""
    a, b, c = (np.asarray(v, np.int8) for v in (a, b, c))
    return (a & b) | (a & c) | (b & c)
