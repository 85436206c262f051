"""Faults in the PE datapath, placed on the schedule (which PE computes what, and when).

Sites (one register of PE (row, col); rows and columns are physical array positions):

- ``output_register``: the int8 value a PE emits after requantisation and ReLU, i.e. a neuron's
  output: the paper's fault. Output stationary: every PE holds its output from the end of its
  reduction to the end of the fold. Weight/input stationary: only the bottom row emits finished
  outputs, one streamed output per cycle (in the cycle of its last MAC), in the last reduction
  fold.
- ``accumulator``: the int32 partial sum. Output stationary: the PE's own output's running sum
  (a flip after the fold's reduction hits the final sum). Weight/input stationary: the partial
  sum passing down the column through the PE (it already holds earlier reduction folds and rows).
- ``operand_register``: int8. Output stationary: the weight register, whose value moves down
  the column, so a flip corrupts that weight for the PE and every PE below it. Weight
  stationary: the stationary weight, input stationary: the stationary input, corrupted from the
  flip until the fold ends (the operand is replaced by the next fold's); a flip while the array
  is still loading (the first R cycles) is overwritten and has no effect.

Timing inside a fold starting at cycle s (the skew of a systolic array): output stationary PE
(r, c) performs MAC k at s + r + c + k; weight/input stationary PE (r, c) performs the MAC of
streamed element j at s + R + r + c + j. A transient fault is a flip at one cycle; a permanent
fault (``cycle`` None) is a stuck-at ``stuck`` on the bit for the whole inference, in every fold
of every layer mapped to that PE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from accelsim.errors import AccelsimError


class PeSite(enum.Enum):
    OUTPUT_REGISTER = "output_register"
    ACCUMULATOR = "accumulator"
    OPERAND_REGISTER = "operand_register"


SITE_BITS = {PeSite.OUTPUT_REGISTER: 8, PeSite.ACCUMULATOR: 32, PeSite.OPERAND_REGISTER: 8}


@dataclass(frozen=True)
class PeFault:
    """One fault in PE (row, col): a flip of ``bit`` at ``cycle``, or (cycle None) bit stuck at
    ``stuck`` for the whole inference."""

    site: PeSite
    row: int
    col: int
    bit: int
    cycle: int | None = None
    stuck: int = 1

    @property
    def is_permanent(self) -> bool:
        return self.cycle is None

    def apply(self, values: np.ndarray, width: int) -> np.ndarray:
        """The register values after the fault: ``width``-bit two's complement in int64."""
        v = np.asarray(values, np.int64) & ((1 << width) - 1)
        mask = np.int64(1) << self.bit
        if self.cycle is not None:
            v = v ^ mask
        elif self.stuck:
            v = v | mask
        else:
            v = v & ~mask
        return np.where(v >= (1 << (width - 1)), v - (1 << width), v)


def check_fault(fault: PeFault, rows: int, cols: int, cycles: int) -> None:
    """Refuse faults outside the array, the register width or the run."""
    if not (0 <= fault.row < rows and 0 <= fault.col < cols):
        raise AccelsimError(f"PE ({fault.row}, {fault.col}) outside the {rows}x{cols} array")
    if not 0 <= fault.bit < SITE_BITS[fault.site]:
        raise AccelsimError(
            f"bit {fault.bit} outside the {SITE_BITS[fault.site]}-bit {fault.site.value}"
        )
    if fault.cycle is not None and not 0 <= fault.cycle < cycles:
        raise AccelsimError(f"cycle {fault.cycle} outside the run's 0..{cycles - 1}")


def sample_pe_faults(
    site: PeSite, rows: int, cols: int, cycles: int, n: int, *, permanent: bool,
    rng: np.random.Generator,
) -> tuple[PeFault, ...]:  # fmt: skip
    """``n`` faults uniform over PE x cycle x bit (exposure-weighted: a longer run is hit more
    often), or over PE x bit x stuck value when ``permanent``."""
    bits = SITE_BITS[site]
    r = rng.integers(0, rows, n)
    c = rng.integers(0, cols, n)
    b = rng.integers(0, bits, n)
    if permanent:
        v = rng.integers(0, 2, n)
        return tuple(
            PeFault(site, int(r[i]), int(c[i]), int(b[i]), None, int(v[i])) for i in range(n)
        )
    t = rng.integers(0, cycles, n)
    return tuple(PeFault(site, int(r[i]), int(c[i]), int(b[i]), int(t[i])) for i in range(n))
