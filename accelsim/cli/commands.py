"""One function per CLI command: call the API, then print a table or one JSON document."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from accelsim import (
    DATASET_NAMES,
    GRAPH_ZOO_NAMES,
    SPLITS,
    ZOO_DIR,
    ZOO_NAMES,
    DatasetError,
    Graph,
    Network,
    ParameterError,
    ProtectionOptions,
    analyze_workload,
    export_scalesim,
    export_tflite,
    fetch_dataset,
    files,
    format_critical_table,
    graph_hash,
    graph_n_neurons,
    graph_topology_csv,
    import_model,
    input_shape,
    load_arch,
    load_dataset,
    load_graph,
    load_model,
    load_network,
    load_workload,
    model_hash,
    model_predict,
    network_hash,
    protect_workload,
    resolve_data_dir,
)
from accelsim.cli.common import check_positive, emit, nvf_bar, text_table


def _model_doc(name: str, net: Network) -> dict[str, Any]:
    acc = net.accuracy
    return {
        "name": name,
        "dataset": net.dataset,
        "kind": "chain",
        "neurons": net.n_neurons,
        "parameters": net.n_parameters,
        "macs": net.macs,
        "layers": len(net.layers),
        "float_accuracy": acc.float_accuracy if acc else None,
        "int8_accuracy": acc.int8_accuracy if acc else None,
        "accuracy_images": acc.n_images if acc else None,
        "hash": network_hash(net)[:16],
    }


def _graph_doc(name: str, g: Graph) -> dict[str, Any]:
    acc = g.accuracy
    return {
        "name": name,
        "dataset": g.dataset,
        "kind": "graph",
        "neurons": graph_n_neurons(g),
        "parameters": g.n_parameters,
        "macs": g.macs,
        "layers": len(g.nodes),
        "float_accuracy": acc.float_accuracy if acc else None,
        "int8_accuracy": acc.int8_accuracy if acc else None,
        "accuracy_images": acc.n_images if acc else None,
        "hash": graph_hash(g)[:16],
    }


def models(args: argparse.Namespace) -> int:
    docs = [_model_doc(name, load_network(name)) for name in ZOO_NAMES]
    docs += [
        _graph_doc(name, load_graph(name))
        for name in GRAPH_ZOO_NAMES
        if (ZOO_DIR / f"{name}.yaml").is_file()
    ]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f} %"  # noqa: E731
    rows = [
        [
            d["name"],
            d["dataset"],
            d["kind"],
            f"{d['neurons']:,}",
            f"{d['parameters']:,}",
            f"{d['macs']:,}",
            pct(d["float_accuracy"]),
            pct(d["int8_accuracy"]),
        ]
        for d in docs
    ]
    headers = [
        "model", "dataset", "kind", "neurons", "parameters", "MACs/image", "float acc", "int8 acc"
    ]  # fmt: skip
    emit(args, docs, [*text_table(headers, rows), "(accuracies on the full test split)"])
    return 0


def export(args: argparse.Namespace) -> int:
    if not args.tflite and not args.scalesim:
        raise ParameterError("tflite", "export needs {parameter} or --scalesim (or both)")
    g = load_graph(args.network)
    if args.requantization and args.requantization != g.requantization:
        g = dataclasses.replace(g, requantization=args.requantization)
    doc: dict[str, Any] = {"network": g.name, "nodes": len(g.nodes), "written": []}
    if args.tflite:
        doc["written"].append(str(export_tflite(g, args.tflite)))
    if args.scalesim and args.scalesim.endswith(".csv"):
        doc["written"].append(str(files.write_text(Path(args.scalesim), graph_topology_csv(g))))
    elif args.scalesim:
        written = export_scalesim(g, load_arch(args.arch), args.scalesim)
        doc["written"] += [str(p) for p in written]
    lines = [f"{g.name}: {len(g.nodes)} nodes, requantization {g.requantization}"]
    lines += [f"wrote {path}" for path in doc["written"]]
    if args.scalesim and not args.scalesim.endswith(".csv"):
        run = f"python -m scalesim.scale -c {g.name}.cfg -t {g.name}.csv -l layout.csv -p out"
        lines.append(f"run it (scalesim==3.0.0, numpy<2.3): cd {args.scalesim} && {run}")
    emit(args, doc, lines)
    return 0


def import_command(args: argparse.Namespace) -> int:
    if args.eval_images < 0:
        raise ParameterError("eval_images", "{parameter} must be 0 or more")
    imported = import_model(
        args.model, args.out, name=args.name, dataset=args.dataset, mean=args.mean,
        std=args.std, requantization=args.requantization, eval_images=args.eval_images,
        calibration=args.calibration, calibration_images=args.calibration_images,
        data_dir=args.data_dir,
    )  # fmt: skip
    doc = imported.document()
    acc = imported.accuracy
    lines = [
        imported.result.summary(),
        f"  dataset {doc['dataset']}; int8 accuracy "
        + (
            f"{100 * acc:.2f} % on the {imported.eval_note}"
            if acc is not None
            else f"- ({imported.eval_note})"
        )
        + (
            f" (float model: {100 * imported.float_accuracy:.2f} %)"
            if imported.float_accuracy is not None
            else ""
        ),
        f"wrote {imported.model_path} (+ .npz) and {imported.workload_path}",
        f"next: python -m accelsim run pe16x16 {imported.workload_path}",
    ]
    emit(args, doc, lines)
    return 0


def _workload_source(arg: str) -> tuple[str, str, int | None, str | None]:
    """(network, split, n_images, dataset source or None) from a workload file or a zoo
    name."""
    if arg in (*ZOO_NAMES, *GRAPH_ZOO_NAMES) and not Path(arg).is_file():
        return arg, "test", None, None
    spec = load_workload(arg)
    return spec.network, spec.dataset.split, spec.dataset.n_images, spec.dataset.source


def evaluate(args: argparse.Namespace) -> int:
    network, split, n_images, source = _workload_source(args.workload)
    split = args.split or split
    check_positive(args, "images", "batch_size")
    n_images = args.images if args.images is not None else n_images
    net = load_model(network)
    data = load_dataset(
        source or net.dataset,
        split,
        shape=input_shape(net),
        data_dir=args.data_dir,
        n_images=n_images,
    )
    start = time.perf_counter()
    with tqdm(
        total=len(data), unit="img", desc=f"eval {net.name}", disable=None, leave=False
    ) as bar:
        preds = model_predict(net, data.images, batch_size=args.batch_size, on_batch=bar.update)
    seconds = time.perf_counter() - start
    correct = int(np.sum(preds == data.labels))
    doc = {
        "network": net.name,
        "hash": model_hash(net),
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
    written = fetch_dataset(args.dataset, dest)
    doc = {"dataset": args.dataset, "data_dir": str(dest), "files": [str(p) for p in written]}
    emit(args, doc, [f"verified and wrote {len(written)} files:", *(f"  {p}" for p in written)])
    return 0


def _split_pairs(source: str | None) -> list[tuple[str, str]]:
    if source is not None:
        return [(source, "train"), (source, "test")]
    return [
        (name, split)
        for name in DATASET_NAMES
        for split in SPLITS
        if split != "sample" or name == "mnist"
    ]


def data_info(args: argparse.Namespace) -> int:
    root = resolve_data_dir(args.data_dir)
    found = []
    if args.source is not None and not Path(args.source).exists():
        raise DatasetError(f"{args.source}: no such .npz file or image folder")
    for name, split in _split_pairs(args.source):
        try:
            ds = load_dataset(name, split, data_dir=args.data_dir)
            found.append(
                {"dataset": name, "split": split, "images": len(ds), "source": ds.source,
                 "shape": list(ds.images.shape[1:]),
                 "classes": int(ds.labels.max()) + 1 if len(ds) else 0}
            )  # fmt: skip
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
    rows = [
        [f["dataset"], f["split"], f"{f['images']:,}", "x".join(map(str, f.get("shape", []))),
         f.get("classes", "-"),
         f["source"] or ("missing" if args.source is None else f["error"])]
        for f in found
    ]  # fmt: skip
    emit(
        args,
        {"data_dir": str(root), "splits": found},
        [
            f"data folder: {root}",
            *text_table(["dataset", "split", "images", "C x H x W", "classes", "files"], rows),
        ],
    )
    return 0


def analyze(args: argparse.Namespace) -> int:
    """NVF of every neuron over analysis images, Table I, CSV, figure; cached by content hash."""
    check_positive(args, "images", "workers")
    spec = load_workload(args.workload)
    with nvf_bar(spec, args.images) as bar:
        a = analyze_workload(
            spec, method=args.method, mapping=args.mapping, gradient_check=args.gradient_check,
            n_images=args.images, split=args.split, data_dir=args.data_dir,
            output_dir=args.output_dir, force=args.force, workers=args.workers,
            on_progress=bar.update,
        )  # fmt: skip
    doc = a.document()
    result, net = a.nvf.result, a.nvf.net
    lines = [
        f"NVF of {net.n_neurons:,} neurons of {net.name} over {result.n_inputs:,} "
        f"{a.nvf.data.split} images ({result.method.value}, mapping {doc['mapping']}, gradient "
        f"check {'on' if result.has_gradient_check else 'off'})"
        f"{' [cached]' if a.nvf.cached else ''}",
        "95 % confidence half-width of the median neuron's NVF: "
        f"{100 * a.median_half_width:.3f} percentage points (normal approximation), "
        f"{100 * a.median_bound_half_width:.3f} (distribution-free, empirical Bernstein)",
        *(
            f"  {d['name']:>8}: {d['neurons']:>7,} neurons, mean {d['mean_nvf_percent']:.3f} %, "
            f"max {d['max_nvf_percent']:.3f} %"
            for d in doc["layers"]
        ),
        "",
        *format_critical_table(a.table, "Table I: critical neurons (ours | paper)"),
    ]
    if a.fine:
        lines += ["", *format_critical_table(
            a.fine, "Finer thresholds (the paper's grid selects almost nothing)")]  # fmt: skip
    lines += ["", "wrote: " + ", ".join(doc["files"])]
    emit(args, doc, lines)
    return 0


def protect(args: argparse.Namespace) -> int:
    """Plans for every mode at one NVF threshold: overhead table and fault-free accuracy."""
    check_positive(args, "images", "eval_images")
    spec = load_workload(args.workload)
    options = ProtectionOptions(
        threshold=args.threshold, eval_images=args.eval_images, images=args.images,
        split=args.split, data_dir=args.data_dir, output_dir=args.output_dir,
    )  # fmt: skip
    with nvf_bar(spec, args.images) as bar:
        r = protect_workload(spec, options, on_nvf_progress=bar.update)
    doc = r.document()
    headers = ["mode", "protected", "neurons", "+neurons", "+param B", "+act B/inf", "corr ops",
               "fault-free acc", "changed"]  # fmt: skip
    table = [
        [m.mode.value, m.overhead.protected, f"{m.overhead.neurons:,}",
         f"{m.overhead.neurons_overhead_percent:.2f} %", f"{m.overhead.param_bytes_extra:,}",
         m.overhead.activation_bytes_extra, m.overhead.correction_ops,
         f"{100 * m.accuracy:.2f} %", m.changed_images]
        for m in r.modes
    ]  # fmt: skip
    net, result = r.nvf.net, r.nvf.result
    lines = [
        f"{net.name}: protecting neurons with NVF >= {options.threshold:g} % "
        f"({result.method.value} NVF over {result.n_inputs} images); unprotected: "
        f"{net.n_neurons:,} neurons, {r.modes[0].overhead.param_bytes:,} parameter bytes, "
        f"fault-free accuracy {100 * r.unprotected_accuracy:.2f} % on {r.eval_images:,} "
        f"{r.eval_split} images",
        *text_table(headers, table),
        "changed = images whose fault-free class differs from the unprotected network "
        "(split: rounding of y/2 and the LCU clearing the top bit of a saturated half; "
        "ranger/zero: activations outside the range profiled on the analysis images)",
        f"plans written under {r.out_dir}",
    ]
    emit(args, doc, lines)
    return 0
