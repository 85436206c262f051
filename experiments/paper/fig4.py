"""Fig. 4: accuracy loss, critical faults and network size vs NVF threshold for unprotected,
split and TMR networks, ours next to the paper's. The paper prints Fig. 4 (g-i), the network
sizes, through Table I; its accuracy loss and critical faults only at NVF 20 % (see nvf20.py).
Our networks have no neuron at NVF >= 5 %, so besides the paper's grid the sweep protects the
same *shares* of neurons as the paper's grid does (the top 93.5 %, 35.4 %, ... of LeNet-5's).

    python experiments/paper/fig4.py [--networks ...] [--faults N] [--test-images N] [--seed S]

Writes experiments/out/fig4/NET/ (results, figures, report.html) and result-NETS.{json,md}.
"""

from __future__ import annotations

import argparse

from common import (
    NAMES,
    OUT,
    PAPER_TABLE_I,
    PAPER_THRESHOLDS,
    REPO,
    paper_key,
    paper_shares,
    save,
    study_json,
)


def _cell(row: dict | None, key: str, scale: float) -> str:
    if row is None:
        return "-"
    est = row[key]
    return f"{scale * est['value']:.4f} ± {scale * (est['hi'] - est['lo']) / 2:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", default="mlp7,lenet5,alexnet")
    parser.add_argument("--faults", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--arch", default=str(REPO / "arch" / "pe16x16.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    docs, md = {}, []
    for net in args.networks.split(","):
        shares = paper_shares(net)
        doc = study_json(
            args.arch, str(REPO / "workloads" / f"{net}.yaml"), scale="paper",
            tops=tuple(round(s, 4) for s in shares), faults=args.faults,
            test_images=args.test_images, seed=args.seed, out_dir=OUT / "fig4" / net,
            resume=True,
        )  # fmt: skip
        docs[net] = doc
        table = PAPER_TABLE_I[paper_key(net)]
        n = table[0]
        md += [f"**{NAMES[net]}**: paper's network sizes (Fig. 4 g-i, from Table I) and ours at "
               "the same share of protected neurons; our accuracy loss and critical-fault rate "
               f"({doc['rows'][0]['faults']:,} faults x {doc['rows'][0]['images']:,} test images "
               "per campaign, 95 % intervals)", "",
               "| paper NVF >= | share | paper split / TMR neurons | ours: NVF >= | split neurons"
               " | split: accuracy loss (pp) | split: critical (%) | split: critical at a fixed "
               "raw rate (%) | TMR: accuracy loss (pp) | TMR: critical (%) | TMR: critical at a "
               "fixed raw rate (%) |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        base = doc["rows"][0]
        md.append(
            f"| unprotected | 0 % | {n:,} / {n:,} | - | {base['neurons']:,} | "
            f"{_cell(base, 'accuracy_loss_pp', 1)} | {_cell(base, 'critical_rate', 100)} | "
            f"{_cell(base, 'critical_rate_fixed_raw', 100)} | - | - | - |"
        )
        by_count: dict[int, dict] = {}
        for r in doc["rows"][1:]:
            by_count.setdefault(r["critical_neurons"], {})[r["mode"]] = r
        for t, count in zip(PAPER_THRESHOLDS, table, strict=True):
            if count == 0:
                continue
            share = 100 * count / n
            ours = min(by_count, key=lambda c: abs(100 * c / base["neurons"] - share))
            s, m = by_count[ours].get("split"), by_count[ours].get("tmr")
            md.append(
                f"| {t:g} % | {share:.2f} % | {n + count:,} / {n + 2 * count:,} | "
                f"{s['threshold_percent']:.4g} % | {s['neurons']:,} | "
                f"{_cell(s, 'accuracy_loss_pp', 1)} | {_cell(s, 'critical_rate', 100)} | "
                f"{_cell(s, 'critical_rate_fixed_raw', 100)} | "
                f"{_cell(m, 'accuracy_loss_pp', 1)} | {_cell(m, 'critical_rate', 100)} | "
                f"{_cell(m, 'critical_rate_fixed_raw', 100)} |"
            )
        md.append("")
    save("fig4", docs, md)


if __name__ == "__main__":
    main()
