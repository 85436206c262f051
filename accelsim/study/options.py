"""What the study's option records share: inputs given as files, built-in names or specs, and
checks whose errors name the parameter."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, TypeVar

from accelsim.config.arch import ArchSpec, load_arch
from accelsim.config.workload import ProtectionMode, WorkloadSpec, load_workload
from accelsim.datasets import SPLITS
from accelsim.errors import ParameterError


def as_workload(workload: WorkloadSpec | Path | str) -> WorkloadSpec:
    """A workload spec, or one loaded from a YAML file or a built-in name."""
    return workload if isinstance(workload, WorkloadSpec) else load_workload(workload)


def as_arch(arch: ArchSpec | Path | str) -> ArchSpec:
    """An architecture spec, or one loaded from a YAML file or a built-in name."""
    return arch if isinstance(arch, ArchSpec) else load_arch(arch)


def check_split(name: str, value: str | None) -> None:
    """A dataset split option (train, test, sample) or None."""
    if value is not None and value not in SPLITS:
        raise ParameterError(
            name, f"{{parameter}}: expected one of {', '.join(SPLITS)}, got {value!r}"
        )


def check_percent(name: str, value: Any, *, low_open: bool = False) -> float:
    """A percentage in [0, 100] ((0, 100] when ``low_open``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0 < value <= 100 if low_open else 0 <= value <= 100):
        span = "(0, 100]" if low_open else "[0, 100]"
        raise ParameterError(name, f"{{parameter}}: expected a percentage in {span}, got {value!r}")
    return float(value)


def estimate_doc(e: Any) -> dict[str, float]:
    """An estimate with its interval as JSON data."""
    return {"value": e.value, "lo": e.lo, "hi": e.hi}


E = TypeVar("E", bound=enum.Enum)


def as_enum(name: str, kind: type[E], value: Any) -> E:
    """``value`` as a member of ``kind`` (a member or its value)."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise ParameterError(
            name, f"{{parameter}}: expected one of {allowed}, got {value!r}"
        ) from None


def as_modes(name: str, values: Any) -> tuple[ProtectionMode, ...]:
    """A sequence of protection modes (members or their values)."""
    try:
        return tuple(ProtectionMode(m) for m in values)
    except (ValueError, TypeError):
        allowed = ", ".join(m.value for m in ProtectionMode)
        raise ParameterError(
            name, f"{{parameter}}: expected modes from {{{allowed}}}, got {list(values)!r}"
        ) from None
