"""One function per CLI command: call the API, then print a table or one JSON document."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from accelsim.analysis.store import write_csv
from accelsim.cli.common import analysis_of, check_positive, emit, text_table
from accelsim.config.workload import (
    ZOO_NAMES,
    ProtectionMode,
    load_workload,
)
from accelsim.datasets import DATASET_NAMES, SPLITS, load_dataset, resolve_data_dir
from accelsim.datasets.fetch import FETCHERS
from accelsim.errors import DatasetError
from accelsim.functional.modelio import load_network, network_hash
from accelsim.functional.network import Network, classify, forward, predict, quantize_images
from accelsim.protection.overhead import network_overhead
from accelsim.protection.plan import plan_from_nvf, save_plan
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, protected_logits
from accelsim.report.plots import nvf_figure, save_figure
from accelsim.report.tables import (
    PAPER_THRESHOLDS,
    critical_table,
    fine_thresholds,
    format_table,
    needs_fine_grid,
)


def _model_doc(name: str, net: Network) -> dict[str, Any]:
    acc = net.accuracy
    return {
        "name": name,
        "dataset": net.dataset,
        "neurons": net.n_neurons,
        "parameters": net.n_parameters,
        "macs": net.macs,
        "layers": len(net.layers),
        "float_accuracy": acc.float_accuracy if acc else None,
        "int8_accuracy": acc.int8_accuracy if acc else None,
        "accuracy_images": acc.n_images if acc else None,
        "hash": network_hash(net)[:16],
    }


def models(args: argparse.Namespace) -> int:
    docs = [_model_doc(name, load_network(name)) for name in ZOO_NAMES]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    rows = [
        [
            d["name"],
            d["dataset"],
            f"{d['neurons']:,}",
            f"{d['parameters']:,}",
            f"{d['macs']:,}",
            pct(d["float_accuracy"]),
            pct(d["int8_accuracy"]),
        ]
        for d in docs
    ]
    headers = ["model", "dataset", "neurons", "parameters", "MACs/image", "float acc", "int8 acc"]
    emit(args, docs, [*text_table(headers, rows), "(accuracies on the full test split)"])
    return 0


def _workload_source(arg: str) -> tuple[str, str, int | None]:
    """(network, split, n_images) from a workload file or a zoo name."""
    if arg in ZOO_NAMES and not Path(arg).is_file():
        return arg, "test", None
    spec = load_workload(arg)
    return spec.network, spec.dataset.split, spec.dataset.n_images


def evaluate(args: argparse.Namespace) -> int:
    network, split, n_images = _workload_source(args.workload)
    split = args.split or split
    check_positive(args, "images", "batch_size")
    n_images = args.images if args.images is not None else n_images
    net = load_network(network)
    data = load_dataset(net.dataset, split, data_dir=args.data_dir, n_images=n_images)
    start = time.perf_counter()
    with tqdm(
        total=len(data), unit="img", desc=f"eval {net.name}", disable=None, leave=False
    ) as bar:
        preds = predict(net, data.images, batch_size=args.batch_size, on_batch=bar.update)
    seconds = time.perf_counter() - start
    correct = int(np.sum(preds == data.labels))
    doc = {
        "network": net.name,
        "hash": network_hash(net),
        "dataset": data.name,
        "split": data.split,
        "images": len(data),
        "correct": correct,
        "int8_accuracy": correct / max(len(data), 1),
        "seconds": seconds,
        "images_per_second": len(data) / seconds if seconds else None,
        "source": data.source,
    }
    lines = [
        f"{net.name} on {data.name}/{data.split} ({len(data):,} images from {data.source})",
        f"int8 accuracy: {100 * doc['int8_accuracy']:.2f} % ({correct:,}/{len(data):,})",
        f"time: {seconds:.2f} s ({doc['images_per_second'] or 0:,.0f} images/s)",
    ]
    if net.accuracy is not None:
        lines.append(
            f"recorded: int8 {100 * net.accuracy.int8_accuracy:.2f} %, float "
            f"{100 * net.accuracy.float_accuracy:.2f} % on {net.accuracy.split} "
            f"({net.accuracy.n_images:,} images)"
        )
    emit(args, doc, lines)
    return 0


def data_fetch(args: argparse.Namespace) -> int:
    dest = resolve_data_dir(args.data_dir)
    print(f"fetching {args.dataset} into {dest} ...", flush=True) if not args.json else None
    written = FETCHERS[args.dataset](dest)
    doc = {"dataset": args.dataset, "data_dir": str(dest), "files": [str(p) for p in written]}
    emit(args, doc, [f"verified and wrote {len(written)} files:", *(f"  {p}" for p in written)])
    return 0


def data_info(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.data_dir)
    found = []
    for name in DATASET_NAMES:
        for split in SPLITS:
            if split == "sample" and name != "mnist":
                continue
            try:
                ds = load_dataset(name, split, data_dir=args.data_dir)
                found.append(
                    {"dataset": name, "split": split, "images": len(ds), "source": ds.source}
                )
            except DatasetError as exc:
                found.append(
                    {
                        "dataset": name,
                        "split": split,
                        "images": 0,
                        "source": None,
                        "error": str(exc),
                    }
                )
    rows = [[f["dataset"], f["split"], f"{f['images']:,}", f["source"] or "missing"] for f in found]
    emit(
        args,
        {"data_dir": str(root), "splits": found},
        [f"data folder: {root}", *text_table(["dataset", "split", "images", "files"], rows)],
    )
    return 0


def analyze(args: argparse.Namespace) -> int:
    """NVF of every neuron over analysis images, Table I, CSV, figure; cached by content hash."""
    spec = load_workload(args.workload)
    run = analysis_of(args, spec)
    net, data, result, stem, cached, seconds = (
        run.net,
        run.data,
        run.result,
        run.stem,
        run.cached,
        run.seconds,
    )
    x_len = result.n_inputs
    write_csv(result, net, stem.with_suffix(".csv"))
    figures = save_figure(nvf_figure(result, net.name), stem)
    nvf = result.nvf
    table = critical_table(nvf, PAPER_THRESHOLDS, net.name)
    fine = critical_table(nvf, fine_thresholds(nvf)) if needs_fine_grid(nvf) else ()
    half = float(np.median(np.concatenate([lay.half_width for lay in result.layers])))
    doc = {
        "network": net.name,
        "hash": network_hash(net),
        "method": result.method.value,
        "mapping": result.mapping.value if result.mapping else None,
        "gradient_check": result.has_gradient_check,
        "images": x_len,
        "split": data.split,
        "key": stem.name.rsplit("-", 1)[-1],
        "cached": cached,
        "seconds": seconds,
        "median_half_width_percent": 100 * half,
        "layers": [
            {
                "name": lay.name,
                "neurons": int(lay.nvf.size),
                "mean_nvf_percent": 100 * float(lay.nvf.mean()),
                "max_nvf_percent": 100 * float(lay.nvf.max()),
            }
            for lay in result.layers
        ],
        "table": [vars(r) for r in table],
        "fine_table": [vars(r) for r in fine],
        "files": [str(stem.with_suffix(s)) for s in (".npz", ".csv")] + [str(p) for p in figures],
    }
    lines = [
        f"NVF of {net.n_neurons:,} neurons of {net.name} over {x_len:,} {data.split} images "
        f"({result.method.value}, mapping {doc['mapping']}, gradient check "
        f"{'on' if result.has_gradient_check else 'off'}){' [cached]' if cached else ''}",
        f"95 % confidence half-width of the median neuron's NVF: {100 * half:.3f} "
        "percentage points",
        *(
            f"  {d['name']:>8}: {d['neurons']:>7,} neurons, mean {d['mean_nvf_percent']:.3f} %, "
            f"max {d['max_nvf_percent']:.3f} %"
            for d in doc["layers"]
        ),
        "",
        *format_table(table, "Table I: critical neurons (ours | paper)"),
    ]
    if fine:
        lines += [
            "",
            *format_table(fine, "Finer thresholds (the paper's grid selects almost nothing)"),
        ]
    lines += ["", "wrote: " + ", ".join(doc["files"])]
    emit(args, doc, lines)
    return 0


PROTECT_MODES = tuple(m for m in ProtectionMode if m is not ProtectionMode.NONE)


def protect(args: argparse.Namespace) -> int:
    """Plans for every mode at one NVF threshold: overhead table and fault-free accuracy."""
    spec = load_workload(args.workload)
    run = analysis_of(args, spec)
    net, analysis_data, result, cached = run.net, run.data, run.result, run.cached
    nvf = {lay.layer: lay.nvf for lay in result.layers}
    out_dir = Path(args.output_dir or spec.output_dir) / "protection"
    eval_data = load_dataset(
        net.dataset,
        spec.dataset.split,
        data_dir=args.data_dir,
        n_images=args.eval_images or spec.dataset.n_images,
    )
    x_eval = quantize_images(net, eval_data.images)
    golden = classify(forward(net, x_eval))
    ranges = profile_ranges(net, quantize_images(net, analysis_data.images))
    rows = []
    for mode in tqdm(PROTECT_MODES, desc="modes", disable=None, leave=False):
        plan = plan_from_nvf(net, mode, nvf, args.threshold)
        path = out_dir / f"plan-{net.name}-{mode.value}-T{args.threshold:g}.npz"
        save_plan(plan, path)
        preds = classify(protected_logits(ProtectedNetwork(net, plan, ranges), x_eval))
        row = {**vars(network_overhead(net, plan)), "mode": mode.value}
        row.update(
            plan=str(path),
            accuracy=float(np.mean(preds == eval_data.labels)),
            changed_images=int(np.sum(preds != golden)),
        )
        rows.append(row)
    base_acc = float(np.mean(golden == eval_data.labels))
    doc = {
        "network": net.name,
        "threshold_percent": args.threshold,
        "nvf_cached": cached,
        "nvf_method": result.method.value,
        "eval_split": eval_data.split,
        "eval_images": len(x_eval),
        "unprotected_accuracy": base_acc,
        "modes": rows,
    }
    headers = [
        "mode",
        "protected",
        "neurons",
        "+neurons",
        "+param B",
        "+act B/inf",
        "corr ops",
        "fault-free acc",
        "changed",
    ]
    table = [
        [
            r["mode"],
            r["protected"],
            f"{r['neurons']:,}",
            f"{r['neurons_overhead_percent']:.2f} %",
            f"{r['param_bytes_extra']:,}",
            r["activation_bytes_extra"],
            r["correction_ops"],
            f"{100 * r['accuracy']:.2f} %",
            r["changed_images"],
        ]
        for r in rows
    ]
    lines = [
        f"{net.name}: protecting neurons with NVF >= {args.threshold:g} % "
        f"({result.method.value} NVF over {result.n_inputs} images); unprotected: "
        f"{net.n_neurons:,} neurons, {rows[0]['param_bytes']:,} parameter bytes, "
        f"fault-free accuracy {100 * base_acc:.2f} % on {len(x_eval):,} {eval_data.split} images",
        *text_table(headers, table),
        "changed = images whose fault-free class differs from the unprotected network "
        "(split: rounding of y/2 and the LCU clearing bit 6 of a half equal to 64; ranger/zero: "
        "activations outside the range profiled on the analysis images)",
        f"plans written under {out_dir}",
    ]
    emit(args, doc, lines)
    return 0
