"""Which outputs of a sparse convolution keep their fault-free code without a requantisation.

A requantisation is monotonic in the accumulator, so each channel's codes split the
accumulators into intervals: ``code_thresholds`` tabulates their bounds once per convolution,
and ``kernels_boxes.sparse_conv_kernel`` keeps an output's fault-free code while its new
accumulator stays inside that code's interval (exact: the table is the requantisation's own).
``requant_records`` makes the requantisation records that table and the campaign kernels
(``kernels_boxes``, ``kernels_fc``) take.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.functional.graph import Graph, Node
from accelsim.functional.graph_kernels import requantize

I64 = npt.NDArray[np.int64]


def _vector_int64() -> bool:
    """Whether numba compiles for AVX-512 (``avx512f``): only there does LLVM vectorise the int64
    multiplies and variable arithmetic shifts of the requantisation. The features numba is told
    to target (``NUMBA_CPU_FEATURES``), else the host's."""
    from numba.core import config

    if config.CPU_FEATURES:
        return "+avx512f" in config.CPU_FEATURES.split(",")
    try:
        from llvmlite import binding

        return bool(binding.get_host_cpu_features().get("avx512f", False))
    except (RuntimeError, AttributeError):  # features unknown to llvmlite on this host
        return False


# The sparse convolution requantises an output only when its new accumulator leaves its
# fault-free code's interval (``code_thresholds``); elsewhere it keeps the code. On a host
# without AVX-512 the requantisation runs one output at a time and the check saves most of it
# (a pair reaching AlexNet's conv5 changes a mean 145 of the 16,384 values conv4 wrote, 1,000
# images): the replayed kernel took 0.76 of the time on an AVX2-only AMD EPYC. With AVX-512
# the requantisation is vectorised and a check of the same kind was slower, 1.94-1.99 s
# against 1.66-1.93 s in ResNet-20 replays (docs/campaigns.md).
CODE_CHECK = not _vector_int64()
NO_THRESHOLDS = np.zeros((0, 257), np.int64)  # the table when CODE_CHECK is off


def code_thresholds(rq: tuple[npt.NDArray, ...], q: I64) -> I64:
    """(O, 257) int64: entry [o, y + 128] is the smallest raw accumulator (no bias) that channel
    o requantises (``rq``, ``q`` as ``sparse_conv_kernel`` takes them) to code y or above;
    INT64_MIN where every accumulator does, INT64_MAX where none does. A requantisation is
    monotonic, so an accumulator a gives code y exactly when [o, y + 128] <= a < [o, y + 129].
    Found by bisection on the graph engine's own ``requantize``, over accumulators of +-2^40."""
    bias, mult, lshift, rshift, scale = rq
    fp32, zp, lo, hi = (int(v) for v in q[:4])
    o = bias.size
    codes = np.arange(-128, 129)

    def code(acc: I64) -> I64:
        acc = acc.reshape(o, 1, -1)
        if fp32:
            return requantize(acc, bias, scale, None, zp, (lo, hi))[0].astype(np.int64)
        return requantize(acc, bias, mult, lshift - rshift, zp, (lo, hi))[0].astype(np.int64)

    far = np.int64(1 << 40)
    below, at_or_above = np.full((o, 257), -far), np.full((o, 257), far)
    for _ in range(42):  # the gap halves from 2^41 to 1
        mid = (below + at_or_above) // 2
        up = code(mid) >= codes
        at_or_above = np.where(up, mid, at_or_above)
        below = np.where(up, below, mid)
    out = at_or_above
    out[code(np.full((o, 257), -far)) >= codes] = np.iinfo(np.int64).min
    out[code(np.full((o, 257), far)) < codes] = np.iinfo(np.int64).max
    return out


def requant_records(g: Graph, nd: Node) -> tuple[tuple[npt.NDArray, ...], I64]:
    """The kernels' requantisation records of weighted node ``nd``: ``rq`` = (bias, multiplier,
    left shift, right shift) int64 and scale float32 per channel, ``q`` = (XNNPACK's fp32
    scale or TFLite's fixed point, output zero point, clamp lo, clamp hi)."""
    p = g.params[nd.name]
    o = nd.weight.shape[0]
    fp32 = p.get("shift") is None  # XNNPACK's fp32 scale in place of multiplier and shift
    shift = np.zeros(o, np.int64) if fp32 else np.asarray(p["shift"], np.int64)
    rq = (np.asarray(p["offset_bias"], np.int64),
          np.zeros(o, np.int64) if fp32 else np.asarray(p["multiplier"], np.int64),
          np.maximum(shift, 0), np.maximum(-shift, 0),
          np.asarray(p["multiplier"], np.float32) if fp32 else np.zeros(o, np.float32))  # fmt: skip
    return rq, np.array([fp32, g.tensors[nd.output].zero_point, *p["act_range"]], np.int64)
