"""Faults in a graph network's tensors: a fault source of the campaign engine, exact.

A graph's neurons are the output elements of its weighted nodes (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED) except the classifier's. A fault (``FaultBatch`` row) names the node by its
index in ``Graph.nodes``, the flat C-H-W element, the bit mask and the kind, as for chains.

Evaluation is the generic exact path: the fault is applied to the node's output for every
image, and only the nodes downstream of it run again, on the images whose inputs to that node
differ from the fault-free ones (an image whose change has died out, at a RELU clamp, a max
pool or a requantisation that rounds it away, leaves the batch; its class is the fault-free
one). A tensor read by two nodes, as the block input of a residual block, carries the fault
down both paths and meets itself at the ADD. Results equal a full re-inference of the faulty
graph (tests, every fault of small residual, depthwise and concatenation graphs).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind, ProtectionMode
from accelsim.faults import kernels_add, kernels_fc
from accelsim.faults.graph_boxes import (
    WINDOWED,
    Entry,
    GraphGolden,
    box_entry,
    changed_entry,
    conv_box,
    conv_box_values,
    read_tensor,
    union_box,
    window_box,
    windowed_region,
)
from accelsim.faults.graph_fc import fc_delta, fc_prep
from accelsim.faults.graph_golden import golden_acc, golden_pass, warm_box_kernels
from accelsim.faults.graph_layout import channels_last_readers, merges, pool_after
from accelsim.faults.kernels_add import add_box
from accelsim.faults.kernels_pool import POOLS, conv_pool_box, pool_box
from accelsim.faults.model import KIND_CODES, FaultBatch, apply_fault
from accelsim.faults.sampling import leveugle_size
from accelsim.faults.store import FaultRows
from accelsim.functional.graph import Graph, graph_forward, run_node
from accelsim.functional.graphio import graph_hash
from accelsim.functional.models import n_neurons, neuron_layers
from accelsim.functional.network import classify
from accelsim.protection.graph_protected import (
    merge_fault_free,
    merge_node_copies,
    protected_graph_tensors,
)
from accelsim.protection.plan import EXTRA_COPIES, SPLITS, ProtectionPlan, plan_hash
from accelsim.protection.protected import ProtectedNetwork, protected_logits, unprotected

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


def graph_neuron_nodes(g: Graph) -> tuple[int, ...]:
    """Indices (in ``g.nodes``) of the nodes whose outputs are neurons: the weighted nodes
    except the one producing the graph output."""
    return neuron_layers(g)


def graph_n_neurons(g: Graph) -> int:
    return n_neurons(g)


def changeable_tensors(g: Graph) -> set[str]:
    """The tensors a fault in a neuron output can change: those outputs and everything
    downstream of them."""
    hit = {g.nodes[i].output for i in graph_neuron_nodes(g)}
    for nd in g.nodes:
        if any(t in hit for t in nd.inputs):
            hit.add(nd.output)
    return hit


@dataclass(frozen=True, eq=False)
class GraphCampaignInputs:
    """Faults in the neuron outputs (every copy, with a plan) of graph ``graph`` on int8
    inputs ``x`` (N, *input); ``plan`` and ``ranges`` (ranger / zero) protect it."""

    graph: Graph
    x: I8
    labels: I64
    plan: ProtectionPlan | None = None
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256(graph_hash(self.graph).encode())
        if self.plan is not None:
            h.update(plan_hash(self.plan).encode())
            h.update(repr(sorted(self.ranges.items())).encode())
        for arr in (self.x, self.labels):
            h.update(np.ascontiguousarray(arr).tobytes())
        object.__setattr__(self, "key", h.hexdigest())

    @property
    def pnet(self) -> ProtectedNetwork:
        if self.plan is None:
            return unprotected(self.graph)
        return ProtectedNetwork(self.graph, self.plan, self.ranges)

    def golden(self) -> GraphGolden:
        """The fault-free run, with the fault-free accumulators of every CONV_2D and
        FULLY_CONNECTED (within their budgets) that the sparse kernels start from, the
        channels-last copies of the convolutions' and ADDs' tensors and the box kernels loaded: made
        here, once, so that forked workers share them."""
        changeable = changeable_tensors(self.graph)
        convs = frozenset(nd.name for nd in self.graph.nodes
                          if nd.op == "CONV_2D" and nd.inputs[0] in changeable)  # fmt: skip
        if self.plan is None:
            values, accs = golden_pass(self.graph, self.x, convs)
            pre: dict[int, I8] = {}
        else:
            (values, pre), accs = protected_graph_tensors(self.pnet, self.x), {}
        state = GraphGolden(values, classify(values[self.graph.output]), self.labels, pre)
        state._acc.update(accs)
        for nd in self.graph.nodes:
            if nd.name in convs:
                golden_acc(self.graph, nd, state)
                state.channels_last(nd.inputs[0])  # what the convolutions' kernels read
                state.channels_last(nd.output)
            elif nd.op == "ADD" and any(t in changeable for t in nd.inputs):
                for t in (*nd.inputs, nd.output):  # what add_box_kernel reads
                    state.channels_last(t)
            elif nd.op == "FULLY_CONNECTED":
                fc_prep(self.graph, nd, state)
        warm_box_kernels()
        kernels_add.warm()
        kernels_fc.warm()
        return state

    def fault_free_classes(self) -> I64:
        if self.plan is None:  # batched, without keeping every tensor
            return classify(graph_forward(self.graph, self.x))
        return classify(protected_logits(self.pnet, self.x))

    def order(self, faults: FaultBatch) -> I64:
        """Faults of one node together, in element order."""
        return np.lexsort((faults.index, faults.layer))

    def evaluate(self, state: GraphGolden, batch: FaultBatch) -> FaultRows:
        changed = np.empty(len(batch), np.int64)
        correct = np.empty(len(batch), np.int64)
        pnet = self.pnet
        for k in range(len(batch)):
            classes = faulty_graph_classes(
                pnet, state, int(batch.layer[k]), int(batch.index[k]),
                int(batch.mask[k]), int(batch.kind[k]), copy=int(batch.copy[k]),
            )  # fmt: skip
            changed[k] = int(np.sum(classes != state.classes))
            correct[k] = int(np.sum(classes == state.labels))
        return FaultRows(
            batch.ids, batch.layer, batch.index, batch.copy, batch.mask, batch.kind,
            changed, correct,
        )  # fmt: skip


def faulty_graph_classes(
    g: Graph | ProtectedNetwork, state: GraphGolden, node: int, index: int, mask: int,
    kind: int, *, copy: int = 0,
) -> I64:  # fmt: skip
    """The classes of every image when element ``index`` of node ``node``'s output (its copy
    ``copy``) is hit."""
    return classify(faulty_graph_output(g, state, node, index, mask, kind, copy=copy))


def _faulty_column(
    pnet: ProtectedNetwork, state: GraphGolden, node: int, index: int, mask: int, kind: int,
    copy: int,
) -> I8:  # fmt: skip
    """The value the next nodes see of element ``index`` of node ``node`` when copy ``copy`` of
    it is hit: the merge of its copies (one faulty) for a protected neuron, else the flip."""
    golden = state.values[pnet.net.nodes[node].output]
    column = golden.reshape(len(golden), -1)[:, index]
    protected = pnet.plan.for_layer(node)
    if protected is not None and pnet.plan.mode is not ProtectionMode.NONE:
        pos = int(np.searchsorted(protected, index))
        if pos < protected.size and protected[pos] == index:
            plain = state.pre[node][:, pos : pos + 1]
            copies = [plain.copy() for _ in range(1 + EXTRA_COPIES[pnet.plan.mode])]
            copies[copy] = apply_fault(copies[copy], mask, kind)
            return merge_node_copies(pnet, node, copies, plain)[:, 0]
    return apply_fault(column, mask, kind)


ELEMENTWISE = ("ADD", "CONCATENATION")  # outputs change only where an input changed


def faulty_graph_output(
    g: Graph | ProtectedNetwork, state: GraphGolden, node: int, index: int, mask: int,
    kind: int, *, copy: int = 0,
) -> I8:  # fmt: skip
    """The graph output (the logits) of every image when element ``index`` of node ``node``'s
    output (its copy ``copy``, for a protected neuron) is hit; ``g`` a graph or a protected
    graph (``state`` is then its protected golden run).

    Each changed feature map carries only its changed images and the bounding box of its
    changed positions (a fault starts as one position); a windowed node (convolution,
    depthwise, pool) computes only the outputs whose windows reach that box, on the input
    region they read (with the padding that region has); ADD and CONCATENATION compute only
    the union of their inputs' boxes, PAD shifts the box; the box of the outputs that really
    changed goes on downstream. Vectors (after MEAN, FC, a RESHAPE to a vector) are recomputed
    whole."""
    pnet = g if isinstance(g, ProtectedNetwork) else unprotected(g)
    g = pnet.net
    flat = state.values[g.nodes[node].output].reshape(len(state.values[g.output]), -1)
    faulty_col = _faulty_column(pnet, state, node, index, mask, kind, copy)
    live = np.flatnonzero(faulty_col != flat[:, index])
    logits = state.values[g.output].copy()
    for start in range(0, live.size, CHUNK_IMAGES):  # bounded temporaries, however many images
        _propagate(pnet, state, node, index, faulty_col, live[start : start + CHUNK_IMAGES],
                   logits)  # fmt: skip
    return logits


# A fault's images go through the graph in chunks of at most this many: the per-node arrays
# (boxes x images) then stay the same size at 1,000 or 10,000 test images. 500 against 1,000:
# ResNet-20 up to 1.17x faster, AlexNet at 10,000 images 2-4 % slower (docs/campaigns.md).
CHUNK_IMAGES = 500


def _propagate(pnet: ProtectedNetwork, state: GraphGolden, node: int, index: int,
               faulty_col: I8, live: I64, logits: I8) -> None:  # fmt: skip
    """``faulty_graph_output`` for images ``live`` (where the faulty column differs): their
    logits written into ``logits``."""
    g = pnet.net
    mode = pnet.plan.mode
    target = g.nodes[node].output
    golden = state.values[target]
    flat = golden.reshape(len(golden), -1)
    shape = golden.shape[1:]
    changed: dict[str, Entry] = {}
    cl: set[str] = set()  # tensors whose entries hold their values channels last
    if len(shape) == 3:
        c, y, x = (int(v) for v in np.unravel_index(index, shape))
        box0 = (y, y, x, x)
        values = golden[live][:, :, y : y + 1, x : x + 1].copy()
        values[:, c, 0, 0] = faulty_col[live]
        moved = np.abs(faulty_col[live].astype(np.int64) - golden[live, c, y, x])
        changed[target] = (np.arange(live.size), values, box0, np.stack([moved > 0, moved], 1))
    else:
        hit = flat[live].copy()
        hit[:, index] = faulty_col[live]
        changed[target] = (np.arange(live.size), hit.reshape(-1, *shape), None, None)
    for j in range(node + 1, len(g.nodes)):
        nd = g.nodes[j]
        entries = [changed.get(t) for t in nd.inputs]
        hits = [e[0] for e in entries if e is not None]
        if not hits:
            continue
        rows = np.unique(np.concatenate(hits))
        # a protected node merges fault-free copies here (the fault is upstream): the plain
        # value under PLAIN_MERGES, else merge_fault_free on the plain output
        guard = merges(pnet, j)
        in_box = union_box([e[2] for e in entries if e is not None])
        fault_free = state.values[nd.output]
        entry: Entry | None
        if nd.op in WINDOWED and in_box is not None:
            out_box = window_box(g, nd, in_box)
            if out_box is None:
                continue
            if nd.op == "CONV_2D" and not guard:  # a pool alone reading it: one pass for both
                pool_nd = pool_after(pnet, j)
                made = nd.output if pool_nd is None else pool_nd.output
                layout = (nd.inputs[0] in cl, channels_last_readers(pnet, made))  # fmt: skip
                at = (state, live, rows, entries[0], out_box, *layout)
                if pool_nd is None:
                    entry = conv_box(g, nd, *at)
                else:
                    entry = conv_pool_box(g, nd, pool_nd, *at)
                if entry is not None:
                    changed[made] = entry
                    cl.update([made] if layout[1] else [])
                continue
            if nd.op in POOLS and not guard:
                entry = pool_box(g, nd, state, live, rows, entries[0], out_box)
                if entry is not None:
                    changed[nd.output] = entry
                continue
            src = nd.inputs[0]
            region, pad = windowed_region(nd, *g.tensors[src].shape[1:], out_box)
            sub = dataclasses.replace(nd, attrs={**nd.attrs, "padding": pad})
            x_in = _Lazy(partial(read_tensor, state, src, live, rows, entries[0], region))
            acc = None  # a split's halves are requantised from the raw accumulators
            if nd.op == "CONV_2D":
                part, _, _, acc = conv_box_values(g, nd, state, live, rows, entries[0], out_box,
                                                  keep_acc=mode in SPLITS)  # fmt: skip
            else:
                part = run_node(g, sub, x_in())
            if guard:
                part = merge_fault_free(pnet, j, sub, part, out_box, x_in, acc=acc)
            entry = box_entry(part, fault_free, live, rows, out_box)
        elif nd.op == "ADD" and in_box is not None:  # one pass: read, add, compare
            out_cl = channels_last_readers(pnet, nd.output)
            in_cl = (nd.inputs[0] in cl, nd.inputs[1] in cl)
            entry = add_box(g, nd, state, live, rows, entries, in_box, in_cl, out_cl)
            cl.update([nd.output] if out_cl and entry is not None else [])
        elif nd.op in ELEMENTWISE and in_box is not None:
            pairs = zip(nd.inputs, entries, strict=True)
            ins = [read_tensor(state, t, live, rows, e, in_box) for t, e in pairs]
            entry = box_entry(run_node(g, nd, ins), fault_free, live, rows, in_box)
        elif nd.op == "PAD" and in_box is not None:
            t, _, left, _ = nd.attr("padding")
            r, v, b, counts = entries[0]
            entry = (r, v, (b[0] + t, b[1] + t, b[2] + left, b[3] + left), counts)
        else:
            pairs = zip(nd.inputs, entries, strict=True)
            ins = [read_tensor(state, t, live, rows, e, None) for t, e in pairs]
            out = None
            if nd.op == "FULLY_CONNECTED":
                out = fc_delta(g, nd, state, live[rows], ins[0])
            if out is None:
                out = run_node(g, nd, ins)
            if guard:
                out = merge_fault_free(pnet, j, nd, out, None, ins.copy)
            entry = changed_entry(out, fault_free[live[rows]], rows, None)
        if entry is not None:
            changed[nd.output] = entry
    if g.output in changed:
        r, v, _, _ = changed[g.output]
        logits[live[r]] = v


class _Lazy:
    """A windowed node's input region, as the list ``run_node`` takes, read on the first call
    only (a convolution, protected or not, never reads it: its box comes from the changed
    inputs or the GEMM's own im2col)."""

    def __init__(self, read: Callable[[], I8]) -> None:
        self._read, self._value = read, None

    def __call__(self) -> list[I8]:
        if self._value is None:
            self._value = [self._read()]
        return self._value


def sample_graph_faults(
    g: Graph, n: int | None, *, seed: int, confidence: float = 0.95, error_margin: float = 0.01
) -> FaultBatch:
    """Single-bit flips drawn uniformly (with a seed) from every neuron x bit of ``g``;
    ``n`` None takes Leveugle's sample size for the population."""
    nodes = graph_neuron_nodes(g)
    sizes = np.array([int(np.prod(g.tensors[g.nodes[i].output].shape)) for i in nodes], np.int64)
    population = int(sizes.sum()) * 8
    if n is None:
        n = leveugle_size(population, error_margin=error_margin, confidence=confidence, p=0.5)
    rng = np.random.default_rng(seed)
    picks = rng.choice(population, size=min(n, population), replace=False)
    neuron, bit = picks // 8, picks % 8
    starts = np.concatenate([[0], np.cumsum(sizes)])
    which = np.searchsorted(starts, neuron, side="right") - 1
    order = np.argsort(picks)
    return FaultBatch(
        np.arange(len(picks), dtype=np.int64),
        np.asarray(nodes, np.int64)[which][order],
        (neuron - starts[which])[order].astype(np.int64),
        np.zeros(len(picks), np.int64),
        (np.int64(1) << bit)[order].astype(np.int64),
        np.full(len(picks), KIND_CODES[FaultKind.SINGLE_BIT], np.int64),
    )
