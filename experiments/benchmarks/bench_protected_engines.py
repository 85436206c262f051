"""A protected chain's campaign on both engines in one command: which one ``fault_source`` picks.

    python experiments/benchmarks/bench_protected_engines.py [--network alexnet]
        [--modes split,tmr,ranger] [--share 0.10] [--faults 150] [--images 1000] [--workers 2]
        [--rounds 2] [--seed 0]

The shipped chain network (AlexNet by default) protected on a random ``--share`` of the neurons
of every layer that the mode can protect (seeded; split only where the LCU holds), in each mode
of ``--modes`` (``none``: unprotected, for scale); ``--faults`` single-bit faults drawn
uniformly over every copy of every neuron (seeded), each on the first ``--images`` test images.
The chain engine (``CampaignInputs``) and the graph engine (``GraphCampaignInputs`` on
``graph_from_network``: the same node indices, so the same plan and faults) run the same faults
with ``--workers`` processes, alternating for ``--rounds`` rounds (these 2-core machines drift
by up to 1.5x within minutes). Printed per round and mode: both times (golden state included:
each engine builds its own) and their ratio, and whether both engines gave identical rows
(they must: both are exact).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from accelsim import (
    CampaignInputs,
    FaultKind,
    FaultSite,
    FaultSpec,
    GraphCampaignInputs,
    ProtectedNetwork,
    ProtectionMode,
    build_population,
    evaluate_faults,
    fault_batch,
    graph_from_network,
    load_dataset,
    load_network,
    plan_from_neurons,
    profile_ranges,
    quantize_images,
    sample_faults,
    splittable,
)

DATASETS = {"alexnet": "cifar10", "lenet5": "mnist", "mlp7": "mnist"}


def plan_for(net, mode: ProtectionMode, share: float, rng: np.random.Generator):
    chosen = {}
    for i in net.neuron_layers if mode is not ProtectionMode.NONE else ():
        if mode in (ProtectionMode.SPLIT, ProtectionMode.SPLIT_CLAMPED) and not splittable(net, i):
            continue
        size = int(np.prod(net.layers[i].out_shape))
        chosen[i] = np.sort(rng.choice(size, max(1, int(size * share)), replace=False))
    return plan_from_neurons(net, mode, chosen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="alexnet", choices=sorted(DATASETS))
    ap.add_argument("--modes", default="split,tmr,ranger")
    ap.add_argument("--share", type=float, default=0.10)
    ap.add_argument("--faults", type=int, default=150)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    known = [m.value for m in ProtectionMode]
    bad = [m for m in args.modes.split(",") if m not in known]
    if bad:
        ap.error(f"--modes: {', '.join(bad)} unknown; choose from {', '.join(known)}")

    net = load_network(args.network)
    data = load_dataset(DATASETS[args.network], "test", n_images=args.images)
    x = quantize_images(net, data.images)
    labels = data.labels.astype(np.int64)
    g = graph_from_network(net)
    ranges = profile_ranges(net, x[: min(len(x), 200)])
    cases = []
    for name in args.modes.split(","):
        mode = ProtectionMode(name)
        plan = plan_for(net, mode, args.share, np.random.default_rng(args.seed))
        pop = build_population(net, plan, FaultKind.SINGLE_BIT, 1)
        n = min(args.faults, pop.size)
        spec = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, n, 0.01, 0.95, 0.5,
                         args.seed)  # fmt: skip
        faults = fault_batch(sample_faults(pop, spec, rng=np.random.default_rng(args.seed)))
        chain = CampaignInputs(ProtectedNetwork(net, plan, ranges), x, labels)
        graph = GraphCampaignInputs(g, x, labels, plan, dict(ranges))
        cases.append((mode, plan.n_protected, faults, chain, graph))
    print(f"{args.network}: {args.faults} faults x {args.images} images, {args.workers} workers, "
          f"random {args.share:.1%} of the neurons protected")  # fmt: skip
    ratios: dict[str, list[float]] = {m.value: [] for m, *_ in cases}
    for r in range(args.rounds):
        for mode, n_protected, faults, chain, graph in cases:
            times, rows = {}, {}
            order = ("chain", "graph") if r % 2 == 0 else ("graph", "chain")
            for engine in order:
                source = chain if engine == "chain" else graph
                t = time.perf_counter()
                rows[engine] = evaluate_faults(source, faults, workers=args.workers)
                times[engine] = time.perf_counter() - t
            same = all(
                np.array_equal(getattr(rows["chain"], k), getattr(rows["graph"], k))
                for k in ("ids", "n_changed", "n_correct")
            )
            ratio = times["chain"] / times["graph"]
            ratios[mode.value].append(ratio)
            print(f"round {r + 1} {mode.value:7s} ({n_protected:,} protected): chain "
                  f"{times['chain']:6.1f} s, graph {times['graph']:6.1f} s: graph "
                  f"{ratio:.2f}x faster; rows {'identical' if same else 'DIFFERENT'}")  # fmt: skip
    for mode, rs in ratios.items():
        print(f"{mode}: graph / chain speed median {statistics.median(rs):.2f}x, "
              f"range {min(rs):.2f}-{max(rs):.2f}x over {len(rs)} rounds")  # fmt: skip


if __name__ == "__main__":
    main()
