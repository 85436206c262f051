"""Markdown tables from campaign summaries (``inject`` writes ``...summary.csv``).

    python experiments/campaign_report.py OUT/campaigns/campaign-lenet5-none.summary.csv [...]

Prints, per file, one table with the whole campaign, each layer and each bit: faults, accuracy
loss (percentage points), critical-fault rate and the fraction of faults that change at least
one image, each with its 95 % interval. The README's campaign tables come from this script.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def _fmt(row: dict[str, str], metric: str, scale: float, digits: int) -> str:
    v, lo, hi = (float(row[f"{metric}_{p}"]) * scale for p in ("value", "lo", "hi"))
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table(path: Path) -> list[str]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    lines = [
        f"**{path.name.removesuffix('.summary.csv').removeprefix('campaign-')}**",
        "",
        "| group | faults | population | accuracy loss (pp) | critical rate (%) "
        "| faults with effect (%) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = "all" if r["group_kind"] == "all" else f"{r['group_kind']} {r['group']}"
        lines.append(
            f"| {label} | {int(r['faults']):,} | {int(r['population']):,} "
            f"| {_fmt(r, 'accuracy_loss_pp', 1, 4)} | {_fmt(r, 'critical_rate', 100, 4)} "
            f"| {_fmt(r, 'faults_with_effect', 100, 2)} |"
        )
    return lines


def main() -> None:
    for arg in sys.argv[1:]:
        print("\n".join(table(Path(arg))))
        print()


if __name__ == "__main__":
    main()
