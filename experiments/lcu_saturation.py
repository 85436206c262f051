"""The LCU's saturation defect, measured: split corrupts saturated neurons with no fault present.

    python experiments/lcu_saturation.py [--images 1000] [--nvf-images 200] [--networks ...]

Each half of a split neuron is ``clamp(round(v / 2), 0, 127)`` for its pre-clamp value v; for
v >= 127 the half is 64 or more and the LCU clears its bit 6 (the paper's premise that it is 0
fault-free fails). Per network and share of protected neurons (the top P % by the workload's
NVF), over the first ``--images`` test images, fault-free: how many protected neuron outputs
saturate (the unprotected output is 127), how many split outputs differ from the unprotected
ones by more than the rounding step, and the accuracy of the unprotected network, of split and
of split_clamped (halves clamped at 63), with the images each changes. Writes
``experiments/out/lcu_saturation/saturation.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from accelsim import (
    ProtectionMode,
    classify,
    files,
    forward_all,
    load_dataset,
    load_workload,
    protected_layer,
    protected_logits,
    quantize_images,
    workload_nvf,
)

OUT = Path(__file__).resolve().parent / "out" / "lcu_saturation"
TOPS = (1.0, 5.0, 20.0, 100.0)


def measure(name: str, n_images: int, nvf_images: int) -> list[dict]:
    spec = load_workload(name)
    nvf = workload_nvf(spec, n_images=nvf_images, output_dir=OUT / "cache")
    net = nvf.net
    data = load_dataset(net.dataset, "test", n_images=n_images)
    x = quantize_images(net, data.images)
    outs = forward_all(net, x)
    inputs = (x, *outs[:-1])
    labels = data.labels
    golden = classify(outs[-1])
    rows = []
    for top in TOPS:
        threshold = 0.0 if top == 100 else nvf.threshold_for_top(top)
        row = {
            "network": name,
            "top_percent": top,
            "threshold_percent": threshold,
            "images": len(x),
            "unprotected_accuracy": float(np.mean(golden == labels)),
        }
        for mode in (ProtectionMode.SPLIT, ProtectionMode.SPLIT_CLAMPED):
            pnet = nvf.protected(mode, threshold)
            outputs = saturated = corrupted = 0
            for layer, index in zip(pnet.plan.layers, pnet.plan.neurons, strict=True):
                y = outs[layer].reshape(len(x), -1)[:, index].astype(np.int64)
                seen = protected_layer(pnet, layer, inputs[layer]).reshape(len(x), -1)[:, index]
                outputs += y.size
                saturated += int(np.sum(y == 127))
                corrupted += int(np.sum(np.abs(seen.astype(np.int64) - y) > 1))
            preds = classify(protected_logits(pnet, x))
            row.update({
                "protected": pnet.plan.n_protected, "protected_outputs": outputs,
                "saturated_outputs": saturated,
                f"{mode.value}_corrupted_outputs": corrupted,
                f"{mode.value}_accuracy": float(np.mean(preds == labels)),
                f"{mode.value}_changed_images": int(np.sum(preds != golden)),
            })  # fmt: skip
        rows.append(row)
        print(_line(row), flush=True)
    return rows


HEADER = ("| network | top % | protected | saturated outputs | split: corrupted | split acc % "
          "(changed) | split_clamped: corrupted | split_clamped acc % (changed) | unprotected "
          "acc % |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip


def _line(r: dict) -> str:
    n = max(r["protected_outputs"], 1)
    return (
        f"| {r['network']} | {r['top_percent']:g} | {r['protected']:,} | "
        f"{r['saturated_outputs']:,} ({100 * r['saturated_outputs'] / n:.2f} %) | "
        f"{r['split_corrupted_outputs']:,} | {100 * r['split_accuracy']:.2f} "
        f"({r['split_changed_images']}) | {r['split_clamped_corrupted_outputs']:,} | "
        f"{100 * r['split_clamped_accuracy']:.2f} ({r['split_clamped_changed_images']}) | "
        f"{100 * r['unprotected_accuracy']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--nvf-images", type=int, default=200)
    parser.add_argument("--networks", nargs="+", default=["mlp7", "lenet5", "alexnet"])
    args = parser.parse_args()
    print(HEADER)
    rows = [r for name in args.networks for r in measure(name, args.images, args.nvf_images)]
    files.write_text(OUT / "saturation.json", json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
