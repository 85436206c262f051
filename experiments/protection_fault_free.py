"""Fault-free accuracy of the split network next to the original, per NVF threshold (issue 4).

    python experiments/protection_fault_free.py lenet5 [--nvf-images 1000]

Computes (or reuses, via the same cache as `analyze`) the linear NVF over the first
``--nvf-images`` training images, then for each threshold of the paper's grid and of a finer grid
up to the largest NVF, builds the split plan and measures on the full test split: accuracy of
the original and of the split network, and the number of test images whose class changes
(rounding of y / 2, and the LCU clearing bit 6 of a half equal to 64). TMR is checked to be
identical. Prints a Markdown table and writes it to ``experiments/out/protection/<net>.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from accelsim import (
    PAPER_THRESHOLDS,
    ProtectedNetwork,
    ProtectionMode,
    analysis_key,
    classify,
    compute_nvf,
    files,
    fine_thresholds,
    forward,
    load_dataset,
    load_network,
    load_nvf,
    plan_from_nvf,
    protected_logits,
    quantize_images,
    save_nvf,
)
from accelsim import BitMapping as Mapping
from accelsim import NvfMethod as Method

OUT = Path(__file__).resolve().parent / "out" / "protection"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network")
    parser.add_argument("--nvf-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, help="first N test images (default: all)")
    args = parser.parse_args()
    net = load_network(args.network)
    train = load_dataset(net.dataset, "train", n_images=args.nvf_images)
    x_nvf = quantize_images(net, train.images)
    key = analysis_key(net, x_nvf, Method.LINEAR, Mapping.LOG2, True)
    path = OUT / f"nvf-{net.name}-{key}.npz"
    nvf = load_nvf(path, key) if path.is_file() else compute_nvf(net, x_nvf)
    save_nvf(nvf, path, key)
    test = load_dataset(net.dataset, "test", n_images=args.test_images)
    x = quantize_images(net, test.images)
    golden = classify(forward(net, x))
    base = float(np.mean(golden == test.labels))
    per_layer = {lay.layer: lay.nvf for lay in nvf.layers}
    thresholds = sorted(set(PAPER_THRESHOLDS) | set(fine_thresholds(nvf.nvf)))
    lines = [
        f"**{net.name}** (linear NVF over {len(x_nvf)} training images; {len(x):,} test "
        f"images; original int8 accuracy {100 * base:.2f} %)",
        "",
        "| NVF >= | split neurons | split accuracy | delta (pp) | images changed | TMR identical |",
        "|---|---|---|---|---|---|",
    ]
    for t in thresholds:
        split = plan_from_nvf(net, ProtectionMode.SPLIT, per_layer, t)
        if split.n_protected == 0:
            continue
        preds = classify(protected_logits(ProtectedNetwork(net, split, {}), x))
        tmr = plan_from_nvf(net, ProtectionMode.TMR, per_layer, t)
        same = np.array_equal(classify(protected_logits(ProtectedNetwork(net, tmr, {}), x)), golden)
        acc = float(np.mean(preds == test.labels))
        lines.append(
            f"| {t:g} % | {split.n_protected} | {100 * acc:.2f} % | {100 * (acc - base):+.2f} | "
            f"{int(np.sum(preds != golden))} | {'yes' if same else 'NO'} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    files.write_text(OUT / f"{net.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
