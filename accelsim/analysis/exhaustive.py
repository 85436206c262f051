"""The exhaustive NVF: every real bit flip of every neuron on every analysis input, through the
campaign engine (``faults.campaign``).

NVF(n) is then the true fraction of (input, bit) pairs whose flip changes the network's own
fault-free class, with no mapping and no gradient check (DESIGN.md section 3: the per-bit
ground truth ``exact-bits`` computes, by a search per input, exactly these numbers). The engine
evaluates a neuron's 8 flips on all inputs at once with its incremental kernels, which is why
it is the fast way to the ground truth: each neuron x bit is one fault of a campaign whose
images are the analysis inputs.

The interval: the per-input value of a neuron (its flipping bits / 8) lies in [0, 1], and the
engine returns only per-bit totals, so the half-width uses the largest variance a mean p of
values in [0, 1] can have, p (1 - p) (Bhatia-Davis): 1.96 sqrt(p (1 - p) / N), never narrower
than the true normal-approximation interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind
from accelsim.config.workload import NvfMethod as Method
from accelsim.faults.campaign import evaluate_faults, fault_source
from accelsim.faults.model import KIND_CODES, FaultBatch
from accelsim.functional.models import AnyNetwork, layer_name, layer_sizes
from accelsim.functional.network import Network
from accelsim.protection.protected import unprotected

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


def every_bit_flip(net: Network) -> FaultBatch:
    """One single-bit fault per neuron x bit of every neuron layer (ids in layer, neuron, bit
    order)."""
    layer, index, mask = [], [], []
    for i in net.neuron_layers:
        size = int(np.prod(net.layers[i].out_shape))
        layer.append(np.full(8 * size, i, np.int64))
        index.append(np.repeat(np.arange(size, dtype=np.int64), 8))
        mask.append(np.tile(np.int64(1) << np.arange(8, dtype=np.int64), size))
    layer_a, index_a, mask_a = (np.concatenate(a) if a else np.zeros(0, np.int64)
                                for a in (layer, index, mask))  # fmt: skip
    n = layer_a.size
    zeros = np.zeros(n, np.int64)
    kind = np.full(n, KIND_CODES[FaultKind.SINGLE_BIT], np.int64)
    return FaultBatch(np.arange(n, dtype=np.int64), layer_a, index_a, zeros, mask_a, kind)


def _source_and_faults(net: AnyNetwork, x: I8):
    """The campaign engine's fault source for ``net`` on analysis inputs x, and every flip."""
    labels = np.zeros(len(x), np.int64)
    if isinstance(net, Network):
        return fault_source(unprotected(net), x, labels), every_bit_flip(net)
    from accelsim.analysis.graph_nvf import graph_every_bit_flip
    from accelsim.faults.graph_campaign import GraphCampaignInputs

    return GraphCampaignInputs(net, x, labels), graph_every_bit_flip(net)


def exhaustive_nvf(
    net: AnyNetwork,
    x: I8,
    *,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
):  # -> NvfResult (imported lazily: vulnerability imports this module)
    """The exhaustive NVF of every neuron of a chain or graph over int8 inputs ``x``.
    ``on_progress(n)``: n more inputs' worth of work is done (the work is spread over faults,
    not inputs)."""
    from accelsim.analysis.vulnerability import LayerNvf, NvfResult

    inputs, faults = _source_and_faults(net, x)
    n_inputs = int(x.shape[0])
    done = reported = 0

    def progress(n_faults: int) -> None:  # faults done -> inputs' worth of work done
        nonlocal done, reported
        done += n_faults
        now = n_inputs * done // max(len(faults), 1)
        if on_progress is not None and now > reported:
            on_progress(now - reported)
            reported = now

    rows = evaluate_faults(inputs, faults, workers=workers, on_progress=progress)
    changed = rows.n_changed.astype(np.float64)  # ids 0 .. n-1, sorted: layer, neuron, bit
    n_in = max(n_inputs, 1)
    layers, start = [], 0
    for i, size in layer_sizes(net).items():
        counts = changed[start : start + 8 * size].reshape(size, 8).T
        start += 8 * size
        bit_map = np.ascontiguousarray(counts / n_in)
        nvf = counts.mean(axis=0) / n_in  # as exact-bits sums them
        half = 1.96 * np.sqrt(nvf * (1 - nvf) / n_in)
        layers.append(LayerNvf(i, layer_name(net, i), nvf, bit_map, np.zeros(size, np.int64),
                               half))  # fmt: skip
    return NvfResult(Method.EXHAUSTIVE, None, False, n_inputs, tuple(layers))


def estimate_exhaustive_seconds(net: AnyNetwork, x: I8, *, workers: int = 1,
                                sample: int = 64) -> float:  # fmt: skip
    """The seconds ``exhaustive_nvf(net, x, workers=workers)`` would take, from ``sample`` of
    its flips (uniform, seeded) timed on the same inputs after a one-fault warm-up (the golden
    state and the kernels): what ``run`` decides its default NVF method by."""
    inputs, faults = _source_and_faults(net, x)
    pick = np.sort(np.random.default_rng(0).choice(len(faults), min(sample, len(faults)), False))
    probe = faults.take(pick)
    evaluate_faults(inputs, probe.take([0]))
    start = time.perf_counter()
    evaluate_faults(inputs, probe)
    per_fault = (time.perf_counter() - start) / max(len(probe), 1)
    return per_fault * len(faults) / max(workers, 1)
