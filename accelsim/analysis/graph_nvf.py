"""The exhaustive NVF of a graph network: every bit flip of every neuron on every analysis
input, through the campaign engine's graph fault source (``faults.graph_campaign``).

NVF(n) is the fraction of (input, bit) pairs whose flip changes the graph's own fault-free
class, as for chains (``analysis.exhaustive``). The cost is one exact downstream re-run per
neuron x bit (``faulty_graph_output``), so this is for small graphs; the linear NVF through
ADD, pooling, MEAN, CONCATENATION and depthwise layers is not built yet.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind
from accelsim.faults.campaign import evaluate_faults
from accelsim.faults.graph_campaign import GraphCampaignInputs, graph_neuron_nodes
from accelsim.faults.model import KIND_CODES, FaultBatch
from accelsim.functional.graph import Graph

I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]


def graph_every_bit_flip(g: Graph) -> FaultBatch:
    """One single-bit fault per neuron x bit of every neuron node (ids in node, neuron, bit
    order)."""
    node, index, mask = [], [], []
    for i in graph_neuron_nodes(g):
        size = int(np.prod(g.tensors[g.nodes[i].output].shape))
        node.append(np.full(8 * size, i, np.int64))
        index.append(np.repeat(np.arange(size, dtype=np.int64), 8))
        mask.append(np.tile(np.int64(1) << np.arange(8, dtype=np.int64), size))
    node_a, index_a, mask_a = (np.concatenate(a) for a in (node, index, mask))
    n = node_a.size
    kind = np.full(n, KIND_CODES[FaultKind.SINGLE_BIT], np.int64)
    return FaultBatch(
        np.arange(n, dtype=np.int64), node_a, index_a, np.zeros(n, np.int64), mask_a, kind
    )


def graph_exhaustive_nvf(
    g: Graph,
    x: I8,
    *,
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> dict[int, F64]:
    """Per neuron node (index in ``g.nodes``): the NVF of each output element (flat C-H-W) over
    int8 inputs ``x``. ``on_progress(n)``: n more faults evaluated."""
    faults = graph_every_bit_flip(g)
    source = GraphCampaignInputs(g, x, np.zeros(len(x), np.int64))
    rows = evaluate_faults(source, faults, workers=workers, on_progress=on_progress)
    out: dict[int, F64] = {}
    for i in graph_neuron_nodes(g):
        size = int(np.prod(g.tensors[g.nodes[i].output].shape))
        counts = np.zeros(size, np.int64)
        sel = rows.layer == i
        np.add.at(counts, rows.neuron[sel], rows.n_changed[sel])
        out[i] = counts / (8.0 * len(x))
    return out
