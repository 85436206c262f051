"""Peak memory of a protected campaign's golden run: whole tensors against batches.

    python experiments/benchmarks/bench_campaign_memory.py [--images 2000] [--rounds 2]
        [--mode tmr] [--threshold 0.86875]

A protected AlexNet campaign keeps every tensor of the fault-free protected run for its test
images (``GraphCampaignInputs.golden``; forked workers share it). Before 55576bc that run went
node by node over all images at once (``protected_graph_values``), so conv4's float32 im2col
alone was 5.9 GB at 10,000 images (64 positions x 2,304 taps x 4 B each); it now goes 256
images at a time (``protected_graph_tensors``).
Each side runs in its own fresh process (peak RSS, ``ru_maxrss``, is per process), alternating
rounds, on the same images and protection plan; the script checks that both give the same
tensors' checksums and prints the peaks, their ratio and the seconds. Issue #19's target: a
paper-scale campaign (10,000 images) under 8 GB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time

import numpy as np


def child(args: argparse.Namespace) -> None:
    from accelsim import (
        CampaignOptions,
        fault_source,
        prepare_campaign,
        protected_graph_tensors,
        protected_graph_values,
    )

    c = prepare_campaign("alexnet", CampaignOptions(protection=args.mode, threshold=args.threshold,
                                                    test_images=args.images,
                                                    output_dir=args.output_dir))  # fmt: skip
    pnet = fault_source(c.pnet, c.x, c.labels).pnet  # AlexNet's campaigns run it as a graph
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    run = protected_graph_values if args.side == "whole" else protected_graph_tensors
    values, pre = run(pnet, c.x)
    seconds = time.perf_counter() - start
    h = hashlib.sha256()
    for key in sorted(values):
        h.update(np.ascontiguousarray(values[key]).tobytes())
    for key in sorted(pre):
        h.update(np.ascontiguousarray(pre[key]).tobytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_gb": before / 1e6, "peak_gb": peak / 1e6, "seconds": seconds,
                      "hash": h.hexdigest()}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--mode",
        default="tmr",
        choices=("split", "split_clamped", "tmr", "dmr_and", "dmr_recompute", "ranger", "zero"),
    )
    ap.add_argument("--threshold", type=float, default=0.86875)
    ap.add_argument(
        "--output-dir",
        default="experiments/out/bench_campaign_memory",
        help="where the workload's NVF is cached (computed on first use)",
    )
    ap.add_argument("--side", choices=("whole", "batched"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        child(args)
        return
    got: dict[str, list[dict]] = {"whole": [], "batched": []}
    for r in range(args.rounds):
        for side in ("whole", "batched") if r % 2 == 0 else ("batched", "whole"):
            cmd = [sys.executable, __file__, "--side", side, "--images", str(args.images),
                   "--mode", args.mode, "--threshold", str(args.threshold),
                   "--output-dir", args.output_dir]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"the {side} side failed (exit {proc.returncode}):\n"
                                 f"{proc.stderr.strip()}")  # fmt: skip
            doc = json.loads(proc.stdout.strip().splitlines()[-1])
            got[side].append(doc)
            before, peak = doc["before_gb"], doc["peak_gb"]
            print(f"round {r + 1} {side:>7}: peak RSS {peak:.2f} GB (process before the run "
                  f"{before:.2f} GB), {doc['seconds']:.1f} s", flush=True)  # fmt: skip
    hashes = {d["hash"] for side in got.values() for d in side}
    print(f"tensors identical on both sides in every round: {len(hashes) == 1}")
    w = [d["peak_gb"] for d in got["whole"]]
    b = [d["peak_gb"] for d in got["batched"]]
    ratios = [x / y for x, y in zip(w, b, strict=True)]
    print(
        f"AlexNet {args.mode}, {args.images:,} images: whole / batched peak RSS "
        f"{min(ratios):.2f}-{max(ratios):.2f}x over {args.rounds} rounds "
        f"(whole {min(w):.2f}-{max(w):.2f} GB, batched {min(b):.2f}-{max(b):.2f} GB)"
    )


if __name__ == "__main__":
    main()
