"""One row per (NVF threshold, protection mode) of a sweep, written as CSV and JSON as the
sweep goes, and the recommendation under an accuracy-loss budget."""

from __future__ import annotations

import csv
import dataclasses
import enum
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim import files
from accelsim.config.workload import ProtectionMode


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class ResultRow:
    """One protected (or the unprotected) network of a sweep.

    Threshold and top percentage are NaN for the unprotected row. Overheads are relative to the
    unprotected network (whose int8/int32 parameter bytes plus int8 activation bytes per
    inference are the memory base): neurons (the paper's metric); memory in the accelerator
    view (``memory_overhead_percent``: the copies' requantisation parameters, their outputs and
    the correction stage's registers; copies re-read the same weights) and in the paper's
    network-transform view (``memory_overhead_transform_percent``: every copy of a Dense neuron
    with its own weight row and bias, a split one also a column of the next layer); cycles on
    the architecture. Accuracy loss is in percentage points (mean over faults), rates are
    fractions. ``critical_rate`` is per fault drawn from this network's population (copies
    included); ``critical_rate_fixed_raw`` is the rate at a fixed raw fault rate per bit,
    relative to the unprotected network: critical_rate x population / the unprotected
    population (the critical fault x image events per inference, per unprotected-network fault),
    comparable across networks of different size."""

    mode: ProtectionMode
    label: str
    threshold_percent: float
    top_percent: float
    critical_neurons: int
    neurons: int
    neurons_overhead_percent: float
    param_bytes: int
    param_bytes_extra: int
    activation_bytes: int
    activation_bytes_extra: int
    memory_overhead_percent: float
    memory_overhead_transform_percent: float
    compute_cycles: int
    cycles: int
    cycle_overhead_percent: float
    faults: int
    population: int
    images: int
    fault_free_accuracy: float
    accuracy_loss_pp: Interval
    critical_rate: Interval
    critical_rate_fixed_raw: Interval
    faults_with_effect: Interval
    campaign_seconds: float


FLAT_FIELDS = [f.name for f in dataclasses.fields(ResultRow)]


def _flat(row: ResultRow) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FLAT_FIELDS:
        value = getattr(row, name)
        if isinstance(value, Interval):
            out.update({f"{name}_{k}": v for k, v in dataclasses.asdict(value).items()})
        else:
            out[name] = value.value if isinstance(value, enum.Enum) else value
    return out


def write_results(rows: list[ResultRow], out_dir: Path, meta: dict[str, Any]) -> list[Path]:
    """results.csv (flat, one row per threshold x mode) and results.json (meta + rows)."""
    flat = [_flat(r) for r in rows]
    csv_path, json_path = out_dir / "results.csv", out_dir / "results.json"
    with files.atomic_text(csv_path, newline="") as fh:
        if flat:
            w = csv.DictWriter(fh, fieldnames=list(flat[0]))
            w.writeheader()
            w.writerows(flat)
    doc = {**meta, "rows": [row_document(r) for r in rows]}
    files.write_text(json_path, json.dumps(doc, indent=1, default=_json_default, allow_nan=False))
    return [csv_path, json_path]


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_nan(v) for v in obj]
    return obj


def row_document(row: ResultRow) -> dict[str, Any]:
    """A row as strict JSON data (NaN, the unprotected row's threshold, becomes null)."""
    return _no_nan(dataclasses.asdict(row))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def recommend(rows: list[ResultRow], budget_pp: float) -> tuple[ResultRow | None, str]:
    """The cheapest row (fewest extra cycles, then fewest extra neurons) whose accuracy loss is
    below the budget with 95 % confidence (upper bound < budget), and why."""
    ok = [r for r in rows if r.accuracy_loss_pp.hi < budget_pp]
    if not ok:
        return None, (
            f"no configuration keeps the accuracy loss below {budget_pp:g} pp with 95 % "
            "confidence: lower the threshold (protect more neurons) or use TMR"
        )
    best = min(ok, key=lambda r: (r.cycle_overhead_percent, r.neurons_overhead_percent))
    if best.mode is ProtectionMode.NONE:
        return best, (
            f"the unprotected network already keeps the accuracy loss below {budget_pp:g} pp "
            f"(95 % upper bound {best.accuracy_loss_pp.hi:.4f} pp): no protection is needed "
            "for this budget"
        )
    return best, (
        f"{best.mode.value} at NVF >= {best.threshold_percent:.4g} % ({best.label}): accuracy loss "
        f"{best.accuracy_loss_pp.value:.4f} pp (95 % upper bound {best.accuracy_loss_pp.hi:.4f} "
        f"< {budget_pp:g}), at +{best.cycle_overhead_percent:.2f} % cycles, "
        f"+{best.neurons_overhead_percent:.2f} % neurons, +{best.memory_overhead_percent:.2f} % "
        "memory (accelerator view)"
    )


def is_unprotected(row: ResultRow) -> bool:
    return row.mode is ProtectionMode.NONE or math.isnan(row.threshold_percent)
