"""Fixtures of the timing tests: architectures built in code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from accelsim.config.arch import ArchSpec, PEArraySpec, load_arch

REPO = Path(__file__).resolve().parents[3]


def arch_with(pe: PEArraySpec, **changes) -> ArchSpec:
    """The shipped pe8x8 architecture with another PE array (and other fields)."""
    return dataclasses.replace(load_arch(REPO / "arch" / "pe8x8.yaml"), pe_array=pe, **changes)
