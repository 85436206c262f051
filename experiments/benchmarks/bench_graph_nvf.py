"""Graph networks: linear NVF and inference time, side by side with the chain AlexNet.

    python experiments/benchmarks/bench_graph_nvf.py [--images 1000] [--inference 10000]
                                                      [--rounds 2]

Alternating rounds in one process: the linear NVF (log2 mapping, gradient check) over
``--images`` CIFAR-10 training images of ResNet-20, MobileNet and the chain AlexNet (the
baseline: the paper's network whose linear NVF the chain engine already had), and int8
inference over ``--inference`` test images. Prints seconds per round and each graph's ratio
to AlexNet. Targets (issue #16): ResNet-20 over 10,000 test images < 60 s; linear NVF over
1,000 images < 5 minutes.
"""

from __future__ import annotations

import argparse
import time

from accelsim import compute_nvf, load_dataset, load_model, model_logits, quantize_inputs

NETWORKS = ("resnet20", "mobilenetv2", "alexnet")


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--inference", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    nets = {n: load_model(n) for n in NETWORKS}
    train = load_dataset("cifar10", "train", n_images=args.images)
    test = load_dataset("cifar10", "test", n_images=args.inference)
    xs = {n: quantize_inputs(m, train.images) for n, m in nets.items()}
    ts = {n: quantize_inputs(m, test.images) for n, m in nets.items()}
    for n, m in nets.items():  # warm-up (JIT)
        compute_nvf(m, xs[n][:2])
        model_logits(m, ts[n][:2])
    print(f"linear NVF over {args.images:,} training images; inference over "
          f"{args.inference:,} test images")  # fmt: skip
    for r in range(args.rounds):
        order = NETWORKS if r % 2 == 0 else NETWORKS[::-1]
        nvf = {n: _time(lambda n=n: compute_nvf(nets[n], xs[n])) for n in order}
        inf = {n: _time(lambda n=n: model_logits(nets[n], ts[n])) for n in order}
        for n in NETWORKS:
            print(f"  round {r + 1} {n:<12} NVF {nvf[n]:7.1f} s ({nvf[n] / nvf['alexnet']:.2f} x "
                  f"AlexNet)   inference {inf[n]:6.1f} s ({inf[n] / inf['alexnet']:.2f} x "
                  "AlexNet)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
