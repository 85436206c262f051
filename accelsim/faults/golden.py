"""Golden (fault-free) state of a network under test on a set of images, cached per process.

What the incremental propagation starts from: every layer's output as the next layer sees it
(after the protection's merge), every weighted layer's accumulators without bias, and per
output element the code of the operation after requantisation (``POST_*``), so that kernels
recompute a changed output exactly as ``protection.protected.protected_layer`` does.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from accelsim.config.workload import ProtectionMode
from accelsim.faults.bounds import LayerBound, layer_bounds
from accelsim.faults.kernels_layers import (
    POST_CLAMP,
    POST_PLAIN,
    POST_SPLIT,
    POST_SPLIT_CLAMPED,
    POST_ZERO,
)
from accelsim.faults.kernels_slack import pooled_bounds_kernel, rounding_slack_kernel
from accelsim.functional import kernels
from accelsim.functional.layers import Conv2D, Dense, MaxPool2D
from accelsim.functional.network import classify
from accelsim.protection.protected import ProtectedNetwork, protected_layer

I8 = npt.NDArray[np.int8]
I16 = npt.NDArray[np.int16]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]

_POST_OF_MODE = {
    ProtectionMode.SPLIT: POST_SPLIT,
    ProtectionMode.SPLIT_CLAMPED: POST_SPLIT_CLAMPED,
    ProtectionMode.RANGER: POST_CLAMP,
    ProtectionMode.ZERO: POST_ZERO,
}
_BATCH = 256


def _threads() -> int:
    """The cores this process may use (its affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, eq=False)
class GoldenState:
    """For N images: ``x`` (N, *input) int8 network input; per layer ``outputs[i]`` (N, size)
    int8 (flat C-H-W); ``accs[i]`` (N, size) int32 accumulators without bias for weighted
    layers, (0, 0) otherwise; ``post[i]`` (size,) uint8 post-requantisation codes and
    ``ranges[i]`` (lo, hi) for clamp/zero; ``classes`` (N,) fault-free classes; ``labels``."""

    pnet: ProtectedNetwork
    x: I8
    outputs: tuple[I8, ...]
    accs: tuple[I32, ...]
    post: tuple[U8, ...]
    ranges: tuple[tuple[int, int], ...]
    classes: I64
    labels: I64
    bounds: tuple[LayerBound | None, ...]
    slack: tuple[tuple[I16, I16], ...]

    def __post_init__(self) -> None:
        slack = (a for pair in self.slack for a in pair)
        for arr in (
            self.x,
            *self.outputs,
            *self.accs,
            *self.post,
            self.classes,
            self.labels,
            *slack,
        ):
            arr.setflags(write=False)

    @property
    def n_images(self) -> int:
        return int(self.x.shape[0])

    def layer_input(self, layer: int) -> I8:
        """(N, size) int8: what layer ``layer`` reads."""
        return self.x.reshape(self.n_images, -1) if layer == 0 else self.outputs[layer - 1]


def accumulators(layer: Conv2D | Dense, x: I8) -> I64:
    """Exact accumulators without bias, (N, O * OH * OW) (C-H-W order) or (N, O)."""
    if isinstance(layer, Dense):
        acc = kernels.exact_matmul(x.reshape(len(x), -1).astype(np.float32), layer.weight_matrix)
        return acc.astype(np.int64)
    zero = np.zeros(layer.out_channels, np.int32)
    acc = kernels.conv2d_acc_int(
        x,
        layer.weight,
        zero,
        stride=layer.stride,
        padding=layer.padding,
        weight_matrix=layer.weight_matrix,
    )
    return acc.reshape(len(x), -1)


def requantized(layer: Conv2D | Dense, acc: I64) -> I8:
    """The layer's int8 output (N, *out_shape) from ``accumulators``."""
    n = len(acc)
    channel_major = acc.reshape(n, layer.out_channels, -1).transpose(1, 0, 2)
    y = kernels.requantize_int8(
        channel_major, layer.bias, layer.multiplier, layer.shift, relu=layer.relu
    )
    return y.reshape(n, *layer.out_shape)


def post_codes(pnet: ProtectedNetwork, layer: int) -> U8:
    rec = pnet.net.layers[layer]
    codes = np.zeros(int(np.prod(rec.out_shape)), np.uint8)
    index = pnet.plan.for_layer(layer)
    if index is not None:
        codes[index] = _POST_OF_MODE.get(pnet.plan.mode, POST_PLAIN)
    return codes


def compute_golden(pnet: ProtectedNetwork, x: I8, labels: npt.ArrayLike) -> GoldenState:
    """The golden state of ``pnet`` on int8 network inputs ``x`` (N, *input_shape)."""
    layers = pnet.net.layers

    def forward(start: int) -> tuple[list[I8], list[I32 | None]]:
        h = x[start : start + _BATCH]
        outs, accs = [], []
        for i, rec in enumerate(layers):
            plain = acc = None
            if isinstance(rec, Conv2D | Dense):
                acc = accumulators(rec, h)
                plain = requantized(rec, acc)  # the layer's output without a second GEMM
                acc = acc.astype(np.int32)
            h = protected_layer(pnet, i, h, plain=plain)
            outs.append(h.reshape(len(h), -1))
            accs.append(acc)
        return outs, accs

    # image batches on every core (the kernels and BLAS release the GIL; one BLAS thread each)
    with threadpool_limits(1), ThreadPoolExecutor(_threads()) as pool:
        parts = list(pool.map(forward, range(0, len(x), _BATCH)))
    outs = [[p[0][i] for p in parts] for i in range(len(layers))]
    accs = [[p[1][i] for p in parts if p[1][i] is not None] for i in range(len(layers))]
    outputs = tuple(np.concatenate(o) for o in outs)
    classes = classify(outputs[-1])
    post = tuple(post_codes(pnet, i) for i in range(len(layers)))
    acc_arrays = tuple(np.concatenate(a) if a else np.zeros((0, 0), np.int32) for a in accs)
    first = min(i for i, rec in enumerate(layers) if isinstance(rec, Conv2D | Dense))
    slack = tuple(
        rounding_slack(rec, acc_arrays[i], post[i], pooled_bounds(layers, i, outputs, post[i]))
        if i > first and acc_arrays[i].size
        else _NONE
        for i, rec in enumerate(layers)
    )
    return GoldenState(
        pnet=pnet,
        x=np.ascontiguousarray(x),
        outputs=outputs,
        accs=acc_arrays,
        post=post,
        ranges=tuple(pnet.ranges.get(i, (-128, 127)) for i in range(len(layers))),
        classes=classes,
        labels=np.asarray(labels, np.int64),
        bounds=_useful(layer_bounds(layers, post), outputs[-1], classes),
        slack=slack,
    )


_NONE = (np.zeros((0, 0), np.int16), np.zeros((0, 0), np.int16))


def _useful(
    bounds: tuple[LayerBound | None, ...], logits: I8, classes: I64
) -> tuple[LayerBound | None, ...]:
    """Keep a layer's bound only where it can pay for its check: when the bound of the
    smallest possible change (one position, a move of 1) fits in the median image's margin
    between the top logit and the runner-up. (Early layers' rounding terms are too large.)"""
    top = logits[np.arange(len(logits)), classes].astype(np.float64)
    rest = logits.astype(np.float64)
    rest[np.arange(len(logits)), classes] = -np.inf
    margin = float(np.median(top - rest.max(axis=1))) if len(logits) else 0.0
    out = []
    for b in bounds:
        smallest = None if b is None else np.min(b.lin.max(1) + np.minimum(b.field, b.cap).max(1))
        out.append(b if smallest is not None and 2 * smallest < margin else None)
    return tuple(out)


def pooled_bounds(
    layers: tuple, layer: int, outputs: tuple[I8, ...], post: U8
) -> tuple[I16, U8] | None:
    """For a convolution followed by a max-pool (else None), per output (N, size, C-H-W): the
    value a rise may reach without moving any window's maximum (the smallest maximum of its
    windows; ``NO_CEILING`` for an output that holds a window's maximum or whose post-operation
    is not monotone), and whether any drop is harmless (it holds no window's maximum). Outputs
    in no window are free both ways. The convolution kernel fused with the pool then leaves
    such moves alone (``kernels.conv_changes_kernel``)."""
    if layer + 1 >= len(layers) or not isinstance(layers[layer + 1], MaxPool2D):
        return None
    y = outputs[layer]
    ceiling, free = np.empty(y.shape, np.int16), np.empty(y.shape, np.uint8)
    monotone = np.isin(post, (POST_PLAIN, POST_CLAMP)).astype(np.uint8)
    windows = layers[layer + 1].windows()
    pooled_bounds_kernel(y, outputs[layer + 1], windows, monotone, ceiling, free)
    return ceiling, free


def rounding_slack(
    rec: Conv2D | Dense, acc: I32, post: U8, pooled: tuple[I16, U8] | None = None
) -> tuple[I16, I16]:
    """(lo, hi) int16 (N, size): per golden accumulator, the moves that keep its output, or
    with ``pooled`` (``pooled_bounds``) the moves that keep every window maximum of the pool
    after it.
    Only layers after the first weighted one need it (nothing upstream of that can change).
    Convolutions get it channels-last, (N, OH * OW * O), the order of the kernel's scratch, so
    that its check runs over contiguous memory."""
    if isinstance(rec, Conv2D):
        o = rec.out_channels
        acc = _channels_last(acc, o)
        post = np.ascontiguousarray(post.reshape(o, -1).T).ravel()
        chan = np.arange(acc.shape[1], dtype=np.int64) % o
    else:
        chan = np.arange(acc.shape[1], dtype=np.int64)
    if pooled is None:
        ceiling, free = np.zeros((0, 0), np.int16), np.zeros((0, 0), np.uint8)
    else:
        ceiling, free = (_channels_last(a, rec.out_channels) for a in pooled)
    lo, hi = np.empty(acc.shape, np.int16), np.empty(acc.shape, np.int16)
    bias, mult = rec.bias.astype(np.int64), rec.multiplier.astype(np.int64)
    shift, relu_lo = rec.shift.astype(np.int64), 0 if rec.relu else -128
    requant = (bias, mult, shift, relu_lo)
    halved = np.isin(post, (POST_SPLIT, POST_SPLIT_CLAMPED)).astype(np.uint8)

    def rows(start: int) -> None:  # a block of images (the kernel releases the GIL)
        r = slice(start, start + _BATCH)
        c, f = (ceiling[r], free[r]) if ceiling.size else (ceiling, free)
        rounding_slack_kernel(acc[r], requant, halved, chan, (c, f), lo[r], hi[r])

    with ThreadPoolExecutor(_threads()) as pool:
        list(pool.map(rows, range(0, len(acc), _BATCH)))
    return lo, hi


def _channels_last(a: np.ndarray, channels: int) -> np.ndarray:
    """(N, C * H * W) -> (N, H * W * C), contiguous."""
    n = len(a)
    return np.ascontiguousarray(a.reshape(n, channels, -1).transpose(0, 2, 1)).reshape(n, -1)
