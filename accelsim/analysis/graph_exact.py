"""The exact NVF searches on a graph network: ``exact`` (bisection over injected deltas) and
``exact-bits`` (every real bit flip), per input, on a downstream re-run of the graph.

A change to one node's output tensor re-runs only the nodes that read it, directly or through
other changed tensors, with every other input taken from the golden run; a candidate whose
changed tensors all equal their golden values again (a masked change: a clamp, a losing
max-pool input, a rounding) leaves the re-run and keeps the golden class. Branches and merges
need nothing special: a tensor read twice sends the change down both ways, and the merge reads
both changed versions. The answers equal a full re-inference (tested against brute force and
against the campaign engine's ``exhaustive``), independent of how the candidates are chunked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from accelsim.analysis.search import Classes, bisect_critical_deltas, bit_flip_table
from accelsim.functional.graph import Graph, run_node
from accelsim.functional.network import classify

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_ELEMENTS_PER_CHUNK = 1 << 22  # candidates x elements of the largest tensor, per re-run


def graph_change_classes(
    g: Graph, golden: Mapping[str, I8], node: int, index: npt.ArrayLike, values: npt.ArrayLike
) -> I64:
    """Class of one input when element ``index[m]`` (flat, C-H-W order) of node ``node``'s
    output is ``values[m]`` instead of its golden value (``graph_change_logits``)."""
    return classify(graph_change_logits(g, golden, node, index, values))


def graph_change_logits(
    g: Graph, golden: Mapping[str, I8], node: int, index: npt.ArrayLike, values: npt.ArrayLike
) -> I8:
    """Logits (m, classes) of one input when element ``index[m]`` (flat, C-H-W order) of node
    ``node``'s output is ``values[m]`` instead of its golden value.

    ``golden``: every tensor of the golden run for that input, each of shape (1, *shape), the
    graph input included (``run_graph(g, x, keep=lambda t: True)`` plus the input).
    """
    index = np.asarray(index, np.int64)
    values = np.asarray(values, np.int64)
    name = g.nodes[node].output
    base = golden[name].reshape(-1)
    result = np.repeat(golden[g.output], index.size, axis=0)
    alive = np.flatnonzero(values != base[index])
    largest = max(int(np.prod(t.shape)) for t in g.tensors.values())
    per_chunk = max(1, _ELEMENTS_PER_CHUNK // largest)
    for s in range(0, alive.size, per_chunk):
        rows = alive[s : s + per_chunk]
        changed = np.repeat(golden[name], rows.size, axis=0)
        changed.reshape(rows.size, -1)[np.arange(rows.size), index[rows]] = values[rows]
        kept, logits = _downstream(g, golden, node, changed)
        if logits is not None:
            result[rows[kept]] = logits
    return result


def _downstream(
    g: Graph, golden: Mapping[str, I8], node: int, changed: I8
) -> tuple[I64, I8 | None]:
    """Re-run the nodes after ``node`` for the m versions ``changed`` of its output: (the rows
    whose logits changed, those logits), or None when every change was masked."""
    last_use = {t: i for i, nd in enumerate(g.nodes) for t in nd.inputs}
    live = {g.nodes[node].output: changed}  # changed tensors, one row per surviving candidate
    rows = np.arange(len(changed))
    differs = {g.nodes[node].output: np.ones(len(changed), bool)}
    for i in range(node + 1, len(g.nodes)):
        nd = g.nodes[i]
        if not any(t in live for t in nd.inputs):
            continue
        m = rows.size
        xs = [live[t] if t in live else np.repeat(golden[t], m, axis=0) for t in nd.inputs]
        out = run_node(g, nd, xs)
        live[nd.output] = out
        differs[nd.output] = np.any(out.reshape(m, -1) != golden[nd.output].reshape(1, -1), axis=1)
        for t in [t for t in live if last_use.get(t, -1) <= i and t != g.output]:
            del live[t], differs[t]
        keep = np.logical_or.reduce([*differs.values(), np.zeros(rows.size, bool)])
        if not keep.any():
            return rows[:0], None
        if not keep.all():
            rows = rows[keep]
            live = {t: a[keep] for t, a in live.items()}
            differs = {t: d[keep] for t, d in differs.items()}
    return rows, live[g.output]


def _searched(g: Graph, golden: Mapping[str, I8], node: int) -> tuple[I64, int, Classes]:
    """What the searches of ``analysis.search`` take for node ``node`` of one input: the golden
    codes, the golden class, and the classes under changes (``graph_change_classes``)."""
    v = golden[g.nodes[node].output].reshape(-1).astype(np.int64)

    def classes(index: I64, new: I64) -> I64:
        return graph_change_classes(g, golden, node, index, new)

    return v, int(classify(golden[g.output])[0]), classes


def graph_critical_deltas_exact(
    g: Graph, golden: Mapping[str, I8], node: int, neurons: I64 | None = None
) -> tuple[I64, I64]:
    """r_upper / r_lower of node ``node``'s neurons for one input, by bisection over injected
    deltas on the downstream re-run (the chain's ``critical_deltas_exact`` on a graph)."""
    return bisect_critical_deltas(*_searched(g, golden, node), neurons)


def graph_exact_bit_flips(
    g: Graph, golden: Mapping[str, I8], node: int, neurons: I64 | None = None
) -> F64:
    """(8, n): 1 where flipping bit b of neuron n of node ``node`` changes the class of one
    input (only ``neurons`` when given; the others stay 0)."""
    return bit_flip_table(*_searched(g, golden, node), neurons)
