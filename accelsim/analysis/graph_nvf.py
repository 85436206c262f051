"""The NVF of a graph network: ``linear`` through the graph's slopes (``graph_slopes``), the
exact searches ``exact`` and ``exact-bits`` on downstream re-runs (``graph_exact``), and
``exhaustive`` through the campaign engine's graph fault source (``faults.graph_campaign``).

All give an ``NvfResult`` keyed by node index (``g.nodes``), like a chain's by layer index, so
thresholds, plans and reports read either. The linear method is the chain's closed form
(``vulnerability.critical_deltas_linear``) on the graph's logit slopes, the exact ones the
chain's searches (``search``) on the graph's re-runs; bit mappings and the gradient check are
the chain's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from accelsim.analysis.graph_exact import graph_critical_deltas_exact, graph_exact_bit_flips
from accelsim.analysis.graph_slopes import graph_logit_slopes
from accelsim.analysis.vulnerability import (
    NvfResult,
    NvfTotals,
    Variant,
    bit_weights,
    critical_deltas_linear,
    gradient_skip,
)
from accelsim.config.workload import BitMapping as Mapping
from accelsim.config.workload import FaultKind
from accelsim.config.workload import NvfMethod as Method
from accelsim.faults.model import KIND_CODES, FaultBatch
from accelsim.functional.graph import Graph, run_graph
from accelsim.functional.models import layer_name, layer_sizes, neuron_layers
from accelsim.functional.network import classify

I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def graph_every_bit_flip(g: Graph) -> FaultBatch:
    """One single-bit fault per neuron x bit of every neuron node (ids in node, neuron, bit
    order)."""
    sizes = layer_sizes(g)
    node = np.concatenate([np.full(8 * n, i, np.int64) for i, n in sizes.items()])
    index = np.concatenate([np.repeat(np.arange(n, dtype=np.int64), 8) for n in sizes.values()])
    mask = np.tile(np.int64(1) << np.arange(8, dtype=np.int64), sum(sizes.values()))
    n = node.size
    kind = np.full(n, KIND_CODES[FaultKind.SINGLE_BIT], np.int64)
    return FaultBatch(np.arange(n, dtype=np.int64), node, index, np.zeros(n, np.int64), mask, kind)


def graph_exhaustive_nvf(
    g: Graph,
    x: I8,
    *,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> NvfResult:
    """Every bit flip of every neuron on every input of ``x`` (``analysis.exhaustive`` on a
    graph); ``on_progress(n)``: n more inputs' worth of work done."""
    from accelsim.analysis.exhaustive import exhaustive_nvf

    return exhaustive_nvf(g, x, workers=workers, on_progress=on_progress)


def graph_nvf_variants(
    g: Graph,
    x: I8,
    *,
    method: Method = Method.LINEAR,
    variants: tuple[Variant, ...] = ((Mapping.LOG2, True),),
    neurons: dict[int, I64] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[NvfResult, ...]:
    """The NVF of every neuron of ``g`` over int8 inputs ``x``, one result per (bit mapping,
    gradient check) variant from one computation of the critical deltas (one result for
    exact-bits and exhaustive, which take no variants). ``neurons`` ({node: flat indices})
    restricts the exact searches of the nodes it names to those neurons (their others get NVF
    0); nodes it does not name are searched whole."""
    if method is Method.EXHAUSTIVE:
        return (graph_exhaustive_nvf(g, x, on_progress=on_progress),)
    if method is Method.EXACT_BITS:
        variants = ((Mapping.LOG2, False),)
    sizes = layer_sizes(g)
    names = {i: layer_name(g, i) for i in sizes}
    wanted = neuron_layers(g)
    totals = [NvfTotals.zeros(sizes) for _ in variants]
    scale = float(g.tensors[g.output].scale)
    n_classes = int(g.tensors[g.output].shape[0])
    need_slopes = method is Method.LINEAR or any(check for _, check in variants)
    batch = max(1, min(64, int(2e7 // max(sum(sizes.values()) * n_classes, 1))))
    if method is not Method.LINEAR:  # minutes per input on deep graphs: progress after each
        batch = 1
    for start in range(0, len(x), batch):
        xb = x[start : start + batch]
        values = run_graph(g, xb, keep=lambda t: True)
        values[g.input] = xb
        logits = values[g.output]
        golden = classify(logits)
        slopes = graph_logit_slopes(g, values, wanted) if need_slopes else {}
        one = [{t: a[b : b + 1] for t, a in values.items()} for b in range(len(xb))]
        for i in wanted:
            out = values[g.nodes[i].output].reshape(len(xb), -1)
            sample = (neurons or {}).get(i)
            if method is Method.EXACT_BITS:
                flips = [graph_exact_bit_flips(g, single, i, sample).T for single in one]
                totals[0].add(i, np.stack(flips), None)
                continue
            if method is Method.LINEAR:
                r_up, r_lo = critical_deltas_linear(slopes[i], logits, golden, out, scale)
            else:
                pairs = [graph_critical_deltas_exact(g, single, i, sample) for single in one]
                r_up, r_lo = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
            skip = gradient_skip(slopes[i], golden) if i in slopes else None
            for (mapping, check), total in zip(variants, totals, strict=True):
                w = bit_weights(mapping, r_up, r_lo, out)
                if check:
                    w[skip] = 0.0
                total.add(i, w, skip if check else None)
        if on_progress is not None:
            on_progress(len(xb))
    if method is Method.EXACT_BITS:
        return (totals[0].result(names, method, None, len(x)),)
    return tuple(t.result(names, method, v, len(x)) for t, v in zip(totals, variants, strict=True))
