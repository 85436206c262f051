"""Pools of a changed box in graph campaigns: MAX_POOL_2D and AVERAGE_POOL_2D recompute only
the windows that hold a changed input (``pool_box_kernel``, held equal to
``kernels_boxes_ref.pool_box_ref``); ``pool_box`` makes the entry of their output box. A pool
that alone reads a convolution's output is made in the convolution's call instead
(``conv_pool_box``): the sparse convolution's codes channels-last, then every window of the
pool's box across all channels at once (``pool_cl_kernel``, held to the same reference)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from accelsim.faults.graph_boxes import (
    Box,
    Entry,
    GraphGolden,
    conv_box_values,
    entry_of,
    entry_slots,
    entry_where,
    window_box,
)
from accelsim.functional.graph import Graph, Node

I64 = npt.NDArray[np.int64]


@njit(cache=True, nogil=True)
def pool_box_kernel(golden, golden_out, img, slot, vals, where, pool, out, counts, bbox):
    """A MAX_POOL_2D's or AVERAGE_POOL_2D's outputs over the output box of ``where``, its input
    golden[img[n]] with vals[slot[n]] laid over inside the entry box (as
    ``read_overlay_kernel`` reads it), and the comparison with the fault-free output
    golden_out that ``compare_box_kernel`` makes. Only the windows holding a changed input are
    pooled again; the rest of the box is the fault-free output. Windows as
    ``graph_kernels._pool_kernel``: their in-bounds part, max or average (rounded half away
    from zero), then the clamp. ``pool`` = (kh, kw, stride, top, left, average, lo, hi);
    golden (N, C, H, W), golden_out (N, C, OH, OW), out (n, C, bh, bw)."""
    by0, by1, bx0, bx1, oy0, oy1, ox0, ox1 = where
    kh, kw, stride, top, left = pool[0], pool[1], pool[2], pool[3], pool[4]
    average, lo, hi = pool[5] != 0, pool[6], pool[7]
    n_chan, h, w = golden.shape[1], golden.shape[2], golden.shape[3]
    bh, bw = oy1 - oy0 + 1, ox1 - ox0 + 1
    mark = np.zeros((n_chan, bh, bw), np.uint8)
    todo = np.empty((n_chan * bh * bw, 3), np.int64)
    bbox[0], bbox[1], bbox[2], bbox[3] = oy1 + 1, oy0 - 1, ox1 + 1, ox0 - 1  # none yet
    for n in range(img.size):
        src = img[n]
        s = slot[n]
        for c in range(n_chan):
            for py in range(bh):
                g_row = golden_out[src, c, oy0 + py]
                o_row = out[n, c, py]
                for px in range(bw):
                    o_row[px] = g_row[ox0 + px]
        counts[n, 0] = 0
        counts[n, 1] = 0
        if s < 0:
            continue
        m = 0  # the windows in the box that hold a changed input, each once
        for c in range(n_chan):
            for y in range(by0, by1 + 1):
                v_row = vals[s, c, y - by0]
                g_row = golden[src, c, y]
                # the output rows / columns whose windows hold input row y / column x
                ya = max(oy0, -((kh - 1 - y - top) // stride))
                yb = min(oy1, (y + top) // stride)
                for x in range(bx0, bx1 + 1):
                    if v_row[x - bx0] == g_row[x]:
                        continue
                    xa = max(ox0, -((kw - 1 - x - left) // stride))
                    xb = min(ox1, (x + left) // stride)
                    for oy in range(ya, yb + 1):
                        for ox in range(xa, xb + 1):
                            if mark[c, oy - oy0, ox - ox0]:
                                continue
                            mark[c, oy - oy0, ox - ox0] = 1
                            todo[m, 0], todo[m, 1], todo[m, 2] = c, oy, ox
                            m += 1
        for e in range(m):
            c, oy, ox = todo[e, 0], todo[e, 1], todo[e, 2]
            mark[c, oy - oy0, ox - ox0] = 0
            y0, x0 = oy * stride - top, ox * stride - left
            ya, yb = max(y0, 0), min(y0 + kh, h)
            xa, xb = max(x0, 0), min(x0 + kw, w)
            acc = 0
            v = -128
            for yy in range(ya, yb):
                over = by0 <= yy <= by1
                for xx in range(xa, xb):
                    if over and bx0 <= xx <= bx1:
                        el = np.int64(vals[s, c, yy - by0, xx - bx0])
                    else:
                        el = np.int64(golden[src, c, yy, xx])
                    acc += el
                    v = max(v, el)
            if average:
                count = (yb - ya) * (xb - xa)
                half = count // 2
                v = (acc + half) // count if acc > 0 else -((half - acc) // count)
            r = min(max(v, lo), hi)
            out[n, c, oy - oy0, ox - ox0] = r
            d = r - np.int64(golden_out[src, c, oy, ox])
            if d != 0:
                counts[n, 0] += 1
                counts[n, 1] += abs(d)
                bbox[0], bbox[1] = min(bbox[0], oy), max(bbox[1], oy)
                bbox[2], bbox[3] = min(bbox[2], ox), max(bbox[3], ox)


POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")


def _pool_record(g: Graph, nd: Node) -> I64:
    """(kh, kw, stride, top, left, average, lo, hi) of pool ``nd``, as the kernels take it."""
    kh, kw = nd.attr("size")
    t, _, left, _ = nd.attr("padding", (0, 0, 0, 0))
    lo, hi = g.params[nd.name]["act_range"]
    return np.array([kh, kw, nd.attr("stride", 1), t, left, nd.op == "AVERAGE_POOL_2D", lo, hi],
                    np.int64)  # fmt: skip


def pool_box(g: Graph, nd: Node, state: GraphGolden, live: I64, rows: I64, entry: Entry,
             out_box: Box) -> Entry | None:  # fmt: skip
    """The entry of a pool's outputs in ``out_box`` for images ``live[rows]``, its input the
    fault-free tensor with ``entry`` laid over (``pool_box_kernel``: read, pool and compare in
    one pass)."""
    y0, y1, x0, x1 = out_box
    n_chan = g.tensors[nd.output].shape[0]
    out = np.empty((rows.size, n_chan, y1 - y0 + 1, x1 - x0 + 1), np.int8)
    counts, bbox = np.empty((rows.size, 2), np.int64), np.empty(4, np.int64)
    pool_box_kernel(state.values[nd.inputs[0]], state.values[nd.output], live[rows],
                    entry_slots(rows, entry), entry[1], entry_where(entry, out_box),
                    _pool_record(g, nd), out, counts, bbox)  # fmt: skip
    return entry_of(out, rows, out_box, counts, bbox)


@njit(cache=True, nogil=True)
def pool_cl_kernel(codes, golden_cl, golden_out, img, where, pool, out, counts, bbox):
    """A pool's outputs over the output box of ``where`` whose input is a convolution's
    channels-last codes: codes[n] (bh, bw, C) over the input box of ``where``, the fault-free
    map golden_cl[img[n]] (H, W, C) elsewhere; every window of the box pooled across the
    channels at once, and the comparison with the fault-free output golden_out (N, C, OH, OW)
    that ``compare_box_kernel`` makes. Windows, ``pool`` and ``out`` (n, C, obh, obw) as in
    ``pool_box_kernel``; with a ninth ``pool`` value nonzero, out is (n, obh, obw, C) and
    golden_out (N, OH, OW, C) (a convolution reads the pool next)."""
    cl_out = pool.size > 8 and pool[8] != 0
    cy0, cy1, cx0, cx1, oy0, oy1, ox0, ox1 = where
    kh, kw, stride, top, left = pool[0], pool[1], pool[2], pool[3], pool[4]
    average, lo, hi = pool[5] != 0, pool[6], pool[7]
    h, w, n_chan = golden_cl.shape[1], golden_cl.shape[2], golden_cl.shape[3]
    bh, bw = oy1 - oy0 + 1, ox1 - ox0 + 1
    best = np.empty(n_chan, np.int32)
    total = np.zeros((bh, bw), np.uint8)
    for n in range(img.size):
        src = img[n]
        n_diff = 0
        moved = 0
        for py in range(bh):
            y0 = (oy0 + py) * stride - top
            ya, yb = max(y0, 0), min(y0 + kh, h)
            for px in range(bw):
                x0 = (ox0 + px) * stride - left
                xa, xb = max(x0, 0), min(x0 + kw, w)
                start = 0 if average else -128
                for o in range(n_chan):
                    best[o] = start
                for yy in range(ya, yb):
                    for xx in range(xa, xb):
                        if cy0 <= yy <= cy1 and cx0 <= xx <= cx1:
                            v = codes[n, yy - cy0, xx - cx0]
                        else:
                            v = golden_cl[src, yy, xx]
                        if average:
                            for o in range(n_chan):
                                best[o] += np.int32(v[o])
                        else:
                            for o in range(n_chan):
                                best[o] = max(best[o], np.int32(v[o]))
                if average:  # rounded half away from zero, as graph_kernels._pool_kernel
                    count = (yb - ya) * (xb - xa)
                    half = count // 2
                    for o in range(n_chan):
                        a = np.int64(best[o])
                        best[o] = (a + half) // count if a > 0 else -((half - a) // count)
                hit = 0
                if cl_out:
                    o_px, g_px = out[n, py, px], golden_out[src, oy0 + py, ox0 + px]
                    for o in range(n_chan):
                        r = min(max(np.int64(best[o]), lo), hi)
                        o_px[o] = r
                        d = r - np.int64(g_px[o])
                        hit += d != 0
                        moved += abs(d)
                else:
                    for o in range(n_chan):
                        r = min(max(np.int64(best[o]), lo), hi)
                        out[n, o, py, px] = r
                        d = r - np.int64(golden_out[src, o, oy0 + py, ox0 + px])
                        hit += d != 0
                        moved += abs(d)
                n_diff += hit
                total[py, px] |= hit != 0
        counts[n, 0] = n_diff
        counts[n, 1] = moved
    bbox[0], bbox[1], bbox[2], bbox[3] = oy1 + 1, oy0 - 1, ox1 + 1, ox0 - 1  # none yet
    for py in range(bh):
        for px in range(bw):
            if total[py, px]:
                bbox[0], bbox[1] = min(bbox[0], oy0 + py), max(bbox[1], oy0 + py)
                bbox[2], bbox[3] = min(bbox[2], ox0 + px), max(bbox[3], ox0 + px)


def conv_pool_box(g: Graph, nd: Node, pool_nd: Node, state: GraphGolden, live: I64, rows: I64,
                  entry: Entry, out_box: Box, in_cl: bool = False,
                  out_cl: bool = False) -> Entry | None:  # fmt: skip
    """The entry of pool ``pool_nd``'s outputs for images ``live[rows]`` where CONV_2D ``nd``,
    its input's only producer, recomputes ``out_box`` (``conv_box_values``, channels last):
    the convolution's own entry is never made (the pool is its output's only reader).
    ``in_cl`` / ``out_cl`` as in ``conv_box``."""
    pool_box_ = window_box(g, pool_nd, out_box)
    if pool_box_ is None:
        return None
    codes = conv_box_values(g, nd, state, live, rows, entry, out_box, channels_last=True,
                            in_cl=in_cl)[0]  # fmt: skip
    y0, y1, x0, x1 = pool_box_
    n_chan, bx = g.tensors[pool_nd.output].shape[0], (y1 - y0 + 1, x1 - x0 + 1)
    out = np.empty((rows.size, *bx, n_chan) if out_cl else (rows.size, n_chan, *bx), np.int8)
    counts, bbox = np.empty((rows.size, 2), np.int64), np.empty(4, np.int64)
    golden_out = state.values[pool_nd.output]
    golden_out = state.channels_last(pool_nd.output) if out_cl else golden_out
    where = np.array([*out_box, *pool_box_], np.int64)
    pool = np.array([*_pool_record(g, pool_nd), out_cl], np.int64)
    pool_cl_kernel(codes, state.channels_last(nd.output), golden_out, live[rows], where, pool,
                   out, counts, bbox)  # fmt: skip
    return entry_of(out, rows, pool_box_, counts, bbox, out_cl)
