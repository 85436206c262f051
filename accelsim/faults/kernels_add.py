"""ADD of a changed box in graph campaigns, in one pass and channels last: both inputs read with
their entries laid over, added through the node's table (``graph_kernels.add_table``: the
specification's result for every pair of codes) and compared with the fault-free output.

It replaces three passes over channels-first boxes and two temporaries (``read_overlay_kernel``
on each input, ``lookup_add``, ``compare_box_kernel``: 2.3 of 11.6 s of a one-thread ResNet-20
campaign, 40 faults x 1,000 images, inner loops as short as a row of 8). Channels last, a
pixel's channels are one contiguous run in every array, and the kernel works on runs; the
campaign keeps the entries of tensors that only convolutions and ADDs read channels last
(``graph_campaign``), so that most ADDs read and write that layout without a transpose. Held
equal to ``kernels_boxes_ref.add_box_ref``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from accelsim.faults.graph_boxes import Box, Entry, GraphGolden, entry_of, entry_slots, entry_where
from accelsim.functional.graph import Graph, Node, add_node_table

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


@njit(cache=True, nogil=True)
def add_box_kernel(goldens, img, ins, where, table, outs):
    """An ADD's outputs over the region of ``where`` for images img, channels last: input a
    golden_a[img[n]] with vals_a[slot_a[n]] laid over inside a's entry box (as
    ``read_overlay_kernel`` reads a region), input b likewise, out = table[(a + 128) * 256 + b
    + 128], and the comparison with the fault-free output that ``compare_box_kernel`` makes,
    its bounding box left as the plane of differing positions (any image, any channel).

    Records: ``goldens`` = (golden_a, golden_b, golden_out) (N, H, W, C); ``ins`` = (slot_a,
    vals_a (E, bh, bw, C), slot_b, vals_b); ``where`` = (a's entry box, b's entry box, the
    region), each (y0, y1, x0, x1); ``outs`` = (out (n, rh, rw, C), counts (n, 2): how many
    values differ and the sum of their absolute differences, plane (rh, rw) uint8 zeros).
    All C-contiguous."""
    golden_a, golden_b, golden_out = goldens
    slot_a, vals_a, slot_b, vals_b = ins
    out, counts, plane = outs
    ay0, ay1, ax0, ax1, by0, by1, bx0, bx1, ry0, ry1, rx0, rx1 = where
    n_img, w, n_chan = golden_out.shape[0], golden_out.shape[2], golden_out.shape[3]
    # flat rows: a pixel's channels are a slice of one row (1-D views: the inner loops
    # vectorise; 4-D indexing per value ran 4x slower)
    ga, gb, go = (golden_a.reshape(n_img, -1), golden_b.reshape(n_img, -1),
                  golden_out.reshape(n_img, -1))  # fmt: skip
    fa = vals_a.reshape(vals_a.shape[0], -1)
    fb = vals_b.reshape(vals_b.shape[0], -1)
    fo = out.reshape(out.shape[0], -1)
    aw, bw, rw = ax1 - ax0 + 1, bx1 - bx0 + 1, rx1 - rx0 + 1
    for n in range(img.size):
        src, sa, sb = img[n], slot_a[n], slot_b[n]
        k = 0
        moved = 0
        for y in range(ry0, ry1 + 1):
            for x in range(rx0, rx1 + 1):
                at = (y * w + x) * n_chan
                if sa >= 0 and ay0 <= y <= ay1 and ax0 <= x <= ax1:
                    a_at = ((y - ay0) * aw + x - ax0) * n_chan
                    ra = fa[sa, a_at : a_at + n_chan]
                else:
                    ra = ga[src, at : at + n_chan]
                if sb >= 0 and by0 <= y <= by1 and bx0 <= x <= bx1:
                    b_at = ((y - by0) * bw + x - bx0) * n_chan
                    rb = fb[sb, b_at : b_at + n_chan]
                else:
                    rb = gb[src, at : at + n_chan]
                o_at = ((y - ry0) * rw + x - rx0) * n_chan
                ro = fo[n, o_at : o_at + n_chan]
                rg = go[src, at : at + n_chan]
                for c in range(n_chan):
                    ro[c] = table[((np.int64(ra[c]) + 128) << 8) + np.int64(rb[c]) + 128]
                hit = np.int32(0)  # int32 lanes: numba widens int32 arithmetic to int64
                mv = np.int32(0)
                for c in range(n_chan):
                    d = np.int32(np.int32(ro[c]) - np.int32(rg[c]))
                    hit = np.int32(hit + np.int32(d != 0))
                    mv = np.int32(mv + np.int32(abs(d)))
                k += hit
                moved += mv
                plane[y - ry0, x - rx0] |= hit != 0
        counts[n, 0] = k
        counts[n, 1] = moved


def add_box(g: Graph, nd: Node, state: GraphGolden, live: I64, rows: I64,
            entries: list[Entry | None], box: Box, in_cl: tuple[bool, bool] = (False, False),
            out_cl: bool = False) -> Entry | None:  # fmt: skip
    """The entry of ADD ``nd``'s outputs in ``box`` (the union of its inputs' boxes) for images
    ``live[rows]``, its inputs the fault-free tensors with ``entries`` laid over. ``in_cl``:
    which entries hold their values channels last (rows, box, C); ``out_cl``: make the entry
    channels last (else (rows, C, box))."""
    vals = [
        np.zeros((1, 1, 1, 1), np.int8) if e is None
        else e[1] if cl else np.ascontiguousarray(e[1].transpose(0, 2, 3, 1))
        for e, cl in zip(entries, in_cl, strict=True)
    ]  # fmt: skip
    where = np.concatenate([entry_where(entries[0], box)[:4], entry_where(entries[1], box)])
    n_chan = state.values[nd.output].shape[1]
    out = np.empty((rows.size, box[1] - box[0] + 1, box[3] - box[2] + 1, n_chan), np.int8)
    counts = np.empty((rows.size, 2), np.int64)
    plane = np.zeros(out.shape[1:3], np.uint8)
    goldens = tuple(state.channels_last(t) for t in (*nd.inputs, nd.output))
    ins = (entry_slots(rows, entries[0]), vals[0], entry_slots(rows, entries[1]), vals[1])
    add_box_kernel(goldens, live[rows], ins, where, add_node_table(g, nd),
                   (out, counts, plane))  # fmt: skip
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if not ys.size:
        return None
    bbox = np.array([box[0] + ys[0], box[0] + ys[-1], box[2] + xs[0], box[2] + xs[-1]])
    if not out_cl:
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    return entry_of(out, rows, box, counts, bbox, out_cl)


def warm() -> None:
    """Load ``add_box_kernel`` from numba's cache in this process (as
    ``graph_golden.warm_box_kernels`` does the box kernels), so that forked workers share it."""
    one, i1 = np.zeros((1, 1, 1, 1), np.int8), np.zeros(1, np.int64)
    add_box_kernel((one, one, one), i1, (i1, one, i1, one), np.zeros(12, np.int64),
                   np.zeros(65536, np.int8), (one.copy(), np.zeros((1, 2), np.int64),
                                              np.zeros((1, 1), np.uint8)))  # fmt: skip
