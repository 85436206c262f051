"""Where a chain campaign's time goes, layer by layer (LeNet-5's cost model in docs/campaigns.md).

    python experiments/benchmarks/profile_chain_campaign.py [--network lenet5] [--faults 1000]
        [--images 10000] [--seed 1]

One process, one thread (BLAS too), ``--faults`` faults drawn with ``--seed`` from the network's
paper-size Leveugle sample, each on ``--images`` test images. Printed: the golden state's time;
the faults' own step (the faulty value of the hit neuron on every image and the pairs where it
differs); per layer, the (fault, image) pairs that reach it, the changes they carry, the seconds
in its kernel (sparse, or the whole layer for widely spread changes) and per pair; where the
pairs stop (the output equals the fault-free one, the logit bound drops them, a repeated
change runs once); the classification; and for comparison the fault-free inference rate (a
full re-inference per pair) and the rate of the loop over pairs alone.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from threadpoolctl import threadpool_limits

from accelsim import (
    fault_batch,
    fault_source,
    forward,
    golden_state,
    load_dataset,
    load_network,
    quantize_images,
    unprotected,
)
from accelsim.faults import kernels_sparse, propagate

DATASETS = {"lenet5": "mnist", "mlp7": "mnist", "alexnet": "cifar10"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="lenet5")
    parser.add_argument("--faults", type=int, default=1000)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    threadpool_limits(1)
    from bench_campaign import paper_sample  # the benchmark's own sample, same faults

    net = load_network(args.network)
    data = load_dataset(DATASETS[args.network], "test", n_images=args.images)
    x = quantize_images(net, data.images)
    faults, size = paper_sample(net, args.faults, args.seed)
    inputs = fault_source(unprotected(net), x, data.labels)
    start = time.perf_counter()
    state = golden_state(inputs, rebuild=True)
    golden_s = time.perf_counter() - start

    spent: dict[str, float] = defaultdict(float)
    pairs: dict[str, int] = defaultdict(int)
    changes: dict[str, int] = defaultdict(int)

    def timed(name, fn, count=None):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = fn(*a, **kw)
            label = name(*a) if callable(name) else name
            spent[label] += time.perf_counter() - t
            if count is not None:
                n, k = count(*a, out)
                pairs[label] += n
                changes[label] += k
            return out

        return wrapper

    layers = net.layers

    def layer_label(state_, layer, ch, *rest, **kw):
        pooled = rest[0] if rest else kw.get("pooled", False)
        name = type(layers[layer]).__name__ + f" {layer}"
        return name + ("+pool" if pooled else "")

    stopped: dict[str, int] = defaultdict(int)
    first_dense = next(i for i, r in enumerate(layers) if type(r).__name__ == "Dense")

    def entering(s, layer, ch, *r):
        out = r[-1]  # the changes after the layer: pairs without any stop there
        last = layer + 1 if r[:-1] and r[0] is True else layer
        kind = "equals golden" + (" or bound (in the kernel)" if layer >= first_dense else "")
        stopped[f"after layer {last}: output {kind}"] += int((out.counts == 0).sum())
        return ch.img.size, ch.pos.size

    propagate.sparse_step = timed(
        lambda s, layer, ch, *r, **kw: "sparse " + layer_label(s, layer, ch, *r, **kw),
        propagate.sparse_step,
        entering,
    )
    propagate.dense_step = timed(
        lambda s, layer, ch: f"whole layer {type(layers[layer]).__name__} {layer}",
        propagate.dense_step,
        entering,
    )
    unchanged = propagate.provably_unchanged

    def bound(state_, at, ch):
        t = time.perf_counter()
        out = unchanged(state_, at, ch)
        spent["logit bound (provably_unchanged)"] += time.perf_counter() - t
        stopped[f"after layer {at}: bound"] += int(out[ch.counts > 0].sum())
        return out

    propagate.provably_unchanged = bound
    distinct = timed("repeated changes (distinct)", propagate._distinct)

    def repeats(ch, size):
        first, inverse = distinct(ch, size)
        if first.size < propagate.REPEATS * ch.img.size:  # then only the distinct ones run on
            stopped["repeated changes, run once"] += ch.img.size - first.size
        return first, inverse

    propagate._distinct = repeats
    propagate.ks.classify_changes_kernel = timed(
        "classify_changes_kernel", kernels_sparse.classify_changes_kernel
    )

    def differing(vals, golden, index, *r):
        n = changed_pairs(vals, golden, index, *r)
        stopped["in the fault's layer: faulty value equals golden"] += vals.size - n
        return n

    changed_pairs = timed("changed_pairs_kernel", kernels_sparse.changed_pairs_kernel)
    propagate.ks.changed_pairs_kernel = differing
    propagate.faulty_values = timed("faulty values", propagate.faulty_values)

    batch = fault_batch(faults)
    start = time.perf_counter()
    inputs.evaluate(state, batch)
    total = time.perf_counter() - start
    n_pairs = len(faults) * len(x)
    rate = n_pairs / total
    print(f"{args.network}: {len(faults):,} of {size:,} faults x {len(x):,} images, one thread: "
          f"{total:.2f} s ({rate:,.0f} pairs/s); golden state {golden_s:.2f} s")  # fmt: skip
    print(f"{'step':40s} {'pairs':>12s} {'changes':>12s} {'seconds':>8s} {'ns/pair':>8s}")
    for label in sorted(spent, key=lambda k: -spent[k]):
        p = pairs.get(label, 0)
        per = f"{1e9 * spent[label] / p:8.0f}" if p else " " * 8
        print(f"{label:40s} {p:12,d} {changes.get(label, 0):12,d} {spent[label]:8.2f} {per}")
    rest = total - sum(spent.values())
    print(f"{'the rest (Python, bookkeeping)':40s} {'':12s} {'':12s} {rest:8.2f}")
    print("where pairs stop:")
    for label in sorted(stopped):
        if stopped[label]:
            print(f"  {label:45s} {stopped[label]:12,d} ({100 * stopped[label] / n_pairs:.2f} %)")
    t = time.perf_counter()
    forward(net, x)
    fwd = len(x) / (time.perf_counter() - t)
    print(f"fault-free inference, one thread: {fwd:,.0f} images/s: a full re-inference per "
          f"pair would run {fwd:,.0f} pairs/s; the campaign: {rate / fwd:,.0f}x that")  # fmt: skip


if __name__ == "__main__":
    main()
