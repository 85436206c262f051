"""Where a graph campaign's time goes, node by node (the cost model in docs/campaigns.md).

    python experiments/benchmarks/profile_graph_campaign.py [--network resnet20] [--faults 40]
        [--images 1000] [--seed 0]

One process, one thread (BLAS too), the shipped network's Leveugle sample: ``--faults`` faults
drawn with ``--seed``, each on ``--images`` CIFAR-10 test images. Printed per node downstream of
a fault: the (fault, image) pairs that reach it (their input differs from the fault-free one),
the share of its input values that differ there (what the sparse convolution pays for), how
many pairs took the sparse path and how many the GEMM, the seconds spent in it and per pair (a
convolution that alone feeds a pool counts the pool too: "conv5+pool3");
then the faults' own nodes by stage, and the fault-free inference rate for comparison.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from threadpoolctl import threadpool_limits

from accelsim import (
    GraphCampaignInputs,
    golden_state,
    graph_forward,
    load_dataset,
    load_graph,
    quantize_graph_images,
    sample_graph_faults,
)
from accelsim.faults import graph_boxes, graph_campaign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="resnet20")
    parser.add_argument("--faults", type=int, default=40)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    threadpool_limits(1)
    g = load_graph(args.network)
    x = quantize_graph_images(g, load_dataset("cifar10", "test", n_images=args.images).images)
    sample = sample_graph_faults(g, None, seed=0)
    rng = np.random.default_rng(args.seed)
    faults = sample.take(np.sort(rng.choice(len(sample), args.faults, replace=False)))
    inputs = GraphCampaignInputs(g, x, np.zeros(len(x), np.int64))
    start = time.perf_counter()
    state = golden_state(inputs)
    golden_s = time.perf_counter() - start
    stats: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(5))  # pairs, in, changed, s, sp

    def timed(fn, kind):
        def wrapper(g_, nd, state_, live, rows, entry_or_entries, *rest):
            t = time.perf_counter()
            out = fn(g_, nd, state_, live, rows, entry_or_entries, *rest)
            s = stats[nd.name]
            s[0] += rows.size
            s[3] += time.perf_counter() - t
            if kind == "conv":
                counts = entry_or_entries[3]
                c = nd.weight.shape[1]
                box = entry_or_entries[2]
                s[1] += rows.size * c * (box[1] - box[0] + 1) * (box[3] - box[2] + 1)
                s[2] += 0 if counts is None else counts[:, 0].sum()
            return out

        return wrapper

    conv_box = graph_boxes.conv_box
    graph_campaign.conv_box = timed(conv_box, "conv")
    # a convolution whose output only a pool reads makes the pool's entry in the same call:
    # its row in the table ("conv5+pool3") holds both
    fused: dict[str, str] = {}
    conv_pool_box = graph_campaign.conv_pool_box
    timed_pair = timed(lambda g_, nd, state_, live, rows, entry, box, pool_nd, *layout:
                       conv_pool_box(g_, nd, pool_nd, state_, live, rows, entry, box, *layout),
                       "conv")  # fmt: skip

    def timed_conv_pool(g_, nd, pool_nd, state_, live, rows, entry, box, *layout):
        fused[nd.name] = pool_nd.name
        return timed_pair(g_, nd, state_, live, rows, entry, box, pool_nd, *layout)

    graph_campaign.conv_pool_box = timed_conv_pool
    sparse_pairs = defaultdict(int)
    kernel = graph_boxes.kb.sparse_conv_kernel

    def sparse(ff, img, *rest):
        sparse_pairs[current[0]] += img.size
        return kernel(ff, img, *rest)

    current = [""]
    graph_boxes.kb.sparse_conv_kernel = sparse
    original_acc = graph_boxes.golden_acc

    def golden_acc(g_, nd, state_):
        current[0] = nd.name
        return original_acc(g_, nd, state_)

    graph_boxes.golden_acc = golden_acc
    other: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(2))  # pairs, seconds

    def timed_other(fn, label):
        def wrapper(g_, nd, *rest):
            t = time.perf_counter()
            out = fn(g_, nd, *rest)
            o = other[f"{nd.name} ({label(nd, out)})"]
            o[1] += time.perf_counter() - t
            rows = rest[-1] if label is fc_label else rest[0][0]
            o[0] += len(rows)
            return out

        return wrapper

    def fc_label(nd, out):
        return "FC, changed inputs" if out is not None else "FC, whole"

    graph_campaign.fc_delta = timed_other(graph_campaign.fc_delta, fc_label)
    graph_campaign.run_node = timed_other(graph_campaign.run_node, lambda nd, out: nd.op)

    def timed_box(fn, label):
        def wrapper(g_, nd, state_, live, rows, *rest):
            t = time.perf_counter()
            out = fn(g_, nd, state_, live, rows, *rest)
            o = other[f"{nd.name} ({label(nd)})"]
            o[0] += rows.size
            o[1] += time.perf_counter() - t
            return out

        return wrapper

    graph_campaign.pool_box = timed_box(
        graph_campaign.pool_box, lambda nd: f"{nd.op}, changed windows"
    )
    graph_campaign.add_box = timed_box(graph_campaign.add_box, lambda nd: "ADD, one pass")
    start = time.perf_counter()
    inputs.evaluate(state, faults)
    total = time.perf_counter() - start
    rate = args.faults * len(x) / total
    print(f"{g.name}: {args.faults} faults x {len(x):,} images, one thread: {total:.1f} s "
          f"({rate:,.0f} pairs/s); golden state {golden_s:.1f} s")  # fmt: skip
    print(f"{'node':<12} {'pairs':>8} {'changed inputs':>15} {'sparse':>7} {'GEMM':>7} "
          f"{'seconds':>8} {'us/pair':>8}")  # fmt: skip
    conv_s = 0.0
    for name, s in stats.items():
        share = f"{100 * s[2] / s[1]:.1f} %" if s[1] else "-"
        sp = sparse_pairs.get(name, 0)
        conv_s += s[3]
        label = f"{name}+{fused[name]}" if name in fused else name
        print(f"{label:<12} {s[0]:>8,.0f} {share:>15} {sp:>7,} {int(s[0]) - sp:>7,} "
              f"{s[3]:>8.2f} {1e6 * s[3] / s[0]:>8.1f}")  # fmt: skip
    print(f"convolutions (with the pools they feed) {conv_s:.1f} s of {total:.1f} s")
    print("other nodes (pairs, seconds; FC on changed inputs, or whole when too many changed):")
    other_s = 0.0
    for name, o in sorted(other.items(), key=lambda kv: -kv[1][1]):
        other_s += o[1]
        print(
            f"  {name:<32} {o[0]:>8,.0f} {o[1]:>8.2f} s {1e6 * o[1] / max(o[0], 1):>8.1f} us/pair"
        )
    print(f"bookkeeping (reading, comparing, boxes): {total - conv_s - other_s:.1f} s")
    layer_of = np.bincount(faults.layer, minlength=len(g.nodes))
    hit = {g.nodes[i].name: int(n) for i, n in enumerate(layer_of) if n}
    print("faults per node:", ", ".join(f"{k} {v}" for k, v in hit.items()))
    graph_forward(g, x[:64])
    start = time.perf_counter()
    graph_forward(g, x)
    inference = time.perf_counter() - start
    print(f"fault-free inference, one thread: {len(x) / inference:,.0f} images/s: a full "
          f"re-inference per pair would run {len(x) / inference:,.0f} pairs/s")  # fmt: skip


if __name__ == "__main__":
    main()
