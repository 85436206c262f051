"""How well does NVF predict real bit flips? (issue 3, item 3)

    python experiments/validate_nvf.py lenet5 --images 200 [--split train] [--seed 0]
    python experiments/validate_nvf.py resnet20 --images 20 --neurons-per-layer 20

Chains and graphs (ResNet-20, the MobileNet): on graphs the exact methods run on downstream
re-runs of the graph, minutes per image over every neuron, so sample with --neurons-per-layer.

Computes the ground truth ``exact-bits`` (the fraction of the 8 real bit flips of each neuron
that change the class, averaged over the images) and every NVF variant (linear / exact x
log2 / paper / value x gradient check on / off), then prints, per layer and overall: Spearman
rank correlation over neurons, mean absolute error in percentage points, top-k precision
(k = 1 %, 5 %, 20 % of the layer) and precision / recall of the critical set at thresholds where
the true set is not empty. Writes ``experiments/out/validate_nvf/<net>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np

from accelsim import BitMapping as Mapping
from accelsim import (
    LayerNvf,
    NvfResult,
    compute_nvf_variants,
    critical_set_agreement,
    files,
    layer_sizes,
    load_dataset,
    load_model,
    mean_absolute_error_pp,
    quantize_inputs,
    spearman,
    top_k_overlap,
)
from accelsim import NvfMethod as Method

OUT = Path(__file__).resolve().parent / "out" / "validate_nvf"
VARIANTS = tuple((m, c) for m in Mapping for c in (True, False))


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    n = truth.size
    row = {"spearman": spearman(pred, truth), "mae_pp": mean_absolute_error_pp(pred, truth)}
    for pct in (1, 5, 20):
        row[f"top{pct}"] = top_k_overlap(pred, truth, max(1, round(n * pct / 100)))
    return row


def _thresholds(truth: np.ndarray) -> list[float]:
    """The paper's grid where the true critical set is non-empty, else a fine grid below max."""
    top = float(truth.max()) * 100
    grid = [t for t in range(5, 55, 5) if t <= top]
    return [float(t) for t in grid] or [round(top * f, 3) for f in (0.25, 0.5, 0.75) if top > 0]


def _restrict(result: NvfResult, sample: dict[int, np.ndarray]) -> NvfResult:
    """The same result with each layer cut down to its sampled neurons."""
    layers = tuple(
        LayerNvf(
            lay.layer,
            lay.name,
            lay.nvf[sample[lay.layer]],
            lay.bit_map[:, sample[lay.layer]],
            lay.n_skipped[sample[lay.layer]],
            lay.half_width[sample[lay.layer]],
        )
        for lay in result.layers
    )
    return NvfResult(
        result.method, result.mapping, result.has_gradient_check, result.n_inputs, layers
    )


def evaluate(net_name: str, truth: NvfResult, variants: dict[str, NvfResult]) -> dict:
    report: dict = {"network": net_name, "variants": {}}
    t_all = truth.nvf
    for label, res in variants.items():
        rows = {"overall": _scores(res.nvf, t_all)}
        for lay_p, lay_t in zip(res.layers, truth.layers, strict=True):
            rows[lay_p.name] = _scores(lay_p.nvf, lay_t.nvf)
        rows["sets"] = [
            vars(critical_set_agreement(res.nvf, t_all, th)) for th in _thresholds(t_all)
        ]
        report["variants"][label] = rows
    return report


def markdown(report: dict, layers: list[str]) -> list[str]:
    fmt = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"  # noqa: E731
    lines = [
        f"### {report['network']}: {report['images']} {report['split']} images, "
        f"neurons per layer: {report['neurons_per_layer']}, truth = exact-bits",
        "",
        "| variant | scope | Spearman | MAE (pp) | top-1 % | top-5 % | top-20 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, rows in report["variants"].items():
        for scope in ["overall", *layers]:
            r = rows[scope]
            lines.append(
                f"| {label} | {scope} | {fmt(r['spearman'])} | {r['mae_pp']:.4f} | "
                f"{fmt(r['top1'])} | {fmt(r['top5'])} | {fmt(r['top20'])} |"
            )
    lines += [
        "",
        "| variant | NVF >= | predicted | actual | precision | recall |",
        "|---|---|---|---|---|---|",
    ]
    for label, rows in report["variants"].items():
        for s in rows["sets"]:
            lines.append(
                f"| {label} | {s['threshold_percent']} % | {s['predicted']} | {s['actual']} | "
                f"{fmt(s['precision'])} | {fmt(s['recall'])} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--split", default="train")
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--neurons-per-layer",
        type=int,
        default=0,
        help="exact methods on a random sample of this many neurons per layer",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    net = load_model(args.network)
    data = load_dataset(net.dataset, args.split, data_dir=args.data_dir, n_images=args.images)
    x = quantize_inputs(net, data.images)
    rng = np.random.default_rng(args.seed)
    sample = None
    if args.neurons_per_layer:
        sizes = layer_sizes(net)
        sample = {
            i: np.sort(rng.choice(n, min(n, args.neurons_per_layer), replace=False))
            for i, n in sizes.items()
        }
    timings = {}
    start = time.perf_counter()
    (truth,) = compute_nvf_variants(net, x, method=Method.EXACT_BITS, variants=(), neurons=sample)
    timings["exact-bits"] = time.perf_counter() - start
    results = {}
    for method in (Method.LINEAR, Method.EXACT):
        start = time.perf_counter()
        for res, (mapping, check) in zip(
            compute_nvf_variants(net, x, method=method, variants=VARIANTS, neurons=sample),
            VARIANTS,
            strict=True,
        ):
            results[f"{method.value}/{mapping.value}/gc-{'on' if check else 'off'}"] = res
        timings[method.value] = time.perf_counter() - start
    if sample is not None:
        truth = _restrict(truth, sample)
        results = {k: _restrict(v, sample) for k, v in results.items()}
    report = evaluate(net.name, truth, results)
    report["neurons_per_layer"] = args.neurons_per_layer or "all"
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report.update(
        images=len(x),
        split=data.split,
        seconds=timings,
        git=commit,
        truth_mean_percent=100 * float(truth.nvf.mean()),
        truth_max_percent=100 * float(truth.nvf.max()),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    files.write_text(OUT / f"{net.name}.json", json.dumps(report, indent=1))
    lines = markdown(report, [lay.name for lay in truth.layers])
    lines.append(
        f"\ntimes (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}; "
        f"true vulnerability mean {report['truth_mean_percent']:.3f} %, "
        f"max {report['truth_max_percent']:.3f} %"
    )
    files.write_text(OUT / f"{net.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
