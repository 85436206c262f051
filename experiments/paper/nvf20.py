"""The paper's NVF 20 % comparison (DESIGN.md section 7) on our networks: unprotected vs split
vs TMR at NVF >= 20 % and, because our well-trained networks have no neuron that critical, at
the share of neurons the paper protects at 20 % (17.86 / 3.99 / 0.6 %), with 95 % intervals.

    python experiments/paper/nvf20.py [--networks ...] [--faults N] [--test-images N]
        [--arch arch/pe16x16.yaml] [--seed S]

Default campaign size: the Leveugle sample (the paper's) over the workload's test images;
--faults / --test-images shrink it. Writes experiments/out/nvf20/result-NETS.{json,md}.
"""

from __future__ import annotations

import argparse

from common import NAMES, OUT, PAPER, REPO, paper_key, save, study_json


def _fmt(est: dict, scale: float = 1.0) -> str:
    v, lo, hi = (scale * est[k] for k in ("value", "lo", "hi"))
    return f"{v:.4f} [{lo:.4f}, {hi:.4f}]"


def _ratio(base: dict, row: dict, key: str) -> str:
    """unprotected / protected, with the range from the ratio of the two 95 % intervals' near
    ends to that of their far ends (conservative: the campaigns are independent)."""
    b, r = base[key], row[key]
    if r["value"] <= 0 or b["value"] <= 0:
        return "none (a value <= 0)"
    far = "inf" if r["lo"] <= 0 else f"{b['hi'] / r['lo']:.2f}"
    return f"{b['value'] / r['value']:.2f}x [{max(b['lo'], 0) / r['hi']:.2f}, {far}]"


def _mode_rows(row: dict, base: dict, paper: dict, arch: str) -> list[str]:
    mode, label = row["mode"], row["label"]
    at = f"| {mode} at {label}"
    share = 100 * row["critical_neurons"] / base["neurons"]
    paper_protected = paper["critical_20"] if "NVF >= 20" in label else "-"
    paper_loss = paper["split_loss_20"] if mode == "split" else "-"
    paper_crit = f"{paper['critical_ratio']:.2f}x fewer" if mode == "split" else "-"
    paper_neurons = paper["split_neurons_20"] if mode == "split" else paper["tmr_neurons_20"]
    return [
        f"{at}: protected | {paper_protected} | {row['critical_neurons']:,} ({share:.2f} %) |",
        f"{at}: accuracy loss (pp) | {paper_loss} | {_fmt(row['accuracy_loss_pp'])} "
        f"(unprotected / this: {_ratio(base, row, 'accuracy_loss_pp')}) |",
        f"{at}: critical-fault rate (%) | {paper_crit} | {_fmt(row['critical_rate'], 100)} "
        f"(unprotected / this: {_ratio(base, row, 'critical_rate')}) |",
        f"{at}: critical rate at a fixed raw fault rate (%) | - | "
        f"{_fmt(row['critical_rate_fixed_raw'], 100)} "
        f"(unprotected / this: {_ratio(base, row, 'critical_rate_fixed_raw')}) |",
        f"{at}: neurons | {paper_neurons:,} (at 20 %) | {row['neurons']:,} |",
        f"{at}: cycles on {arch} | - | +{row['cycle_overhead_percent']:.2f} % |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", default="mlp7,lenet5,alexnet")
    parser.add_argument("--faults", type=int)
    parser.add_argument("--test-images", type=int)
    parser.add_argument("--arch", default=str(REPO / "arch" / "pe16x16.yaml"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    docs, md = {}, []
    for net in args.networks.split(","):
        paper = PAPER[paper_key(net)]
        doc = study_json(
            args.arch, str(REPO / "workloads" / f"{net}.yaml"), scale="paper",
            thresholds=(20.0,), tops=(paper["critical_20_share"],), seed=args.seed,
            out_dir=OUT / "nvf20" / net, resume=True, faults=args.faults or None,
            test_images=args.test_images or None,
        )  # fmt: skip
        docs[net] = doc
        rows = doc["rows"]
        base = rows[0]
        implied = paper["split_loss_20"] * paper["loss_ratio"]
        md += [
            f"**{NAMES[net]}** ({base['faults']:,} faults x {base['images']:,} test images per "
            "campaign; 95 % intervals)", "", "| | paper | ours |", "|---|---|---|",
            f"| neurons | {paper['neurons']:,} | {base['neurons']:,} |",
            f"| int8 accuracy (campaign images) | {paper['int8_accuracy']} % | "
            f"{100 * base['fault_free_accuracy']:.2f} % |",
            f"| FI sample (Leveugle) | {paper['fi_sample']:,} | {base['faults']:,} |",
            f"| unprotected: accuracy loss (pp) | {implied:.2f} (implied) | "
            f"{_fmt(base['accuracy_loss_pp'])} |",
            f"| unprotected: critical-fault rate (%) | - | {_fmt(base['critical_rate'], 100)} |",
        ]  # fmt: skip
        for row in rows[1:]:
            md += _mode_rows(row, base, paper, doc["arch"])
        md.append("")
    save("nvf20", docs, md)


if __name__ == "__main__":
    main()
