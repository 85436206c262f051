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
from functools import partial

import numpy as np

from accelsim import Conv2D, DatasetError, Dense, load_dataset, load_network, predict
from accelsim.functional import kernels, reference


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (JIT compile, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _layer_calls(layer: Conv2D | Dense, x: np.ndarray) -> tuple[Callable, Callable, Callable]:
    """(numba kernel, numpy reference, float32 BLAS GEMM of the same shape) for one layer."""
    args = (x, layer.weight, layer.bias, layer.multiplier, layer.shift)
    if isinstance(layer, Conv2D):
        kw = {"stride": layer.stride, "padding": layer.padding, "relu": layer.relu}
        fast = partial(kernels.conv2d_int8, *args, **kw, weight_matrix=layer.weight_matrix)
        ref = partial(reference.conv2d_ref, *args, **kw)
        m = x.shape[0] * int(np.prod(layer.out_shape[1:]))
    else:
        fast = partial(
            kernels.dense_int8, *args, relu=layer.relu, weight_matrix=layer.weight_matrix
        )
        ref = partial(reference.dense_ref, *args, relu=layer.relu)
        m = x.shape[0]
    a = np.random.default_rng(0).standard_normal((m, layer.weight_matrix.shape[0]), np.float32)
    return fast, ref, partial(np.matmul, a, layer.weight_matrix)


def bench_layers(repeats: int) -> None:
    rng = np.random.default_rng(0)
    header = ("layer", "batch", "MMAC", "numba GMAC/s", "numpy ref", "f32 BLAS", "numba/BLAS")
    print("{:<16}{:>6}{:>9}{:>14}{:>11}{:>10}{:>12}".format(*header))
    for name in ("lenet5", "mlp7", "alexnet"):
        net = load_network(name)
        for layer in net.layers:
            if not isinstance(layer, Conv2D | Dense):
                continue
            batch = 256 if isinstance(layer, Dense) else max(8, min(256, int(2e8 // layer.macs)))
            x = rng.integers(-128, 128, (batch, *layer.in_shape), dtype=np.int8)
            fast, ref, blas = _layer_calls(layer, x)
            gmacs = layer.macs * batch / 1e9
            t_fast = _median_seconds(fast, repeats)
            t_ref = _median_seconds(ref, max(1, repeats // 2))
            t_blas = _median_seconds(blas, repeats)
            print(
                f"{name + '.' + layer.name:<16}{batch:>6}{gmacs * 1e3:>9.1f}{gmacs / t_fast:>14.2f}"
                f"{gmacs / t_ref:>11.2f}{gmacs / t_blas:>10.2f}{t_blas / t_fast:>12.2f}"
            )


def bench_inference(n_images: int) -> None:
    for name in ("lenet5", "alexnet"):
        net = load_network(name)
        try:
            images = load_dataset(net.dataset, "test").images[:n_images]
            source = "test split"
        except DatasetError:
            images = np.random.default_rng(0).integers(
                0, 256, (n_images, *net.input_shape), dtype=np.uint8
            )
            source = "random images"
        predict(net, images[:256])  # warm-up
        start = time.perf_counter()
        predict(net, images)
        seconds = time.perf_counter() - start
        print(
            f"{name}: {len(images):,} images ({source}) in {seconds:.2f} s = "
            f"{len(images) / seconds:,.0f} img/s, "
            f"{net.macs * len(images) / seconds / 1e9:.1f} GMAC/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--skip-layers", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}"
    )
    if not args.skip_layers:
        bench_layers(args.repeats)
    bench_inference(args.images)


if __name__ == "__main__":
    main()
