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


def relative_code(code: npt.ArrayLike, zero_point: int) -> npt.NDArray[np.int64]:
    """An int8 activation code relative to its zero point, as the unsigned byte
    ``(code - zero_point) mod 256``: the value a RELU / RELU6 output holds above its clamp."""
    return (np.asarray(code, np.int64) - zero_point) & 0xFF


def lcu_zp(a: npt.ArrayLike, b: npt.ArrayLike, zero_point: int, kept: int = 0x7F) -> I8:
    """The LCU of two halves of a neuron whose activation clamps at ``zero_point`` (TFLite's
    asymmetric scheme): on the codes relative to the zero point, ``(ra & rb) & 0x7F``, then back
    to a code. A half holds at most 127 above the zero point, so the relative code's top bit
    (bit 7) is 0 fault-free, the premise the symmetric LCU's bit 6 gives. With zero point -128
    (every RELU / RELU6 output TFLite's converter writes) the relative code is the stored code
    with bit 7 inverted, so a flip of a stored bit is a flip of the same relative bit and every
    guarantee of ``lcu`` carries over (``tables.lcu_zp_table``); with zero point 0 it is ``lcu``
    with bit 7 in place of bit 6. ``kept``: the relative bits a fault-free half can hold (0x7F
    for a range of 256 codes above the zero point; ``half_bits`` derives it from the range)."""
    r = relative_code(a, zero_point) & relative_code(b, zero_point) & kept
    return ((r + zero_point + 128) % 256 - 128).astype(np.int8)


def half_bits(zero_point: int, high: int) -> int:
    """The relative bits a fault-free half of a neuron with codes ``zero_point .. high`` holds:
    every bit below the top bit of ``high - zero_point`` (0x7F for 255 codes above the zero
    point, 0x3F for 127: the symmetric LCU's bit 6)."""
    return (1 << ((high - zero_point).bit_length() - 1)) - 1
