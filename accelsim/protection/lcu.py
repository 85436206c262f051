"""The Lightweight Correction Unit (paper Sec. II-C, DESIGN.md section 4).

A split neuron is computed twice, each copy holding round(y / 2) of a ReLU output y, so in
fault-free operation both copies are equal and below 64 (bit 6, the MSB of the integer part, is
0; bit 7, the sign, is 0). ``lcu(a, b) = (a & b) & ~0x40``: the AND undoes any 0 -> 1 flip in
one copy (the other copy still holds 0), and clearing bit 6 undoes a 0 -> 1 flip of bit 6 that
both copies would otherwise pass. A 1 -> 0 flip survives as a smaller value ("masked to a
smaller value"). The corrected value is written back to both copies, so the next layer sees
``2 * lcu(a, b)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I8 = npt.NDArray[np.int8]
BIT6 = np.int8(0x40)


def lcu(a: I8, b: I8) -> I8:
    """Bitwise AND of two int8 copies with bit 6 cleared (two's complement bits)."""
    return np.bitwise_and(np.bitwise_and(np.asarray(a, np.int8), np.asarray(b, np.int8)), ~BIT6)
