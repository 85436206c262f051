"""Table I: critical neurons per NVF threshold, ours next to the paper's, for MLP-7, LeNet-5
and AlexNet (NVF: the workload's analysis settings, 1,000 training images; cached).

    python experiments/paper/table1.py [--networks mlp7,lenet5,alexnet]

Writes experiments/out/table1/result-NETS.{json,md}.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import NAMES, PAPER_TABLE_I, REPO, paper_key, save

from accelsim import PAPER_THRESHOLDS, critical_table, load_workload, workload_nvf


def _analysis(net: str) -> dict:
    """The workload's NVF (cached) and its Table I, as JSON data."""
    run = workload_nvf(load_workload(REPO / "workloads" / f"{net}.yaml"))
    result = run.result
    half = float(np.median(np.concatenate([lay.half_width for lay in result.layers])))
    return {
        "network": run.net.name, "images": result.n_inputs, "split": run.data.split,
        "method": result.method.value, "cached": run.cached,
        "median_half_width_percent": 100 * half,
        "layers": [{"name": lay.name, "max_nvf_percent": 100 * float(lay.nvf.max())}
                   for lay in result.layers],
        "table": [vars(r) for r in critical_table(result.nvf, PAPER_THRESHOLDS, run.net.name)],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", default="mlp7,lenet5,alexnet")
    args = parser.parse_args()
    docs, md = {}, []
    for net in args.networks.split(","):
        doc = _analysis(net)
        docs[net] = doc
        md += [
            f"**{NAMES[net]}** ({doc['images']:,} {doc['split']} images, NVF 95 % half-width of "
            f"the median neuron {doc['median_half_width_percent']:.3f} pp)", "",
            "| NVF >= | ours | ours % | paper | paper % |", "|---|---|---|---|---|",
        ]  # fmt: skip
        for row in doc["table"]:
            md.append(
                f"| {row['threshold_percent']:g} % | {row['critical']:,} | "
                f"{row['portion_percent']:.2f} | {row['paper_critical']:,} | "
                f"{row['paper_portion_percent']:.2f} |"
            )
        top = max(lay["max_nvf_percent"] for lay in doc["layers"])
        md += ["", f"largest NVF of any neuron: {top:.3f} %", ""]
    assert all(paper_key(n) in PAPER_TABLE_I for n in docs)
    save("table1", docs, md)


if __name__ == "__main__":
    main()
