"""How few inputs carry a layer's NVF, and what that does to its confidence interval.

    python experiments/nvf_concentration.py [--images 500] [--networks mlp7 lenet5 alexnet]

Per network, the default NVF (linear, log2, gradient check: the workload's analysis settings) of
every neuron on each of the first ``--images`` training images separately; the images sorted by
their classification margin (top-1 minus top-2 int8 logit); per layer, the share of the layer's
total NVF (summed over neurons and images) that the 2 % lowest-margin images carry, and how many
images carry half of it. Then the median neuron's 95 % half-width over all images: the normal
approximation every NVF result reports and the distribution-free empirical Bernstein bound
(``NvfResult.bound_half_width``). Also prints each layer's mean and max NVF (the docs once
showed AlexNet's conv3 and conv4 with equal ones). Writes
``experiments/out/nvf_concentration/concentration.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from accelsim import (
    compute_nvf,
    files,
    forward,
    load_dataset,
    load_network,
    load_workload,
    quantize_images,
)

OUT = Path(__file__).resolve().parent / "out" / "nvf_concentration"


def measure(name: str, n_images: int) -> dict:
    spec = load_workload(name).analysis
    net = load_network(name)
    x = quantize_images(net, load_dataset(net.dataset, "train", n_images=n_images).images)
    logits = np.sort(forward(net, x).astype(np.int64), axis=1)
    margin = logits[:, -1] - logits[:, -2]
    per_image = []  # (layer totals) per image
    for i in range(len(x)):
        r = compute_nvf(net, x[i : i + 1], method=spec.method, mapping=spec.bit_mapping,
                        gradient_check=spec.has_gradient_check)  # fmt: skip
        per_image.append([float(lay.nvf.sum()) for lay in r.layers])
    totals = np.array(per_image)  # (images, layers)
    order = np.argsort(margin, kind="stable")
    k = max(1, round(0.02 * len(x)))
    whole = compute_nvf(net, x, method=spec.method, mapping=spec.bit_mapping,
                        gradient_check=spec.has_gradient_check)  # fmt: skip
    layers = []
    for j, lay in enumerate(whole.layers):
        col = totals[order, j]
        total = col.sum()
        cum = np.cumsum(np.sort(col)[::-1])
        half = int(np.searchsorted(cum, total / 2) + 1) if total > 0 else 0
        layers.append({
            "layer": lay.name, "neurons": int(lay.nvf.size),
            "share_of_lowest_2pc_margin_images": float(col[:k].sum() / total) if total else None,
            "images_carrying_half": half,
            "mean_nvf_percent": 100 * float(lay.nvf.mean()),
            "max_nvf_percent": 100 * float(lay.nvf.max()),
            "median_normal_half_width_pp": 100 * float(np.median(lay.half_width)),
            "median_bound_half_width_pp": 100 * float(np.median(whole.bound_half_width(lay))),
        })  # fmt: skip
    return {"network": name, "images": len(x), "lowest_margin_images": k,
            "method": spec.method.value, "layers": layers}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--networks", nargs="+", default=["mlp7", "lenet5", "alexnet"])
    args = parser.parse_args()
    print(
        "| network | layer | neurons | NVF share of the 2 % lowest-margin images | images "
        "carrying half | mean / max NVF % | median half-width, normal / distribution-free (pp) |"
    )
    print("|---|---|---|---|---|---|---|")
    docs = []
    for name in args.networks:
        doc = measure(name, args.images)
        docs.append(doc)
        for lay in doc["layers"]:
            share = lay["share_of_lowest_2pc_margin_images"]
            print(f"| {name} | {lay['layer']} | {lay['neurons']:,} | "
                  f"{'-' if share is None else f'{100 * share:.0f} %'} | "
                  f"{lay['images_carrying_half']} of {doc['images']} | "
                  f"{lay['mean_nvf_percent']:.3f} / {lay['max_nvf_percent']:.3f} | "
                  f"{lay['median_normal_half_width_pp']:.3f} / "
                  f"{lay['median_bound_half_width_pp']:.3f} |", flush=True)  # fmt: skip
    files.write_text(OUT / "concentration.json", json.dumps(docs, indent=2))


if __name__ == "__main__":
    main()
