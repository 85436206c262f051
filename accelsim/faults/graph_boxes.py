"""The changed boxes of graph campaigns: the fault-free state they start from, their geometry
through windowed nodes, and the convolutions that recompute them (``graph_campaign`` explains
the entries; ``kernels_boxes`` holds the numba kernels).

A CONV_2D whose input changed in a box recomputes the outputs whose windows reach that box in
one of two ways, whichever costs less for the changed inputs at hand: from the changed inputs
alone (``sparse_conv_kernel``: the fault-free accumulators of the golden run plus (new - old) x
weight per tap of each changed input, then the node's requantisation), or by one exact GEMM
over the box with im2col straight from the int8 tensor. Both equal a full re-inference (tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from accelsim.faults import kernels_boxes as kb
from accelsim.faults.code_check import CODE_CHECK, NO_THRESHOLDS, code_thresholds, requant_records
from accelsim.faults.graph_golden import golden_acc
from accelsim.functional.graph import Graph, Node
from accelsim.functional.graph_kernels import requantize
from accelsim.functional.kernels import exact_matmul

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ConvPrep:
    """What the box kernels need of one CONV_2D, made once per campaign: its weights as the
    GEMM path's (O, kh kw C) float32 matrix and as the sparse kernel's (kh, kw, C, O) in float32,
    int32 and int8, the largest |weight|, the requantisation records and ``code_thresholds``."""

    gemm: npt.NDArray[np.float32]
    taps32: npt.NDArray[np.float32]
    taps_int: npt.NDArray[np.int32]
    taps8: npt.NDArray[np.int8]
    max_weight: int
    rq: tuple[npt.NDArray, ...]
    q: npt.NDArray[np.int64]


@dataclass(frozen=True)
class GraphGolden:
    """Every tensor of the fault-free (protected) run (N, ...), the classes, the labels and,
    per protected node, its protected neurons' copy 0 before the merge; kept beside them for
    the box kernels: channels-last copies of tensors and each CONV_2D's raw accumulators
    (N, OH, OW, O) int32, None past ``ACC_BUDGET``; ``graph_fc``'s records per FC node."""

    values: dict[str, I8]
    classes: I64
    labels: I64
    pre: dict[int, I8] = field(default_factory=dict)
    _last: dict[str, I8] = field(default_factory=dict, repr=False)
    _acc: dict[str, npt.NDArray[np.int32] | None] = field(default_factory=dict, repr=False)
    _prep: dict[str, ConvPrep] = field(default_factory=dict, repr=False)
    _fc: dict[str, tuple | None] = field(default_factory=dict, repr=False)

    def channels_last(self, t: str) -> I8:
        """Tensor ``t`` (N, H, W, C), made on first use (the convolutions' im2col reads it)."""
        if t not in self._last:
            self._last[t] = np.ascontiguousarray(self.values[t].transpose(0, 2, 3, 1))
        return self._last[t]


Box = tuple[int, int, int, int]  # rows y0..y1, columns x0..x1 (inclusive) of a feature map
WINDOWED = ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D")


def window_box(g: Graph, nd: Node, box: Box) -> Box | None:
    """The output positions of a windowed node whose windows reach the changed input box."""
    kh, kw = nd.weight.shape[-2:] if nd.weight is not None else tuple(nd.attr("size"))
    s = nd.attr("stride", 1)
    t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    _, oh, ow = g.tensors[nd.output].shape
    y0, y1, x0, x1 = box
    oy0, oy1 = max(0, -(-(y0 + t - kh + 1) // s)), min(oh - 1, (y1 + t) // s)
    ox0, ox1 = max(0, -(-(x0 + left - kw + 1) // s)), min(ow - 1, (x1 + left) // s)
    return None if oy0 > oy1 or ox0 > ox1 else (oy0, oy1, ox0, ox1)


def windowed_region(nd: Node, h: int, w: int, out_box: Box) -> tuple[Box, tuple[int, ...]]:
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


def union_box(boxes: list[Box | None]) -> Box | None:
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


# rows of ``live`` that differ, their values, their box, and per row (how many values differ
# from the fault-free ones, the sum of their absolute differences) where known
Entry = tuple[I64, I8, Box | None, I64 | None]


def entry_slots(rows: I64, entry: Entry | None) -> I64:
    """For each of ``rows``, its row in ``entry``'s values, or -1."""
    slot = np.full(rows.size, -1, np.int64)
    if entry is not None:
        slot[np.searchsorted(rows, entry[0])] = np.arange(entry[0].size)
    return slot


_NO_VALUES = np.zeros((1, 1, 1, 1), np.int8)
_NO_BOX = (1, 0, 1, 0)


def entry_where(entry: Entry | None, box: Box) -> I64:
    """The kernels' ``where`` record: the entry's box (empty without one), then ``box``."""
    return np.array([*(_NO_BOX if entry is None else entry[2]), *box], np.int64)


def read_tensor(state: GraphGolden, t: str, live: I64, rows: I64, entry: Entry | None,
          region: Box | None) -> I8:  # fmt: skip
    """Tensor ``t`` of images ``live[rows]``: the fault-free values with the changed ones laid
    over, whole or only ``region`` of a feature map; the entry's own values (not a copy: read
    them only) where every row changed and its box is the region."""
    golden = state.values[t]
    if entry is not None and entry[2] == region and region and entry[0].size == rows.size:
        return entry[1]  # entry rows are a subset of rows: of equal size, they are rows
    if region is not None and (entry is None or entry[2] is not None):
        y0, y1, x0, x1 = region
        out = np.empty((rows.size, golden.shape[1], y1 - y0 + 1, x1 - x0 + 1), np.int8)
        vals = _NO_VALUES if entry is None else entry[1]
        kb.read_overlay_kernel(golden, live[rows], entry_slots(rows, entry), vals,
                               entry_where(entry, region), out)  # fmt: skip
        return out
    out = golden[live[rows]]
    if entry is not None:
        r, v, box, _ = entry
        at = np.searchsorted(rows, r)
        if box is None:
            out[at] = v if region is None else v[:, :, region[0] : region[1] + 1,
                                                  region[2] : region[3] + 1]  # fmt: skip
        else:
            part = out[at]
            _overlay(part, (0, golden.shape[2] - 1, 0, golden.shape[3] - 1), v, box)
            out[at] = part
    return out


def box_entry(out: I8, fault_free: I8, live: I64, rows: I64, box: Box,
              channels_last: bool = False) -> Entry | None:  # fmt: skip
    """The entry of a node's recomputed output box ``out`` (one per row; (rows, box, C) with
    ``channels_last``) against the fault-free map: the rows that differ, their values in the
    box of what differs, in ``out``'s layout."""
    counts = np.empty((rows.size, 2), np.int64)
    bbox = np.empty(4, np.int64)
    first = np.ascontiguousarray(out.transpose(0, 3, 1, 2)) if channels_last else out
    kb.compare_box_kernel(first, fault_free, live[rows], entry_where(None, box), counts, bbox)
    return entry_of(out, rows, box, counts, bbox, channels_last)


def entry_of(out: I8, rows: I64, box: Box, counts: I64, bbox: I64,
             channels_last: bool = False) -> Entry | None:  # fmt: skip
    """The entry of ``out`` (rows, C, box), or (rows, box, C) with ``channels_last``, from
    the kernels' comparison (``compare_box_kernel``'s counts and bbox)."""
    keep = counts[:, 0] > 0
    if not keep.any():
        return None
    y0, y1, x0, x1 = (int(v) for v in bbox)
    if (y0, y1, x0, x1) == tuple(box) and keep.all():
        return rows, out, (y0, y1, x0, x1), counts  # every row, the whole box: no copy
    ys, xs = slice(y0 - box[0], y1 - box[0] + 1), slice(x0 - box[2], x1 - box[2] + 1)
    sub = out[keep][:, ys, xs] if channels_last else out[keep][:, :, ys, xs]
    return rows[keep], np.ascontiguousarray(sub), (y0, y1, x0, x1), counts[keep]


# One tap of one changed input (O multiply-adds in the sparse kernel) costs as much as about
# TAP_COST_BASE + TAP_COST_PER_CHANNEL * O multiply-adds of the GEMM over the box (one
# thread, ResNet-20's convolutions: 16-27 ns a tap against 0.05-0.19 ns a GEMM MAC for O = 64 ..
# 16); the sparse kernel runs when it is the cheaper by that measure.
TAP_COST_BASE = 100
TAP_COST_PER_CHANNEL = 3.5
# float32 sums of integers are exact below 2^24: the sparse kernel sums in float32 (faster)
# when no partial sum can reach this
FLOAT_SUM_LIMIT = 1 << 24
# The sparse kernel reads int8 taps when its float32 / int32 ones are larger than this: AlexNet's
# conv4 and conv5 (2.4 and 1.8 MB, more than a core's 2 MB L2, which its sums then stream
# from): the replayed kernel takes 8-15 % less time there, 3-12 % more on ResNet-20's (<= 0.15 MB)
TAPS_IN_L2 = 1 << 20


def _conv_acc(g: Graph, nd: Node, state: GraphGolden, img: I64, slot: I64, entry: Entry | None,
              out_box: Box, in_cl: bool = False) -> npt.NDArray[np.float32]:  # fmt: skip
    """Raw accumulators (O, n, box pixels) of a CONV_2D over ``out_box`` for images ``img``,
    its input the fault-free tensor with ``entry`` (channels last with ``in_cl``) laid over:
    im2col straight from the int8 tensor (zero-point padding), one exact GEMM."""
    o, c, kh, kw = nd.weight.shape
    t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    zp = g.tensors[nd.inputs[0]].zero_point
    y0, y1, x0, x1 = out_box
    n_pix = (y1 - y0 + 1) * (x1 - x0 + 1)
    cols = np.empty((img.size * n_pix, c * kh * kw), np.float32)
    conv = np.array([kh, kw, nd.attr("stride", 1), t, left, zp], np.int64)
    vals = _NO_VALUES if entry is None else entry[1]
    vals = vals if in_cl else np.ascontiguousarray(vals.transpose(0, 2, 3, 1))
    kb.gather_columns_kernel(state.channels_last(nd.inputs[0]), img, slot, vals,
                             entry_where(entry, out_box), conv, cols)  # fmt: skip
    return exact_matmul(conv_prep(g, nd, state).gemm, cols.T).reshape(o, img.size, n_pix)


def conv_prep(g: Graph, nd: Node, state: GraphGolden) -> ConvPrep:
    """``ConvPrep`` of CONV_2D ``nd``, made on first use and kept in ``state``."""
    if nd.name in state._prep:
        return state._prep[nd.name]
    o = nd.weight.shape[0]
    rq, q = requant_records(g, nd)
    q = np.array([*q, CODE_CHECK], np.int64)
    taps = nd.weight.transpose(2, 3, 1, 0)
    prep = ConvPrep(
        np.ascontiguousarray(nd.weight.transpose(0, 2, 3, 1).reshape(o, -1), np.float32),
        np.ascontiguousarray(taps, np.float32),
        np.ascontiguousarray(taps, np.int32),
        np.ascontiguousarray(taps, np.int8),
        int(np.abs(nd.weight.astype(np.int64)).max()),
        (*rq, code_thresholds(rq, q) if CODE_CHECK else NO_THRESHOLDS),
        q,
    )
    state._prep[nd.name] = prep
    return prep


def conv_box(g: Graph, nd: Node, state: GraphGolden, live: I64, rows: I64, entry: Entry,
             out_box: Box, in_cl: bool = False, out_cl: bool = False) -> Entry | None:  # fmt: skip
    """The entry of a CONV_2D's outputs in ``out_box`` for images ``live[rows]``, its input
    the fault-free tensor with ``entry`` laid over: computed from the changed inputs alone
    (``sparse_conv_kernel``, on the fault-free accumulators) where that is cheaper, else by
    one GEMM over the box. ``in_cl`` / ``out_cl``: the entry read / made holds its values
    channels last (rows, box, C), as a convolution reads them (``graph_campaign``)."""
    out, counts, bbox, _ = conv_box_values(g, nd, state, live, rows, entry, out_box,
                                           channels_last=out_cl, in_cl=in_cl)  # fmt: skip
    if counts is None:  # the GEMM path: compared here
        return box_entry(out, state.values[nd.output], live, rows, out_box, out_cl)
    return entry_of(out, rows, out_box, counts, bbox, out_cl)


def conv_box_values(g: Graph, nd: Node, state: GraphGolden, live: I64, rows: I64,
                    entry: Entry, out_box: Box, keep_acc: bool = False,
                    channels_last: bool = False, in_cl: bool = False) -> tuple:  # fmt: skip
    """``conv_box``'s outputs (rows, O, box), or (rows, box, O) with ``channels_last``, before
    the comparison, the comparison with the fault-free output (counts, bbox) where the sparse
    kernel made it (else None), and with ``keep_acc`` the raw accumulators (O, rows, box
    pixels) (else None). ``in_cl``: the entry's values are channels last (rows, box, C), and
    its counts known."""
    p = g.params[nd.name]
    o, c, kh, kw = nd.weight.shape
    y0, y1, x0, x1 = out_box
    n_pix = (y1 - y0 + 1) * (x1 - x0 + 1)
    img, slot = live[rows], entry_slots(rows, entry)
    where = entry_where(entry, out_box)
    counts = entry[3]
    if counts is None:
        if in_cl:
            raise ValueError(f"node {nd.name!r}: a channels-last entry comes with its counts")
        counts = np.empty((rows.size, 2), np.int64)
        kb.count_changes_kernel(state.values[nd.inputs[0]], img, slot, entry[1], where, counts)
    tap_cost = TAP_COST_BASE + TAP_COST_PER_CHANNEL * o
    stride = nd.attr("stride", 1)
    taps = kh * kw / stride**2  # a changed input feeds this many outputs on average
    sparse = int(counts[:, 0].sum()) * taps * tap_cost < rows.size * n_pix * o * c * kh * kw
    fault_free_acc = golden_acc(g, nd, state) if sparse else None
    if fault_free_acc is not None:
        prep = conv_prep(g, nd, state)
        t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
        conv = np.array([kh, kw, stride, t, left, channels_last, in_cl], np.int64)
        exact32 = int(counts[:, 1].max()) * prep.max_weight < FLOAT_SUM_LIMIT
        w_t = prep.taps32 if exact32 else prep.taps_int
        delta = np.empty((y1 - y0 + 1, x1 - x0 + 1, o), w_t.dtype)
        w_t = prep.taps8 if w_t.nbytes > TAPS_IN_L2 else w_t
        bx = (y1 - y0 + 1, x1 - x0 + 1)
        out = np.empty((rows.size, *bx, o) if channels_last else (rows.size, o, *bx), np.int8)
        out_counts, bbox = np.empty((rows.size, 2), np.int64), np.empty(4, np.int64)
        src = state.channels_last(nd.inputs[0]) if in_cl else state.values[nd.inputs[0]]
        fault_free = (src, fault_free_acc, state.channels_last(nd.output))
        kept = np.empty((rows.size, *delta.shape), np.int32) if keep_acc else kb.NO_ACC
        kb.sparse_conv_kernel(fault_free, img, slot, entry[1], where, conv, w_t, delta,
                              prep.rq, prep.q, (out, out_counts, bbox, kept))  # fmt: skip
        acc = kept.reshape(rows.size, n_pix, o).transpose(2, 0, 1) if keep_acc else None
        return out, out_counts, bbox, acc
    acc = _conv_acc(g, nd, state, img, slot, entry, out_box, in_cl)
    out = requantize(acc, p["offset_bias"], p.get("multiplier"), p.get("shift"),
                     g.tensors[nd.output].zero_point, p["act_range"])  # fmt: skip
    out = out.reshape(rows.size, o, y1 - y0 + 1, x1 - x0 + 1)
    out = np.ascontiguousarray(out.transpose(0, 2, 3, 1)) if channels_last else out
    return out, None, None, acc


def changed_entry(out: I8, fault_free: I8, rows: I64, box: Box | None) -> Entry | None:
    """The entry of a node's output ``out`` (rows, whole or the ``box`` region) against its
    fault-free values there: the rows that differ, their values in the box of what differs."""
    diff = out != fault_free
    differs = diff.reshape(len(rows), -1).any(axis=1)
    if not differs.any():
        return None
    if out.ndim != 4:
        return rows[differs], out[differs], None, None
    origin = box or (0, out.shape[2] - 1, 0, out.shape[3] - 1)
    y0, y1, x0, x1 = _differing_box(diff[differs], origin)
    sub = out[differs][
        :, :, y0 - origin[0] : y1 - origin[0] + 1, x0 - origin[2] : x1 - origin[2] + 1
    ]
    return rows[differs], np.ascontiguousarray(sub), (y0, y1, x0, x1), None
