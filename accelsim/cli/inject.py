"""``inject``: a statistical fault-injection campaign on a workload's network, optionally
protected, with a progress bar, a summary with 95 % intervals, CSV files and ``--json``."""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from accelsim import files
from accelsim.cli.common import analysis_of, check_positive, emit, estimate, text_table
from accelsim.config.workload import FaultKind, FaultSpec, ProtectionMode, load_workload
from accelsim.datasets import load_dataset
from accelsim.errors import AccelsimError, seed_int
from accelsim.faults.campaign import (
    CampaignInputs,
    campaign_settings,
    check_reachable,
    golden_classes,
    run_campaign,
)
from accelsim.faults.metrics import Summary, summarize
from accelsim.faults.model import bits_label, fault_batch
from accelsim.faults.sampling import Population, build_population, sample_faults
from accelsim.faults.store import FaultRows, done_ids, open_store
from accelsim.files import OutputLock
from accelsim.functional.modelio import load_network
from accelsim.functional.network import quantize_images
from accelsim.protection.plan import plan_from_nvf
from accelsim.protection.protected import (
    ProtectedNetwork,
    profile_ranges,
    unprotected,
)


def parse_faults(text: str) -> str | int:
    """--faults: leveugle, exhaustive or a positive count."""
    if text in ("leveugle", "exhaustive"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(
        f"expected leveugle, exhaustive or a positive int, got {text!r}"
    )


def _fault_spec(args: argparse.Namespace, spec: FaultSpec) -> FaultSpec:
    changes: dict[str, Any] = {}
    if args.faults is not None:
        changes["samples"] = args.faults
    if args.seed is not None:
        changes["seed"] = seed_int("seed", args.seed)
    if args.kind is not None:
        changes["kind"] = FaultKind(args.kind)
        changes["n_bits"] = args.bits or (
            1 if args.kind not in ("adjacent_bits", "random_bits") else 2
        )
    elif args.bits is not None:
        changes["n_bits"] = args.bits
    out = replace(spec, **changes)
    multi = out.kind in (FaultKind.ADJACENT_BITS, FaultKind.RANDOM_BITS)
    if not 1 <= out.n_bits <= 8 or (out.n_bits != 1 and not multi):
        raise AccelsimError(
            f"--bits: {out.n_bits} bits with kind {out.kind.value}; single_bit and stuck_at_* "
            "take 1, adjacent_bits/random_bits 1..8"
        )
    return out


def _protected_network(args: argparse.Namespace, spec, net) -> tuple[ProtectedNetwork, dict]:
    mode = ProtectionMode(args.protection)
    if mode is ProtectionMode.NONE:
        return unprotected(net), {}
    run = analysis_of(args, spec)
    net, analysis_data, result, cached = run.net, run.data, run.result, run.cached
    nvf = {lay.layer: lay.nvf for lay in result.layers}
    plan = plan_from_nvf(net, mode, nvf, args.threshold)
    ranges = profile_ranges(net, quantize_images(net, analysis_data.images))
    info = {"nvf_method": result.method.value, "nvf_images": result.n_inputs, "nvf_cached": cached}
    return ProtectedNetwork(net, plan, ranges), info


def _groups(rows: FaultRows, pop: Population, net) -> list[tuple[str, str, np.ndarray, int]]:
    """(kind of group, label, rows, population) for every layer and every bit choice."""
    out = []
    units = pop.units_per_layer
    for k, layer in enumerate(pop.layers):
        sel = np.flatnonzero(rows.layer == layer)
        if sel.size:
            out.append(("layer", net.layers[layer].name, sel, int(units[k]) * len(pop.choices)))
    for bits in pop.choices:
        mask = sum(1 << b for b in bits)
        sel = np.flatnonzero(rows.mask == mask)
        if sel.size:
            out.append(("bit", bits_label(bits), sel, pop.n_copies))
    return out


def _summary_doc(s: Summary) -> dict[str, Any]:
    return {
        "group": s.group,
        "faults": s.n_faults,
        "population": s.population,
        "accuracy_loss_pp": estimate(s.accuracy_loss_pp),
        "critical_rate": estimate(s.critical_rate),
        "faults_with_effect": estimate(s.faults_with_effect),
    }


def _summary_row(kind: str, s: Summary) -> list[str]:
    a, c, f = s.accuracy_loss_pp, s.critical_rate, s.faults_with_effect
    return [
        kind,
        s.group,
        f"{s.n_faults:,}",
        f"{a.value:.4f} ± {a.half_width:.4f}",
        f"{100 * c.value:.4f} ± {100 * c.half_width:.4f}",
        f"{100 * f.value:.2f} [{100 * f.lo:.2f}, {100 * f.hi:.2f}]",
    ]


def _write_fault_csv(path: Path, rows: FaultRows, net, n_images: int, golden_correct: int) -> None:
    kinds = list(FaultKind)
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["id", "layer", "neuron", "copy", "bits", "kind", "images_changed", "images_correct",
             "accuracy_loss_pp", "critical_rate"]
        )  # fmt: skip
        for i in range(len(rows)):
            bits = tuple(b for b in range(8) if rows.mask[i] >> b & 1)
            w.writerow([
                int(rows.ids[i]), net.layers[int(rows.layer[i])].name, int(rows.neuron[i]),
                int(rows.copy[i]), bits_label(bits), kinds[int(rows.kind[i])].value,
                int(rows.n_changed[i]), int(rows.n_correct[i]),
                f"{100 * (golden_correct - int(rows.n_correct[i])) / n_images:.6f}",
                f"{int(rows.n_changed[i]) / n_images:.8f}",
            ])  # fmt: skip


def _write_summary_csv(path: Path, summaries: list[tuple[str, Summary]]) -> None:
    with files.atomic_text(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["group_kind", "group", "faults", "population"] + [
            f"{m}_{p}" for m in ("accuracy_loss_pp", "critical_rate", "faults_with_effect")
            for p in ("value", "lo", "hi")
        ])  # fmt: skip
        for kind, s in summaries:
            w.writerow([kind, s.group, s.n_faults, s.population] + [
                f"{x:.8g}" for e in (s.accuracy_loss_pp, s.critical_rate, s.faults_with_effect)
                for x in (e.value, e.lo, e.hi)
            ])  # fmt: skip


def inject(args: argparse.Namespace) -> int:
    """The campaign, with the workload's output folder held by this process."""
    spec = load_workload(args.workload)
    with OutputLock(Path(args.output_dir or spec.output_dir)):
        return _inject(args, spec)


def _inject(args: argparse.Namespace, spec) -> int:
    fspec = _fault_spec(args, spec.faults)
    check_positive(args, "workers", "batch_size", "test_images", "images")
    net = load_network(spec.network)
    pnet, nvf_info = _protected_network(args, spec, net)
    mode = pnet.plan.mode
    n_images = args.test_images if args.test_images is not None else spec.dataset.n_images
    split = args.test_split or spec.dataset.split
    data = load_dataset(net.dataset, split, data_dir=args.data_dir, n_images=n_images)
    x = quantize_images(net, data.images)
    labels = data.labels.astype(np.int64)
    pop = build_population(net, pnet.plan, fspec.kind, fspec.n_bits)
    faults = sample_faults(pop, fspec, rng=np.random.default_rng(fspec.seed))
    settings = campaign_settings(
        pnet, fspec, len(faults), x, labels, network=net.name,
        threshold_percent=args.threshold if mode is not ProtectionMode.NONE else None,
        population=pop.size, dataset=data.name, split=data.split, images=len(x),
    )  # fmt: skip
    tag = mode.value if mode is ProtectionMode.NONE else f"{mode.value}-T{args.threshold:g}"
    out_dir = Path(args.output_dir or spec.output_dir) / "campaigns"
    stem = out_dir / f"campaign-{net.name}-{tag}"
    if args.dask is not None:
        check_reachable(args.dask)  # before the database exists: nothing to resume yet
    con = open_store(stem.with_suffix(".sqlite"), settings, resume=args.resume)
    inputs = CampaignInputs(pnet, x, labels)
    start = time.perf_counter()  # the golden state counts: workers compute it in their time
    in_process = args.dask is None and (args.workers or 1) == 1
    golden = golden_classes(inputs, in_process=in_process)
    golden_correct = int((golden == labels).sum())
    done_before = len(done_ids(con))
    with tqdm(
        total=len(faults), initial=done_before, unit="fault", desc=f"inject {net.name} ({tag})",
        disable=None, leave=False, smoothing=0.05,
    ) as bar:  # fmt: skip
        try:
            rows = run_campaign(
                inputs, fault_batch(faults), con,
                workers=args.workers or 1, dask_address=args.dask,
                batch_size=args.batch_size, on_progress=bar.update,
            )  # fmt: skip
        except KeyboardInterrupt:
            done = con.execute("SELECT COUNT(*) FROM faults").fetchone()[0]
            print(
                f"\ninterrupted: {done:,} of {len(faults):,} faults are saved in "
                f"{stem.with_suffix('.sqlite')}; rerun with --resume to finish"
            )
            return 130
        finally:
            con.close()
    seconds = time.perf_counter() - start
    conf = fspec.confidence
    overall = summarize(
        "all", rows, n_images=len(x), golden_correct=golden_correct, population=pop.size,
        confidence=conf,
    )  # fmt: skip
    groups = [
        (kind, summarize(label, rows.take(sel), n_images=len(x), golden_correct=golden_correct,
                         population=p, confidence=conf))
        for kind, label, sel, p in _groups(rows, pop, net)
    ]  # fmt: skip
    summaries = [("all", overall), *groups]
    _write_fault_csv(stem.with_suffix(".faults.csv"), rows, net, len(x), golden_correct)
    _write_summary_csv(stem.with_suffix(".summary.csv"), summaries)
    pairs = (len(rows) - done_before) * len(x)  # evaluated by this run
    doc = {
        **settings,
        **nvf_info,
        "golden_accuracy": golden_correct / len(x),
        "seconds": seconds,
        "fault_image_pairs_per_second": pairs / seconds if seconds else None,
        "summary": _summary_doc(overall),
        "per_layer": [_summary_doc(s) for k, s in groups if k == "layer"],
        "per_bit": [_summary_doc(s) for k, s in groups if k == "bit"],
        "files": [str(stem.with_suffix(s)) for s in (".sqlite", ".faults.csv", ".summary.csv")],
    }
    headers = [
        "group",
        "",
        "faults",
        "accuracy loss (pp)",
        "critical rate (%)",
        "faults w/ effect (%)",
    ]
    lines = [
        f"{net.name} ({tag}): {len(rows):,} {fspec.kind.value} faults "
        f"({fspec.samples if isinstance(fspec.samples, str) else 'fixed count'}, population "
        f"{pop.size:,} = {pop.n_copies:,} neuron copies x {len(pop.choices)} bit choices) x "
        f"{len(x):,} {data.split} images; golden accuracy {100 * golden_correct / len(x):.2f} %",
        f"time: {seconds:.1f} s ({pairs / max(seconds, 1e-9):,.0f} fault x image evaluations/s)",
        f"{100 * conf:g} % confidence intervals (± half-width; [lo, hi] for proportions)",
        *text_table(headers, [_summary_row(k, s) for k, s in summaries]),
        "wrote: " + ", ".join(doc["files"]),
    ]
    emit(args, doc, lines)
    return 0
