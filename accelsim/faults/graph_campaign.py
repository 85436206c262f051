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
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import FaultKind, ProtectionMode
from accelsim.faults import kernels_boxes as kb
from accelsim.faults.model import KIND_CODES, FaultBatch, apply_fault
from accelsim.faults.sampling import leveugle_size
from accelsim.faults.store import FaultRows
from accelsim.functional.graph import Graph, Node, run_node
from accelsim.functional.graphio import graph_hash
from accelsim.functional import graph_kernels
from accelsim.functional.graph_kernels import requantize
from accelsim.functional.kernels import exact_matmul
from accelsim.functional.models import n_neurons, neuron_layers
from accelsim.functional.network import classify
from accelsim.protection.graph_protected import (
    merge_node_copies,
    protect_output,
    protected_graph_values,
)
from accelsim.protection.plan import EXTRA_COPIES, ProtectionPlan, plan_hash
from accelsim.protection.protected import ProtectedNetwork, unprotected

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


def graph_neuron_nodes(g: Graph) -> tuple[int, ...]:
    """Indices (in ``g.nodes``) of the nodes whose outputs are neurons: the weighted nodes
    except the one producing the graph output."""
    return neuron_layers(g)


def graph_n_neurons(g: Graph) -> int:
    return n_neurons(g)


@dataclass(frozen=True)
class GraphGolden:
    """Every tensor of the fault-free (protected) run (N, ...), the classes, the labels and,
    per protected node, its protected neurons' copy 0 before the merge."""

    values: dict[str, I8]
    classes: I64
    labels: I64
    pre: dict[int, I8] = field(default_factory=dict)
    _last: dict[str, I8] = field(default_factory=dict, repr=False)
    _acc: dict[str, npt.NDArray[np.int32] | None] = field(default_factory=dict, repr=False)

    def channels_last(self, t: str) -> I8:
        """Tensor ``t`` (N, H, W, C), made on first use (the convolutions' im2col reads it)."""
        if t not in self._last:
            self._last[t] = np.ascontiguousarray(self.values[t].transpose(0, 2, 3, 1))
        return self._last[t]


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
        """The fault-free run, with the fault-free accumulators of every CONV_2D (within
        ``ACC_BUDGET``) that the sparse kernel starts from: made here, once, so that forked
        workers share them."""
        if self.plan is None:
            values, accs = _golden_pass(self.graph, self.x)
            pre: dict[int, I8] = {}
        else:
            (values, pre), accs = protected_graph_values(self.pnet, self.x), {}
        state = GraphGolden(values, classify(values[self.graph.output]), self.labels, pre)
        state._acc.update(accs)
        for nd in self.graph.nodes:
            if nd.op == "CONV_2D":
                _golden_acc(self.graph, nd, state)
        return state

    def fault_free_classes(self) -> I64:
        values, _ = protected_graph_values(self.pnet, self.x)
        return classify(values[self.graph.output])

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


Box = tuple[int, int, int, int]  # rows y0..y1, columns x0..x1 (inclusive) of a feature map
WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")


def _window_box(g: Graph, nd: Node, box: Box) -> Box | None:
    """The output positions of a windowed node whose windows reach the changed input box."""
    kh, kw = nd.weight.shape[-2:] if nd.weight is not None else tuple(nd.attr("size"))
    s = nd.attr("stride", 1)
    t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    _, oh, ow = g.tensors[nd.output].shape
    y0, y1, x0, x1 = box
    oy0, oy1 = max(0, -(-(y0 + t - kh + 1) // s)), min(oh - 1, (y1 + t) // s)
    ox0, ox1 = max(0, -(-(x0 + left - kw + 1) // s)), min(ow - 1, (x1 + left) // s)
    return None if oy0 > oy1 or ox0 > ox1 else (oy0, oy1, ox0, ox1)


def _windowed_region(nd: Node, h: int, w: int, out_box: Box) -> tuple[Box, tuple[int, ...]]:
    """The input region (inclusive box) an output box of a windowed node reads, and the padding
    (top, bottom, left, right) that region has in the full input."""
    kh, kw = nd.weight.shape[-2:] if nd.weight is not None else tuple(nd.attr("size"))
    s = nd.attr("stride", 1)
    t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    oy0, oy1, ox0, ox1 = out_box
    ya, yb = oy0 * s - t, oy1 * s - t + kh - 1
    xa, xb = ox0 * s - left, ox1 * s - left + kw - 1
    pad = (max(0, -ya), max(0, yb - h + 1), max(0, -xa), max(0, xb - w + 1))
    return (max(ya, 0), min(yb, h - 1), max(xa, 0), min(xb, w - 1)), pad


def _union(boxes: list[Box | None]) -> Box | None:
    if any(b is None for b in boxes):
        return None
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip


def _differing_box(diff: npt.NDArray[np.bool_], origin: Box) -> Box:
    """The bounding box of the True positions of ``diff`` (N, C, h, w), offset by ``origin``."""
    plane = diff.any(axis=0).any(axis=0)  # leading axes first: contiguous, fast in numpy
    rows = np.flatnonzero(plane.any(axis=1))
    cols = np.flatnonzero(plane.any(axis=0))
    return (origin[0] + rows[0], origin[0] + rows[-1], origin[2] + cols[0], origin[2] + cols[-1])


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


def _overlay(region: I8, origin: Box, values: I8, box: Box) -> None:
    """Write ``values`` (a changed box of a feature map) into ``region`` (the part of the map
    at ``origin``), where the two overlap."""
    y0, y1 = max(origin[0], box[0]), min(origin[1], box[1])
    x0, x1 = max(origin[2], box[2]), min(origin[3], box[3])
    if y0 > y1 or x0 > x1:
        return
    region[:, :, y0 - origin[0] : y1 - origin[0] + 1, x0 - origin[2] : x1 - origin[2] + 1] = values[
        :, :, y0 - box[0] : y1 - box[0] + 1, x0 - box[2] : x1 - box[2] + 1
    ]


Entry = tuple[I64, I8, Box | None]  # rows of ``live`` that differ, their values, their box


def _slots(rows: I64, entry: Entry | None) -> I64:
    """For each of ``rows``, its row in ``entry``'s values, or -1."""
    slot = np.full(rows.size, -1, np.int64)
    if entry is not None:
        slot[np.searchsorted(rows, entry[0])] = np.arange(entry[0].size)
    return slot


_NO_VALUES = np.zeros((1, 1, 1, 1), np.int8)
_NO_BOX = (1, 0, 1, 0)


def _where(entry: Entry | None, box: Box) -> I64:
    """The kernels' ``where`` record: the entry's box (empty without one), then ``box``."""
    return np.array([*(_NO_BOX if entry is None else entry[2]), *box], np.int64)


def _read(state: GraphGolden, t: str, live: I64, rows: I64, entry: Entry | None,
          region: Box | None) -> I8:  # fmt: skip
    """Tensor ``t`` of images ``live[rows]``: the fault-free values with the changed ones laid
    over, whole or only ``region`` of a feature map."""
    golden = state.values[t]
    if region is not None and (entry is None or entry[2] is not None):
        y0, y1, x0, x1 = region
        out = np.empty((rows.size, golden.shape[1], y1 - y0 + 1, x1 - x0 + 1), np.int8)
        vals = _NO_VALUES if entry is None else entry[1]
        kb.read_overlay_kernel(golden, live[rows], _slots(rows, entry), vals,
                               _where(entry, region), out)  # fmt: skip
        return out
    out = golden[live[rows]]
    if entry is not None:
        r, v, box = entry
        at = np.searchsorted(rows, r)
        if box is None:
            out[at] = v if region is None else v[:, :, region[0] : region[1] + 1,
                                                  region[2] : region[3] + 1]  # fmt: skip
        else:
            part = out[at]
            _overlay(part, (0, golden.shape[2] - 1, 0, golden.shape[3] - 1), v, box)
            out[at] = part
    return out


def _box_entry(out: I8, fault_free: I8, live: I64, rows: I64, box: Box) -> Entry | None:
    """The entry of a node's recomputed output box ``out`` (one per row) against the
    fault-free map: the rows that differ, their values in the box of what differs."""
    differs = np.empty(rows.size, np.int64)
    bbox = np.empty(4, np.int64)
    kb.compare_box_kernel(out, fault_free, live[rows], _where(None, box), differs, bbox)
    keep = differs.astype(bool)
    if not keep.any():
        return None
    y0, y1, x0, x1 = (int(v) for v in bbox)
    sub = out[keep][:, :, y0 - box[0] : y1 - box[0] + 1, x0 - box[2] : x1 - box[2] + 1]
    return rows[keep], np.ascontiguousarray(sub), (y0, y1, x0, x1)


# One tap of one changed input (O multiply-adds in the sparse kernel) costs as much as about
# TAP_COST_BASE + TAP_COST_PER_CHANNEL * O multiply-adds of the GEMM over the box (one
# thread, ResNet-20's convolutions: 16-27 ns a tap against 0.05-0.19 ns a GEMM MAC for O = 64 ..
# 16); the sparse kernel runs when it is the cheaper by that measure.
TAP_COST_BASE = 100
TAP_COST_PER_CHANNEL = 3.5
# The fault-free accumulators the sparse kernel starts from are kept for at most this many
# bytes per process (ResNet-20: ~0.8 MB per image for every convolution); convolutions past
# the budget take the GEMM path.
ACC_BUDGET = 2 << 30
# float32 sums of integers are exact below 2^24: the sparse kernel sums in float32 (faster)
# when no partial sum can reach this
FLOAT_SUM_LIMIT = 1 << 24


def _conv_acc(g: Graph, nd: Node, state: GraphGolden, img: I64, slot: I64, entry: Entry | None,
              out_box: Box) -> npt.NDArray[np.float32]:  # fmt: skip
    """Raw accumulators (O, n, box pixels) of a CONV_2D over ``out_box`` for images ``img``,
    its input the fault-free tensor with ``entry`` laid over: im2col straight from the int8
    tensor (zero-point padding), one exact GEMM."""
    o, c, kh, kw = nd.weight.shape
    t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    zp = g.tensors[nd.inputs[0]].zero_point
    y0, y1, x0, x1 = out_box
    n_pix = (y1 - y0 + 1) * (x1 - x0 + 1)
    cols = np.empty((img.size * n_pix, c * kh * kw), np.float32)
    conv = np.array([kh, kw, nd.attr("stride", 1), t, left, zp], np.int64)
    vals = _NO_VALUES if entry is None else np.ascontiguousarray(entry[1].transpose(0, 2, 3, 1))
    kb.gather_columns_kernel(state.channels_last(nd.inputs[0]), img, slot, vals,
                             _where(entry, out_box), conv, cols)  # fmt: skip
    wm = np.ascontiguousarray(nd.weight.transpose(0, 2, 3, 1).reshape(o, -1), np.float32)
    return exact_matmul(wm, cols.T).reshape(o, img.size, n_pix)


def _acc_fits(g: Graph, nd: Node, n: int, used: int) -> bool:
    o, oh, ow = g.tensors[nd.output].shape
    return used + 4 * n * o * oh * ow <= ACC_BUDGET


def _batch_acc(g: Graph, nd: Node, x: I8) -> np.ndarray:
    """Raw accumulators (O, n, OH * OW) of CONV_2D ``nd`` on its input ``x``, the graph
    engine's own GEMM."""
    return graph_kernels.conv2d_acc(
        x, nd.weight, g.params[nd.name]["weight_matrix"], stride=nd.attr("stride", 1),
        padding=tuple(nd.attr("padding", (0, 0, 0, 0))),
        input_zero_point=g.tensors[nd.inputs[0]].zero_point,
    )  # fmt: skip


def _golden_pass(g: Graph, x: I8, batch: int = 256) -> tuple[dict[str, I8], dict[str, np.ndarray]]:
    """Every tensor of the unprotected graph on ``x``, batch by batch, and the raw
    accumulators (N, OH, OW, O) int32 of each CONV_2D within ``ACC_BUDGET``, taken from the
    same GEMM that gives its output."""
    n = len(x)
    values = {g.input: x, **{nd.output: np.empty((n, *g.tensors[nd.output].shape), np.int8)
                             for nd in g.nodes}}  # fmt: skip
    accs: dict[str, np.ndarray] = {}
    for nd in g.nodes:
        if nd.op == "CONV_2D" and _acc_fits(g, nd, n, sum(a.nbytes for a in accs.values())):
            o, oh, ow = g.tensors[nd.output].shape
            accs[nd.name] = np.empty((n, oh, ow, o), np.int32)
    for s in range(0, n, batch):
        e = min(s + batch, n)
        for nd in g.nodes:
            ins = [values[t][s:e] for t in nd.inputs]
            if nd.name in accs:
                p = g.params[nd.name]
                acc = _batch_acc(g, nd, ins[0])
                y = requantize(acc, p["offset_bias"], p.get("multiplier"), p.get("shift"),
                               g.tensors[nd.output].zero_point, p["act_range"])  # fmt: skip
                o, oh, ow = g.tensors[nd.output].shape
                accs[nd.name][s:e] = acc.reshape(o, e - s, oh, ow).transpose(1, 2, 3, 0)
                values[nd.output][s:e] = y.reshape(e - s, o, oh, ow)
            else:
                values[nd.output][s:e] = run_node(g, nd, ins)
    return values, accs


def _golden_acc(g: Graph, nd: Node, state: GraphGolden) -> npt.NDArray[np.int32] | None:
    """The fault-free raw accumulators (N, OH, OW, O) of CONV_2D ``nd``, made on first use;
    None past ``ACC_BUDGET``."""
    if nd.name in state._acc:
        return state._acc[nd.name]
    x = state.values[nd.inputs[0]]
    used = sum(a.nbytes for a in state._acc.values() if a is not None)
    if not _acc_fits(g, nd, len(x), used):
        state._acc[nd.name] = None
        return None
    o, oh, ow = g.tensors[nd.output].shape
    out = np.empty((len(x), oh, ow, o), np.int32)
    for s in range(0, len(x), 256):
        acc = _batch_acc(g, nd, x[s : s + 256])
        out[s : s + 256] = acc.reshape(o, -1, oh, ow).transpose(1, 2, 3, 0)
    state._acc[nd.name] = out
    return out


def _requant_records(g: Graph, nd: Node) -> tuple[tuple[npt.NDArray, ...], I64]:
    """``sparse_conv_kernel``'s requantisation records of node ``nd``."""
    p = g.params[nd.name]
    o = nd.weight.shape[0]
    fp32 = p.get("shift") is None  # XNNPACK's fp32 scale in place of multiplier and shift
    shift = np.zeros(o, np.int64) if fp32 else np.asarray(p["shift"], np.int64)
    rq = (
        np.asarray(p["offset_bias"], np.int64),
        np.zeros(o, np.int64) if fp32 else np.asarray(p["multiplier"], np.int64),
        np.maximum(shift, 0),
        np.maximum(-shift, 0),
        np.asarray(p["multiplier"], np.float32) if fp32 else np.zeros(o, np.float32),
    )
    zp = g.tensors[nd.output].zero_point
    return rq, np.array([int(fp32), zp, *p["act_range"]], np.int64)


def _conv_box(g: Graph, nd: Node, state: GraphGolden, live: I64, rows: I64, entry: Entry,
              out_box: Box) -> I8:  # fmt: skip
    """A CONV_2D's outputs in ``out_box`` for images ``live[rows]``, its input the fault-free
    tensor with ``entry`` laid over: from the changed inputs alone (``sparse_conv_kernel``,
    on the fault-free accumulators) where that is cheaper, else by one GEMM over the box."""
    p = g.params[nd.name]
    o, c, kh, kw = nd.weight.shape
    y0, y1, x0, x1 = out_box
    n_pix = (y1 - y0 + 1) * (x1 - x0 + 1)
    img, slot = live[rows], _slots(rows, entry)
    where = _where(entry, out_box)
    counts = np.empty((rows.size, 2), np.int64)
    kb.count_changes_kernel(state.values[nd.inputs[0]], img, slot, entry[1], where, counts)
    tap_cost = TAP_COST_BASE + TAP_COST_PER_CHANNEL * o
    sparse = int(counts[:, 0].sum()) * kh * kw * tap_cost < rows.size * n_pix * o * c * kh * kw
    golden_acc = _golden_acc(g, nd, state) if sparse else None
    if golden_acc is not None:
        t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
        conv = np.array([kh, kw, nd.attr("stride", 1), t, left, 0], np.int64)
        exact32 = int(counts[:, 1].max()) * int(np.abs(nd.weight.astype(np.int64)).max())
        exact32 = exact32 < FLOAT_SUM_LIMIT
        dtype = np.float32 if exact32 else np.int32
        w_t = np.ascontiguousarray(nd.weight.transpose(2, 3, 1, 0), dtype)
        delta = np.empty((y1 - y0 + 1, x1 - x0 + 1, o), dtype)
        out = np.empty((rows.size, o, y1 - y0 + 1, x1 - x0 + 1), np.int8)
        kb.sparse_conv_kernel(state.values[nd.inputs[0]], golden_acc, img, slot, entry[1],
                              where, conv, w_t, delta, *_requant_records(g, nd), out)  # fmt: skip
        return out
    acc = _conv_acc(g, nd, state, img, slot, entry, out_box)
    out = requantize(acc, p["offset_bias"], p.get("multiplier"), p.get("shift"),
                     g.tensors[nd.output].zero_point, p["act_range"])  # fmt: skip
    return out.reshape(rows.size, o, y1 - y0 + 1, x1 - x0 + 1)


def _changed(out: I8, fault_free: I8, rows: I64, box: Box | None) -> Entry | None:
    """The entry of a node's output ``out`` (rows, whole or the ``box`` region) against its
    fault-free values there: the rows that differ, their values in the box of what differs."""
    diff = out != fault_free
    differs = diff.reshape(len(rows), -1).any(axis=1)
    if not differs.any():
        return None
    if out.ndim != 4:
        return rows[differs], out[differs], None
    origin = box or (0, out.shape[2] - 1, 0, out.shape[3] - 1)
    y0, y1, x0, x1 = _differing_box(diff[differs], origin)
    sub = out[differs][
        :, :, y0 - origin[0] : y1 - origin[0] + 1, x0 - origin[2] : x1 - origin[2] + 1
    ]
    return rows[differs], np.ascontiguousarray(sub), (y0, y1, x0, x1)


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
    guarded = pnet.plan.mode is not ProtectionMode.NONE
    target = g.nodes[node].output
    golden = state.values[target]
    flat = golden.reshape(len(golden), -1)
    faulty_col = _faulty_column(pnet, state, node, index, mask, kind, copy)
    live = np.flatnonzero(faulty_col != flat[:, index])
    logits = state.values[g.output].copy()
    if live.size == 0:
        return logits
    shape = golden.shape[1:]
    changed: dict[str, Entry] = {}
    if len(shape) == 3:
        c, y, x = (int(v) for v in np.unravel_index(index, shape))
        box0 = (y, y, x, x)
        values = golden[live][:, :, y : y + 1, x : x + 1].copy()
        values[:, c, 0, 0] = faulty_col[live]
        changed[target] = (np.arange(live.size), values, box0)
    else:
        hit = flat[live].copy()
        hit[:, index] = faulty_col[live]
        changed[target] = (np.arange(live.size), hit.reshape(-1, *shape), None)
    for j in range(node + 1, len(g.nodes)):
        nd = g.nodes[j]
        entries = [changed.get(t) for t in nd.inputs]
        hits = [e[0] for e in entries if e is not None]
        if not hits:
            continue
        rows = np.unique(np.concatenate(hits))
        guard = guarded and pnet.plan.for_layer(j) is not None
        in_box = _union([e[2] for e in entries if e is not None])
        fault_free = state.values[nd.output]
        entry: Entry | None
        if nd.op in WINDOWED and in_box is not None:
            out_box = _window_box(g, nd, in_box)
            if out_box is None:
                continue
            if nd.op == "CONV_2D" and not guard:
                part = _conv_box(g, nd, state, live, rows, entries[0], out_box)
                entry = _box_entry(part, fault_free, live, rows, out_box)
                if entry is not None:
                    changed[nd.output] = entry
                continue
            src = nd.inputs[0]
            region, pad = _windowed_region(nd, *g.tensors[src].shape[1:], out_box)
            x_in = _read(state, src, live, rows, entries[0], region)
            sub = dataclasses.replace(nd, attrs={**nd.attrs, "padding": pad})
            part = run_node(g, sub, [x_in])
            if guard:
                part = protect_output(pnet, j, sub, [x_in], part, box=out_box)[0]
            entry = _box_entry(part, fault_free, live, rows, out_box)
        elif nd.op in ELEMENTWISE and in_box is not None:
            pairs = zip(nd.inputs, entries, strict=True)
            ins = [_read(state, t, live, rows, e, in_box) for t, e in pairs]
            entry = _box_entry(run_node(g, nd, ins), fault_free, live, rows, in_box)
        elif nd.op == "PAD" and in_box is not None:
            t, _, left, _ = nd.attr("padding")
            r, v, b = entries[0]
            entry = (r, v, (b[0] + t, b[1] + t, b[2] + left, b[3] + left))
        else:
            pairs = zip(nd.inputs, entries, strict=True)
            ins = [_read(state, t, live, rows, e, None) for t, e in pairs]
            out = run_node(g, nd, ins)
            if guard:
                out = protect_output(pnet, j, nd, ins, out)[0]
            entry = _changed(out, fault_free[live[rows]], rows, None)
        if entry is not None:
            changed[nd.output] = entry
    if g.output in changed:
        r, v, _ = changed[g.output]
        logits[live[r]] = v
    return logits


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
