"""Exhaustive NVF through the campaign engine against the per-input bit-flip search, side by side.

    python experiments/benchmarks/bench_exhaustive_nvf.py [--images 100] [--rounds 3]
        [--cost-images 200] [--alexnet-images 20]

Both compute the same ground truth (the fraction of each neuron's 8 real bit flips that change
the class, DESIGN.md section 3): ``exact-bits`` searches per input, ``exhaustive`` runs every
neuron x bit as a fault of the campaign engine. On the same LeNet-5 training images the two
alternate ``--rounds`` times (these machines drift by 1.5x within minutes); every round checks
that the bit maps are equal and prints the speed ratio. Then the exhaustive cost per network in
seconds per 1,000 analysis images (MLP-7 and LeNet-5 over ``--cost-images``, extrapolated
linearly: the work is proportional to the images); for AlexNet, whose exhaustive NVF is hours,
``--alexnet-faults`` of its flips sampled uniformly over ``--alexnet-images`` and projected.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from accelsim import (
    CampaignInputs,
    compute_nvf,
    evaluate_faults,
    every_bit_flip,
    load_dataset,
    load_network,
    quantize_images,
    unprotected,
)
from accelsim import NvfMethod as Method


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _images(net, n: int) -> np.ndarray:
    return quantize_images(net, load_dataset(net.dataset, "train", n_images=n).images)


def side_by_side(n_images: int, rounds: int, workers: int) -> None:
    net = load_network("lenet5")
    x = _images(net, n_images)
    compute_nvf(net, x[:2], method=Method.EXACT_BITS)  # warm-up (JIT) of both
    compute_nvf(net, x[:2], method=Method.EXHAUSTIVE)
    print(f"lenet5: {len(x)} training images, {net.n_neurons:,} neurons x 8 bits; "
          f"exhaustive on {workers} worker(s)")  # fmt: skip
    ratios = []
    for r in range(rounds):
        truth, t_search = _timed(lambda: compute_nvf(net, x, method=Method.EXACT_BITS))
        fast, t_engine = _timed(
            lambda: compute_nvf(net, x, method=Method.EXHAUSTIVE, workers=workers)
        )
        equal = all(np.array_equal(a.bit_map, b.bit_map)
                    for a, b in zip(truth.layers, fast.layers, strict=True))  # fmt: skip
        ratios.append(t_search / t_engine)
        print(f"round {r + 1} of {rounds}: exact-bits {t_search:7.2f} s, exhaustive "
              f"{t_engine:6.2f} s, ratio {ratios[-1]:5.1f}x, bit maps equal: {equal}")  # fmt: skip
    print(f"ratio exact-bits / exhaustive over {rounds} alternating rounds: median "
          f"{np.median(ratios):.1f}x, range {min(ratios):.1f}-{max(ratios):.1f}x")  # fmt: skip


def cost(name: str, n_images: int, workers: int) -> None:
    net = load_network(name)
    x = _images(net, n_images)
    compute_nvf(net, x[:1], method=Method.EXHAUSTIVE)
    _, t = _timed(lambda: compute_nvf(net, x, method=Method.EXHAUSTIVE, workers=workers))
    pairs = 8 * net.n_neurons * len(x)
    per_1000 = 1000 * t / len(x)
    print(f"{name}: {net.n_neurons:,} neurons, {len(x)} images: {t:.1f} s = {per_1000:,.0f} s "
          f"per 1,000 images ({pairs / t:,.0f} flip x image/s)")  # fmt: skip


def projected_cost(name: str, n_images: int, n_faults: int, workers: int) -> None:
    """A uniform sample of the network's every-bit flips on the engine, projected to all of
    them (for networks whose exhaustive NVF is too long to run here)."""
    net = load_network(name)
    x = _images(net, n_images)
    every = every_bit_flip(net)
    sample = every.take(np.sort(np.random.default_rng(0).choice(len(every), n_faults, False)))
    inputs = CampaignInputs(unprotected(net), x, np.zeros(len(x), np.int64))
    evaluate_faults(inputs, sample.take([0]))  # warm-up: kernels and golden state
    _, t = _timed(lambda: evaluate_faults(inputs, sample, workers=workers))
    rate = n_faults * len(x) / t
    per_1000 = len(every) * 1000 / rate
    print(f"{name}: {net.n_neurons:,} neurons, {n_faults:,} of its {len(every):,} flips x "
          f"{len(x)} images in {t:.1f} s ({rate:,.0f} flip x image/s): projected "
          f"{per_1000 / 3600:,.1f} h per 1,000 images")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cost-images", type=int, default=200)
    parser.add_argument("--alexnet-images", type=int, default=20)
    parser.add_argument("--alexnet-faults", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} cores, numpy {np.__version__}")
    side_by_side(args.images, args.rounds, args.workers)
    for name in ("mlp7", "lenet5"):
        cost(name, args.cost_images, args.workers)
    if args.alexnet_images:
        projected_cost("alexnet", args.alexnet_images, args.alexnet_faults, args.workers)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory of this process: {rss:.2f} GiB")


if __name__ == "__main__":
    main()
