"""Kernel throughput: numba int8 kernels vs the numpy reference vs a float32 BLAS matmul.

    python experiments/benchmarks/bench_kernels.py [--repeats 5] [--images 10000]

For every Conv2D/Dense shape of the three zoo networks, runs side by side in this process
(after a warm-up): ``conv2d_int8``/``dense_int8`` (im2col + exact GEMM + requantisation), the
numpy reference, and a float32 ``A @ B`` of the same GEMM (M = images x output pixels, K, N =
output channels). Prints GMAC/s and the kernel/BLAS ratio (median of ``--repeats``). Then times
full-test-set int8 inference of LeNet-5 and AlexNet (real data when ACCELSIM_DATA has it, else
random images of the same shape). Targets (issue #2): >= 5 GMAC/s on shapes over 1 M MACs,
>= 0.5 x BLAS, LeNet-5 10k images < 2 s, AlexNet 10k images < 60 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from accelsim import load_dataset, load_network, predict
from accelsim.errors import DatasetError
from accelsim.functional import kernels, reference
from accelsim.functional.layers import Conv2D, Dense


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (JIT compile, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _layer_calls(layer: Conv2D | Dense, x: np.ndarray) -> tuple[Callable, Callable, Callable]:
    args = (layer.weight, layer.bias, layer.multiplier, layer.shift)
    if isinstance(layer, Conv2D):
        kw = {"stride": layer.stride, "padding": layer.padding, "relu": layer.relu}
        fast = lambda: kernels.conv2d_int8(x, *args, **kw, weight_matrix=layer.weight_matrix)  # noqa: E731
        ref = lambda: reference.conv2d_ref(x, *args, **kw)  # noqa: E731
        m = x.shape[0] * int(np.prod(layer.out_shape[1:]))
    else:
        fast = lambda: kernels.dense_int8(x, *args, relu=layer.relu, weight_matrix=layer.weight_matrix)  # noqa: E731
        ref = lambda: reference.dense_ref(x, *args, relu=layer.relu)  # noqa: E731
        m = x.shape[0]
    a = np.random.default_rng(0).standard_normal((m, layer.weight_matrix.shape[0]), dtype=np.float32)
    b = layer.weight_matrix
    blas = lambda: a @ b  # noqa: E731
    return fast, ref, blas


def bench_layers(repeats: int) -> None:
    rng = np.random.default_rng(0)
    print(f"{'layer':<16}{'batch':>6}{'MMAC':>9}{'numba GMAC/s':>14}{'numpy ref':>11}"
          f"{'f32 BLAS':>10}{'numba/BLAS':>12}{'numba/ref':>11}")  # fmt: skip
    for name in ("lenet5", "mlp7", "alexnet"):
        net = load_network(name)
        for layer in net.layers:
            if not isinstance(layer, Conv2D | Dense):
                continue
            batch = 256 if isinstance(layer, Dense) else max(8, min(256, int(2e8 // max(layer.macs, 1))))
            x = rng.integers(-128, 128, (batch, *layer.in_shape), dtype=np.int8)
            fast, ref, blas = _layer_calls(layer, x)
            macs = layer.macs * batch
            t_fast = _median_seconds(fast, repeats)
            t_ref = _median_seconds(ref, max(1, repeats // 2))
            t_blas = _median_seconds(blas, repeats)
            g = lambda t: macs / t / 1e9  # noqa: E731
            print(f"{name + '.' + layer.name:<16}{batch:>6}{macs / 1e6:>9.1f}{g(t_fast):>14.2f}{g(t_ref):>11.2f}"
                  f"{g(t_blas):>10.2f}{t_blas / t_fast:>12.2f}{t_ref / t_fast:>11.1f}")  # fmt: skip


def bench_inference(n_images: int) -> None:
    for name in ("lenet5", "alexnet"):
        net = load_network(name)
        try:
            images = load_dataset(net.dataset, "test").images[:n_images]
            source = "test split"
        except DatasetError:
            images = np.random.default_rng(0).integers(0, 256, (n_images, *net.input_shape), dtype=np.uint8)
            source = "random images"
        predict(net, images[:256])  # warm-up
        start = time.perf_counter()
        predict(net, images)
        seconds = time.perf_counter() - start
        print(f"{name}: {len(images):,} images ({source}) in {seconds:.2f} s = {len(images) / seconds:,.0f} img/s, "
              f"{net.macs * len(images) / seconds / 1e9:.1f} GMAC/s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--skip-layers", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}")
    if not args.skip_layers:
        bench_layers(args.repeats)
    bench_inference(args.images)


if __name__ == "__main__":
    main()
