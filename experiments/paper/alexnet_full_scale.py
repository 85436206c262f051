"""The NVF 20 % comparison on AlexNet at the paper's full scale, from the campaigns kept under
``experiments/results/``: each the workload's whole Leveugle sample x the 10,000 CIFAR-10 test
images (``inject workloads/alexnet.yaml --test-images 10000 [--protection MODE --threshold T]``,
T = 0.86875, the NVF that selects the paper's 0.6 % share: 625 neurons), one per mode.

    python experiments/paper/alexnet_full_scale.py [RESULT_DIR ...]

Prints the markdown table of docs/paper.md: per mode the accuracy loss and the critical-fault
rate with 95 % intervals, the rate at a fixed raw fault rate (scaled by the protected
population over the unprotected one: the same fault rate per bit of silicon), and unprotected /
protected ratios with the range from the ratio of the two intervals' near ends to that of their
far ends (the campaigns are independent, so this is conservative). A mode whose campaign is not
kept yet is listed as not run.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"
MODES = ("none", "split", "tmr")
EXTRA_COPIES = {"none": 0, "split": 1, "tmr": 2}
NEURONS = 103_168  # AlexNet's neurons (unprotected population / 8)


def _summary(path: Path) -> dict[str, float]:
    """The ``all`` row of a campaign's summary.csv, as floats."""
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["group_kind"] == "all":
                return {k: float(v) for k, v in row.items() if k not in ("group_kind", "group")}
    raise SystemExit(f"{path}: no 'all' row")


def find(dirs: list[Path]) -> dict[str, tuple[Path, dict[str, float]]]:
    """mode -> (summary file, its 'all' row), from the campaign files in ``dirs``."""
    found: dict[str, tuple[Path, dict[str, float]]] = {}
    for d in dirs:
        for path in sorted(d.glob("campaign-alexnet-*.summary.csv")):
            mode = path.name.removeprefix("campaign-alexnet-").split("-")[0].split(".")[0]
            if mode in MODES:
                found[mode] = (path, _summary(path))
    return found


def _est(s: dict[str, float], key: str, scale: float = 1.0) -> tuple[float, float, float]:
    return tuple(scale * s[f"{key}_{k}"] for k in ("value", "lo", "hi"))  # type: ignore[return-value]


def _fmt(v: tuple[float, float, float]) -> str:
    return f"{v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]"


def _ratio(base: tuple[float, float, float], row: tuple[float, float, float]) -> str:
    if row[0] <= 0 or base[0] <= 0:
        return "none (a value <= 0)"
    far = "inf" if row[1] <= 0 else f"{base[2] / row[1]:.2f}"
    return f"{base[0] / row[0]:.2f}x [{max(base[1], 0) / row[2]:.2f}, {far}]"


def table(found: dict[str, tuple[Path, dict[str, float]]]) -> list[str]:
    if "none" not in found:
        raise SystemExit("no unprotected campaign (campaign-alexnet-none.summary.csv) found")
    base = found["none"][1]
    lines = ["| | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
    cells: dict[str, list[str]] = {}
    for mode in MODES:
        if mode not in found:
            cells[mode] = ["not run"] * 8
            continue
        s = found[mode][1]
        neurons = s["population"] / 8
        protected = round((neurons - NEURONS) / EXTRA_COPIES[mode]) if EXTRA_COPIES[mode] else 0
        loss, crit = _est(s, "accuracy_loss_pp"), _est(s, "critical_rate", 100)
        raw = _est(s, "critical_rate", 100 * s["population"] / base["population"])
        b_loss, b_crit = _est(base, "accuracy_loss_pp"), _est(base, "critical_rate", 100)
        cells[mode] = [
            f"{int(s['faults']):,} of {int(s['population']):,}",
            f"{protected:,}",
            _fmt(loss),
            _fmt(crit),
            _fmt(raw),
            "-" if mode == "none" else _ratio(b_loss, loss),
            "-" if mode == "none" else _ratio(b_crit, crit),
            "-" if mode == "none" else _ratio(b_crit, raw),
        ]
    labels = [
        "faults (of the population of bits)", "protected neurons", "accuracy loss (pp)",
        "critical-fault rate (%)", "critical rate at a fixed raw fault rate (%)",
        "accuracy loss, unprotected / this", "critical faults, unprotected / this",
        "critical faults at a fixed raw fault rate, unprotected / this",
    ]  # fmt: skip
    for i, label in enumerate(labels):
        lines.append(f"| {label} | " + " | ".join(cells[m][i] for m in MODES) + " |")
    return lines


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:]] or sorted(p for p in RESULTS.iterdir() if p.is_dir())
    found = find(dirs)
    for mode in MODES:
        where = found[mode][0] if mode in found else "not run"
        print(f"{mode}: {where}")
    print("\n".join(table(found)))


if __name__ == "__main__":
    main()
