"""NVF cost: linear vs exact vs exact-bits, and the exhaustive alternative, side by side.

    python experiments/benchmarks/bench_nvf.py [--images 200] [--alexnet-images 50]

For LeNet-5 (and AlexNet with --alexnet-images > 0) on the same training images, times the three
methods in this process and prints them as ratios to ``linear``. The exhaustive alternative
(every bit of every neuron flipped on every image by a full re-inference) is estimated from a
measured sample of full re-inferences. Targets (issue #3): linear LeNet-5 over 10,000 images
< 60 s, AlexNet over 1,000 < 10 min; exact and exact-bits LeNet-5 over 1,000 < 10 min; linear
>= 100x cheaper than exhaustive. Peak memory (ru_maxrss) is printed too.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from accelsim import NvfMethod as Method
from accelsim import compute_nvf, forward, load_dataset, load_network, quantize_images


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def exhaustive_seconds_per_image(net, x) -> float:
    """Full re-inference of 8 x neurons faulty copies of one image, from a measured sample."""
    sample = np.repeat(x[:1], 512, axis=0)
    forward(net, sample)  # warm-up
    per_inference = _time(lambda: forward(net, sample)) / len(sample)
    return per_inference * 8 * net.n_neurons


def bench(name: str, n_images: int, methods: tuple[Method, ...]) -> None:
    net = load_network(name)
    data = load_dataset(net.dataset, "train", n_images=n_images)
    x = quantize_images(net, data.images)
    compute_nvf(net, x[:2], method=Method.LINEAR)  # warm-up (JIT)
    times = {m: _time(lambda m=m: compute_nvf(net, x, method=m)) for m in methods}
    exhaustive = exhaustive_seconds_per_image(net, x) * len(x)
    base = times[Method.LINEAR]
    print(f"{name}: {len(x)} training images, {net.n_neurons:,} neurons")
    for m, t in times.items():
        print(
            f"  {m.value:<11} {t:8.2f} s  {t / len(x) * 1000:8.1f} ms/image  "
            f"{t / base:8.1f} x linear"
        )
    print(f"  exhaustive  {exhaustive:8.0f} s (estimated)  {exhaustive / base:8.0f} x linear")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"  peak memory so far: {rss:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--alexnet-images", type=int, default=0)
    args = parser.parse_args()
    bench("lenet5", args.images, (Method.LINEAR, Method.EXACT, Method.EXACT_BITS))
    if args.alexnet_images:
        bench("alexnet", args.alexnet_images, (Method.LINEAR,))


if __name__ == "__main__":
    main()
