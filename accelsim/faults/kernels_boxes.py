"""numba kernels of the graph campaign's changed boxes, and their numpy references.

A graph fault's change travels as an *entry*: the rows (images) whose tensor differs from the
fault-free one and their values inside a box of the feature map (``graph_campaign``). These
kernels read a region of a tensor for a set of images, the fault-free codes with an entry's
values laid over, without first copying the fault-free region out with fancy indexing:

- ``read_overlay_kernel``: the region itself (the inputs of ADD, CONCATENATION, depthwise
  convolutions and pools);
- ``gather_columns_kernel``: a CONV_2D's im2col columns over an output box, straight from the
  int8 tensor with the node's zero-point padding (one pass instead of read, overlay, pad,
  transpose and gather);
- ``compare_box_kernel``: which images of a node's recomputed output box differ from the
  fault-free output, and the bounding box of what differs.

Records (int64 arrays) carry the geometry: ``where`` = (entry box y0, y1, x0, x1, region or
output box y0, y1, x0, x1), ``conv`` = (kh, kw, stride, top, left, zero point).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


@njit(cache=True, nogil=True)
def read_overlay_kernel(golden, img, slot, vals, where, out):
    """out[n] = golden[img[n]] over the region, with vals[slot[n]] laid over inside the entry
    box where slot[n] >= 0. golden (N, C, H, W); vals (E, C, bh, bw); out (n, C, rh, rw)."""
    by0, by1, bx0, bx1, ry0, ry1, rx0, rx1 = where
    n_chan = golden.shape[1]
    for n in range(img.size):
        src = img[n]
        s = slot[n]
        for c in range(n_chan):
            for y in range(ry0, ry1 + 1):
                over_row = s >= 0 and by0 <= y <= by1
                for x in range(rx0, rx1 + 1):
                    if over_row and bx0 <= x <= bx1:
                        out[n, c, y - ry0, x - rx0] = vals[s, c, y - by0, x - bx0]
                    else:
                        out[n, c, y - ry0, x - rx0] = golden[src, c, y, x]


@njit(cache=True, nogil=True)
def gather_columns_kernel(golden, img, slot, vals, where, conv, cols):
    """im2col of a CONV_2D over the output box of ``where``: row (n, oy, ox), column
    (i, j, c), the input read as in ``read_overlay_kernel`` and the zero point outside the map.
    Channels last: golden (N, H, W, C) and vals (E, bh, bw, C); cols (n * oh * ow, kh * kw * C)
    float32. Each image's padded input region is first laid out in a float32 scratch, so that
    every copy is a run of C contiguous values."""
    by0, by1, bx0, bx1, oy0, oy1, ox0, ox1 = where
    kh, kw, stride, top, left, zp = conv
    h, w, n_chan = golden.shape[1], golden.shape[2], golden.shape[3]
    oh, ow = oy1 - oy0 + 1, ox1 - ox0 + 1
    ph, pw = (oh - 1) * stride + kh, (ow - 1) * stride + kw
    ya, xa = oy0 * stride - top, ox0 * stride - left
    buf = np.empty((ph, pw, n_chan), np.float32)
    for n in range(img.size):
        src = img[n]
        s = slot[n]
        for y in range(ph):
            my = ya + y
            for x in range(pw):
                mx = xa + x
                if my < 0 or my >= h or mx < 0 or mx >= w:
                    for c in range(n_chan):
                        buf[y, x, c] = zp
                elif s >= 0 and by0 <= my <= by1 and bx0 <= mx <= bx1:
                    v = vals[s, my - by0, mx - bx0]
                    for c in range(n_chan):
                        buf[y, x, c] = v[c]
                else:
                    g = golden[src, my, mx]
                    for c in range(n_chan):
                        buf[y, x, c] = g[c]
        for oy in range(oh):
            for ox in range(ow):
                row = (n * oh + oy) * ow + ox
                for i in range(kh):
                    for j in range(kw):
                        base = (i * kw + j) * n_chan
                        b = buf[oy * stride + i, ox * stride + j]
                        for c in range(n_chan):
                            cols[row, base + c] = b[c]


@njit(cache=True, nogil=True)
def _bbox_of(total, oy0, ox0, bbox):
    """bbox = (y0, y1, x0, x1) of the nonzero cells of ``total`` (bh, bw), offset by the box's
    origin; y0 > y1 when there are none."""
    bh, bw = total.shape
    bbox[0], bbox[1], bbox[2], bbox[3] = oy0 + bh, oy0 - 1, ox0 + bw, ox0 - 1
    for py in range(bh):
        for px in range(bw):
            if total[py, px]:
                bbox[0] = min(bbox[0], oy0 + py)
                bbox[1] = max(bbox[1], oy0 + py)
                bbox[2] = min(bbox[2], ox0 + px)
                bbox[3] = max(bbox[3], ox0 + px)


@njit(cache=True, nogil=True)
def compare_box_kernel(out, golden, img, where, counts, bbox):
    """counts[n] = (how many values of out[n] (C, bh, bw), the output box of ``where``, differ
    from golden[img[n]] there, the sum of their absolute differences); bbox = (y0, y1, x0, x1)
    of the differing positions over all images, in map coordinates (y0 > y1 when nothing
    differs). The counts travel with the changed values to the next convolution, which chooses
    its path by them."""
    oy0, oy1, ox0, ox1 = where[4], where[5], where[6], where[7]
    bh, bw = oy1 - oy0 + 1, ox1 - ox0 + 1
    n_chan = out.shape[1]
    plane = np.zeros((bh, bw), np.uint8)
    total = np.zeros((bh, bw), np.uint8)
    for n in range(img.size):
        src = img[n]
        plane[:] = 0
        k = 0
        a = 0
        for c in range(n_chan):
            for y in range(bh):
                o = out[n, c, y]
                g = golden[src, c, oy0 + y]
                p = plane[y]
                k32 = np.int32(0)  # int32 lanes: numba widens int32 arithmetic to int64
                a32 = np.int32(0)
                for x in range(bw):
                    d = np.int32(np.int32(o[x]) - np.int32(g[ox0 + x]))
                    p[x] |= d != 0
                    k32 = np.int32(k32 + np.int32(d != 0))
                    a32 = np.int32(a32 + np.int32(abs(d)))
                k += k32
                a += a32
        for y in range(bh):
            for x in range(bw):
                total[y, x] |= plane[y, x]
        counts[n, 0] = k
        counts[n, 1] = a
    _bbox_of(total, oy0, ox0, bbox)


@njit(cache=True, nogil=True)
def count_changes_kernel(golden, img, slot, vals, where, counts):
    """counts[n] = (how many values of vals[slot[n]] (the entry box) differ from golden[img[n]]
    there, the sum of their absolute differences); (0, 0) where slot[n] < 0."""
    by0, by1, bx0, bx1 = where[0], where[1], where[2], where[3]
    n_chan = golden.shape[1]
    for n in range(img.size):
        s = slot[n]
        k = 0
        a = 0
        if s >= 0:
            src = img[n]
            for c in range(n_chan):
                for y in range(by0, by1 + 1):
                    v = vals[s, c, y - by0]
                    g = golden[src, c, y]
                    k32 = np.int32(0)
                    a32 = np.int32(0)
                    for x in range(bx0, bx1 + 1):
                        d = np.int32(np.int32(v[x - bx0]) - np.int32(g[x]))
                        k32 = np.int32(k32 + np.int32(d != 0))
                        a32 = np.int32(a32 + np.int32(abs(d)))
                    k += k32
                    a += a32
        counts[n, 0] = k
        counts[n, 1] = a


NO_ACC = np.zeros((0, 0, 0, 0), np.int32)  # sparse_conv_kernel's acc when none is kept


@njit(cache=True, nogil=True)
def _taps(lo, hi, k, pad, stride, o_lo, o_hi):
    """For input coordinates lo..hi: taps[v - lo, i] = the output coordinate (relative to
    o_lo) that tap i of input v feeds, or -1 when it feeds none in o_lo..o_hi."""
    taps = np.full((hi - lo + 1, k), -1, np.int64)
    for v in range(lo, hi + 1):
        for i in range(k):
            t = v + pad - i
            if t >= 0 and t % stride == 0 and o_lo <= t // stride <= o_hi:
                taps[v - lo, i] = t // stride - o_lo
    return taps


# ``functional.kernels.scale_by_multiplier``, copied here so that numba's cache, which sees only
# this file, stays valid when it changes (tests/unit/test_numba_rules.py holds them equal).
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


@njit(cache=True, inline="always")
def _scale_by_multiplier(x, m, r, mask, half):
    x32 = np.int32(min(max(x, _INT32_MIN), _INT32_MAX))
    ab = np.int64(x32) * m
    nudged = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
    high = (nudged + ((nudged >> 63) & 0x7FFFFFFF)) >> 31
    threshold = half + ((high >> 63) & 1)
    return (high >> r) + np.int64((high & mask) > threshold)


@njit(cache=True, inline="always")
def _requant_acc(a, o, bias, mult, lshift, rshift, scale, masks, fp32, zp, lo, hi):
    """Channel o's code of raw accumulator a (no bias): XNNPACK's fp32 scale or TFLite's
    fixed point, the zero point, the clamp."""
    if fp32:
        v = np.int64(np.rint(np.float32(a + bias[o]) * scale[o])) + zp
    else:
        m = masks[o]
        v = _scale_by_multiplier((a + bias[o]) << lshift[o], mult[o], rshift[o], m, m >> 1) + zp
    return min(max(v, lo), hi)


@njit(cache=True, inline="always")
def _tally(yo, g, hit, mv):
    """(hit, mv) after output code yo against fault-free g: one more changed output, |yo - g|
    more moved, on int32 lanes. The two loops that call it stay apart: merged into one, LLVM no
    longer vectorises the requantisation for AVX-512 (compiled for skylake-avx512:
    ``vpmullq`` 2 -> 0)."""
    d = np.int32(yo - np.int32(g))
    return np.int32(hit + np.int32(d != 0)), np.int32(mv + np.int32(abs(d)))


@njit(cache=True, inline="always")
def _add_taps(delta, w_t, ty_row, tx_row, c, d):
    """delta[r, k] += d * w_t[i, j, c] for every tap (i, j) of one changed input of channel c
    (at the row / column whose taps are ty_row / tx_row) that feeds an output of the box."""
    dd = delta.dtype.type(d)
    n_out = w_t.shape[3]
    for i in range(w_t.shape[0]):
        r = ty_row[i]
        if r < 0:
            continue
        for j in range(w_t.shape[1]):
            k = tx_row[j]
            if k < 0:
                continue
            row = delta[r, k]
            wv = w_t[i, j, c]
            for o in range(n_out):
                row[o] += dd * delta.dtype.type(wv[o])


# fastmath contraction only: a product and a sum fused into one FMA round once instead of
# twice, which changes nothing while every value is an integer below 2^24 in magnitude (the
# float32 sums' precondition; the int32 sums and the requantisation have no a * b + c in
# floating point): test_numba_rules holds it to that.
@njit(cache=True, nogil=True, fastmath={"contract"})
def sparse_conv_kernel(fault_free, img, slot, vals, where, conv, w_t, delta, rq, q, outs):
    """A CONV_2D's outputs over the output box of ``where`` from the changed inputs alone: the
    fault-free raw accumulators plus, for every input of vals[slot[n]] that differs from
    golden[img[n]], (new - old) * weight; then the node's requantisation, and the comparison
    with the fault-free outputs that ``compare_box_kernel`` makes.

    Records: ``fault_free`` = (golden (N, C, H, W) int8 input, golden_acc (N, OH, OW, O) int32
    raw sums of the int8 codes (zero-point padding, no bias), golden_out (N, OH, OW, O) int8
    output); ``rq`` = (bias, multiplier, left shift, right shift) int64 and scale float32 per
    channel, then the (O, 257) ``code_check.code_thresholds``; ``q`` = (XNNPACK's fp32
    requantisation or not, output zero point, clamp lo, clamp hi[, check]): with check
    nonzero, an output whose accumulator stays inside its fault-free code's thresholds keeps
    that code without a requantisation (``code_check.CODE_CHECK``; else the table may be
    empty); ``conv`` = (kh, kw, stride, top, left, channels last[, input channels last]),
    with the last nonzero golden (N, H, W, C) and vals (E, bh, bw, C); ``outs`` = (out (n, O,
    bh, bw) int8, or (n, bh, bw, O) with channels last nonzero, counts (n, 2), bbox (4,)) as in
    ``compare_box_kernel``, and acc (n, bh, bw, O) int32, where the raw accumulators are kept
    unless it is empty (``NO_ACC``; a split recomputes its halves from them). w_t (kh, kw, C,
    O), int8 or delta's dtype (int8 when the wider copy would not stay in a core's L2); delta
    (bh, bw, O) scratch: the changes are summed in it, int32, or float32 (faster) where the
    caller has shown every partial sum below 2^24 in magnitude (the sum of |new - old| times
    the largest |weight|), so that float32 holds it exactly."""
    golden, golden_acc, golden_out = fault_free
    out, counts, bbox, acc = outs
    keep = acc.shape[0] > 0
    by0, by1, bx0, bx1, oy0, oy1, ox0, ox1 = where
    kh, kw, stride, top, left = conv[0], conv[1], conv[2], conv[3], conv[4]
    channels_last = conv[5] != 0
    in_cl = conv.size > 6 and conv[6] != 0
    bias, mult, lshift, rshift, scale, codes = rq
    fp32, zp, lo, hi = q[0], q[1], q[2], q[3]
    check = q.size > 4 and q[4] != 0
    n_chan, n_out = w_t.shape[2], w_t.shape[3]
    bh, bw = oy1 - oy0 + 1, ox1 - ox0 + 1
    ty = _taps(by0, by1, kh, top, stride, oy0, oy1)
    tx = _taps(bx0, bx1, kw, left, stride, ox0, ox1)
    ys = np.empty((bh, bw, n_out), np.int8)
    total = np.zeros((bh, bw), np.uint8)
    masks = (np.int64(1) << rshift) - 1
    # a run's changed inputs listed branch-free, then summed: a branch per input mispredicted
    # at ResNet-20's 5-25 % changed (the sparse kernel's replayed calls 12 % faster)
    ch = np.empty(max(n_chan, bx1 - bx0 + 1), np.int64)
    dv = np.empty(ch.size, np.int32)
    for n in range(img.size):
        src = img[n]
        s = slot[n]
        delta[:] = 0
        if s >= 0 and in_cl:  # vals (E, bh, bw, C), golden (N, H, W, C): a pixel's channels
            for y in range(by0, by1 + 1):
                for x in range(bx0, bx1 + 1):
                    v_px = vals[s, y - by0, x - bx0]
                    g_px = golden[src, y, x]
                    m = 0
                    for c in range(n_chan):
                        d = np.int32(v_px[c]) - np.int32(g_px[c])
                        ch[m], dv[m] = c, d
                        m += d != 0
                    for e in range(m):
                        _add_taps(delta, w_t, ty[y - by0], tx[x - bx0], ch[e], dv[e])
        elif s >= 0:
            for c in range(n_chan):
                for y in range(by0, by1 + 1):
                    v_row = vals[s, c, y - by0]
                    g_row = golden[src, c, y]
                    m = 0
                    for x in range(bx0, bx1 + 1):
                        d = np.int32(v_row[x - bx0]) - np.int32(g_row[x])
                        ch[m], dv[m] = x - bx0, d
                        m += d != 0
                    for e in range(m):
                        _add_taps(delta, w_t, ty[y - by0], tx[ch[e]], c, dv[e])
        n_diff = 0
        moved = 0
        for py in range(bh):
            for px in range(bw):
                g_acc = golden_acc[src, oy0 + py, ox0 + px]
                g_out = golden_out[src, oy0 + py, ox0 + px]
                dl = delta[py, px]
                yv = ys[py, px]
                hit = np.int32(0)  # the comparison fused in, on int32 lanes
                mv = np.int32(0)
                if check:  # one output at a time; most keep their code and skip the rest
                    for o in range(n_out):
                        a = np.int64(g_acc[o]) + np.int64(dl[o])
                        at = np.int64(g_out[o]) + 128
                        if codes[o, at] <= a < codes[o, at + 1]:
                            yv[o] = g_out[o]
                            continue
                        yo = np.int32(_requant_acc(a, o, bias, mult, lshift, rshift, scale,
                                                   masks, fp32, zp, lo, hi))  # fmt: skip
                        yv[o] = yo
                        hit, mv = _tally(yo, g_out[o], hit, mv)
                else:  # vectorised where the host has AVX-512
                    for o in range(n_out):  # the loop-invariant branch is unswitched by LLVM
                        a = np.int64(g_acc[o]) + np.int64(dl[o])
                        yo = np.int32(_requant_acc(a, o, bias, mult, lshift, rshift, scale,
                                                   masks, fp32, zp, lo, hi))  # fmt: skip
                        yv[o] = yo
                        hit, mv = _tally(yo, g_out[o], hit, mv)
                n_diff += hit
                moved += mv
                total[py, px] |= hit != 0
                if keep:
                    kept = acc[n, py, px]
                    for o in range(n_out):
                        kept[o] = g_acc[o] + np.int32(dl[o])
        counts[n, 0] = n_diff
        counts[n, 1] = moved
        if channels_last:  # out (n, bh, bw, O): a pool reads it next (kernels_pool)
            out_n = out[n]
            for py in range(bh):
                for px in range(bw):
                    for o in range(n_out):
                        out_n[py, px, o] = ys[py, px, o]
        else:
            for o in range(n_out):
                for py in range(bh):
                    for px in range(bw):
                        out[n, o, py, px] = ys[py, px, o]
    _bbox_of(total, oy0, ox0, bbox)
