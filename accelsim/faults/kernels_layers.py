"""numba kernels that carry sparse changes of a convolution's or dense layer's input to its
output, per (fault, image) pair, and the class bound that settles pairs early.

A batch of P "pairs" (one fault on one image) is held in CSR form: pair p changed the layer
input at flat positions ``pos[ptr[p]:ptr[p + 1]]`` to ``val[...]``; ``img[p]`` says which golden
image it departs from. The kernels take their arrays as a few records (tuples): ``pairs`` =
(img, ptr, pos, val), ``golden`` = (acc, slo, shi, yout), ``layer`` = (wt, rq, lo, post, rlo,
rhi), tables, scratch buffers and ``out`` = (out_ptr, out_pos, out_val, progress). Each writes
the changed outputs of every pair in the same form, computing only what the changed inputs
reach and leaving out outputs equal to the golden ones:

- convolution: accumulator deltas ``d * w`` over the receptive fields of the changed inputs,
  then requantisation (and the protection's post-operation) of the outputs whose move leaves
  their rounding slack; with the max-pool after it in the same kernel, the pool's changes;
- dense: deltas ``d * w[:, j]`` for each changed input j, then the outputs that moved; where a
  class bound holds, pairs it proves harmless are written with no changes.

Kernels write into ``out`` and never allocate: when ``out_pos`` is full they stop before the
pair that does not fit and record in ``progress`` (pairs done, entries used) where to go on; the
wrapper (``sparse.py``) grows the buffers and calls again. The numpy reference is
``propagate.dense_step``: the whole protected layer on the overlaid input. Every jitted helper
they call is defined in this file (numba's cache sees one file).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# The requantisation steps of ``functional.kernels`` (``scale_by_multiplier``, ``requant_one``),
# copied here so that numba's cache, which sees only this file, stays valid when they change
# (tests/unit/test_numba_rules.py holds every copy equal to the original).
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


@njit(cache=True, inline="always")
def _scale_by_multiplier(x, m, r, mask, half):
    x32 = np.int32(min(max(x, _INT32_MIN), _INT32_MAX))
    ab = np.int64(x32) * m
    nudged = ab + ((1 << 30) if ab >= 0 else (1 - (1 << 30)))
    high = (nudged + ((nudged >> 63) & 0x7FFFFFFF)) >> 31
    threshold = half + ((high >> 63) & 1)
    return (high >> r) + np.int64((high & mask) > threshold)


@njit(cache=True)
def _requant_one(acc, multiplier, shift, lo):
    left, r = max(shift, 0), max(-shift, 0)
    mask = (np.int64(1) << r) - 1
    y = _scale_by_multiplier(np.int64(acc) << left, np.int64(multiplier), r, mask, mask >> 1)
    return min(max(y, lo), 127)


# What follows requantisation for an output element (see protection/protected.py): nothing,
# split (2 x LCU of two halves), ranger's clamp, zeroing outside the range, or split with its
# halves clamped at 63.
POST_PLAIN, POST_SPLIT, POST_CLAMP, POST_ZERO, POST_SPLIT_CLAMPED = 0, 1, 2, 3, 4


@njit(cache=True)
def _post_value(a, code, b, m, sh, left, right, mask, half, lo, rlo, rhi):
    """An output from its accumulator a without bias, as ``protected_layer`` gives it: plain
    requantisation, or split (2 x LCU of two halves), or ranger clamp, or zeroing; code is the
    output's ``POST_*``, the rest its channel's row of ``requant_table``. Scalars only: array
    arguments cost reference counting on every call from a kernel's innermost loop (1.4x on
    the convolution kernel)."""
    if code == POST_PLAIN:  # TFLite's steps with the channel's shifts and masks precomputed
        y = _scale_by_multiplier((a + b) << left, m, right, mask, half)
        return min(max(y, lo), 127)
    if code == POST_SPLIT:
        h = _requant_one(a + b, m, sh - 1, lo)
        return 2 * (h & 0xBF)
    if code == POST_SPLIT_CLAMPED:
        h = min(_requant_one(a + b, m, sh - 1, lo), 63)
        return 2 * (h & 0xBF)
    y = _requant_one(a + b, m, sh, lo)
    if code == POST_CLAMP:
        return min(max(y, rlo), rhi)
    if code == POST_ZERO and (y < rlo or y > rhi):
        return 0
    return y


def requant_table(bias, multiplier, shift):
    """(O, 7) int64 per output channel: bias, multiplier, shift, then TFLite's left shift, right
    shift, rounding mask and half mask (what ``requant_one`` derives from the shift)."""
    shift = np.asarray(shift, np.int64)
    right = np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    cols = (bias, multiplier, shift, np.maximum(shift, 0), right, mask, mask >> 1)
    return np.ascontiguousarray(np.stack([np.asarray(c, np.int64) for c in cols], axis=1))


@njit(cache=True, nogil=True)
def conv_changes_kernel(pairs, xin, golden, layer, tables, pool, scratch, out):
    """Records: ``pairs``, ``golden``, ``layer``, ``out`` as the module says; ``tables`` =
    (chan_of, pix_of, map_ptr, map_sp, map_ij, ohw); ``pool`` = (pool_ptr, pool_out, pool_win,
    pool_acc, pool_ch, pool_y); ``scratch`` = (accd, mark, touched, sel, over, is_over, is_pout,
    ptouched, cpos, wbest).

    slo, shi: ``rounding_slack_kernel`` of acc, channels-last; wt (C, KH * KW, O) int8.
    Tables instead of index arithmetic (64-bit divisions by the stride dominated): input q is
    pixel pix_of[q] of channel chan_of[q]; pixel y feeds output pixels
    map_sp[map_ptr[y]:map_ptr[y + 1]] through kernel taps map_ij[...]. Scratch accd
    (OH * OW * O) int32 zeros, mark (OH * OW) uint8 zeros, touched (OH * OW) int64, sel (O)
    int64, over and cpos (O * OH * OW) int64, is_over (O * OH * OW) uint8 zeros.

    With a max-pool after the convolution (pool_win non-empty: ``_pool_tables`` of the pool,
    pool_acc and pool_ch where each window's inputs sit in accd and their channel, pool_y its
    golden output) the kernel writes the pool's changed outputs instead, so that the
    convolution's many changed outputs never leave the cache, and slo, shi are the *pooled*
    slacks (``golden.pooled_bounds``): moves that may change an output but cannot move any
    window's maximum (a drop of an output that holds no window's maximum, a rise that stays at
    or below the smallest maximum of its windows). Only outputs past them are requantised: a
    window where one rises above the maximum takes the largest such value; a window whose
    maximum dropped is re-reduced exactly. Scratch sized like the pool's output: is_pout uint8,
    ptouched int64, wbest int64 filled with -129."""
    img, ptr, pos, val = pairs
    acc, slo, shi, yout = golden
    wt, rq, lo, post, rlo, rhi = layer
    chan_of, pix_of, map_ptr, map_sp, map_ij, ohw = tables
    pool_ptr, pool_out, pool_win, pool_acc, pool_ch, pool_y = pool
    accd, mark, touched, sel, over, is_over, is_pout, ptouched, cpos, wbest = scratch
    out_ptr, out_pos, out_val, progress = out
    n_out = wt.shape[2]
    pooled = pool_win.shape[0] > 0
    window = pool_win.shape[1]
    used = progress[1]
    for p in range(progress[0], img.size):
        n = img[p]
        acc_n, yout_n, slo_n, shi_n = acc[n], yout[n], slo[n], shi[n]
        # the accumulator moves over the touched output pixels (one changed input, a fault's
        # first convolution: each pixel it reaches once, no marks needed)
        single = ptr[p + 1] - ptr[p] == 1
        nt = 0
        for e in range(ptr[p], ptr[p + 1]):
            q = pos[e]
            d = np.int32(val[e] - np.int64(xin[n, q]))
            if d == 0:
                continue
            c = chan_of[q]
            yx = pix_of[q]
            for m in range(map_ptr[yx], map_ptr[yx + 1]):
                sp = map_sp[m]
                if single:
                    touched[nt] = sp
                    nt += 1
                elif mark[sp] == 0:
                    mark[sp] = 1
                    touched[nt] = sp
                    nt += 1
                row = accd[sp * n_out : (sp + 1) * n_out]
                w_row = wt[c, map_ij[m]]
                for o in range(n_out):  # contiguous views: vectorises
                    row[o] += d * np.int32(w_row[o])
        nc = 0  # requantised convolution outputs: cpos[:nc], values over[...]
        npt = 0  # pool outputs whose maximum may move: ptouched[:npt]
        pool_n = pool_y[n] if pooled else yout_n
        for t in range(nt):
            sp = touched[t]
            mark[sp] = 0
            row = accd[sp * n_out : (sp + 1) * n_out]
            lo_row = slo_n[sp * n_out : (sp + 1) * n_out]
            hi_row = shi_n[sp * n_out : (sp + 1) * n_out]
            # branch-free: the channels whose move leaves the slack (a few), then their new
            # values; a branch per output mispredicted on most changed ones
            n_sel = 0
            for o in range(n_out):
                sel[n_sel] = o
                n_sel += (row[o] < lo_row[o]) | (row[o] > hi_row[o])
            for i in range(n_sel):
                o = sel[i]
                k = o * ohw + sp
                v = _post_value(
                    np.int64(acc_n[k]) + row[o], post[k], rq[o, 0], rq[o, 1], rq[o, 2], rq[o, 3],
                    rq[o, 4], rq[o, 5], rq[o, 6], lo, rlo, rhi,
                )  # fmt: skip
                g = np.int64(yout_n[k])
                cpos[nc] = k
                over[k] = v
                if not pooled:
                    nc += v != g
                    continue
                nc += 1
                is_over[k] = 1
                for m in range(pool_ptr[k], pool_ptr[k + 1]):
                    po = pool_out[m]
                    top = np.int64(pool_n[po])
                    rise = v > top
                    drop = (g == top) & (v < top)
                    wbest[po] = max(wbest[po], v if rise else np.int64(-129))
                    moves = np.uint8(rise | drop) & (is_pout[po] ^ 1)
                    ptouched[npt] = po
                    npt += moves
                    is_pout[po] |= moves
        if not pooled:
            for t in range(nt):
                accd[touched[t] * n_out : (touched[t] + 1) * n_out] = 0
            if used + nc > out_pos.size:
                progress[0] = p
                progress[1] = used
                return
            for t in range(nc):
                out_pos[used] = cpos[t]
                out_val[used] = over[cpos[t]]
                used += 1
            out_ptr[p + 1] = used
            continue
        # the windows marked above: a rise above the maximum gives the new maximum; a dropped
        # maximum with no rise needs the window re-reduced with every output's exact value
        full = used + npt > out_pos.size
        for t in range(npt):
            po = ptouched[t]
            top = np.int64(pool_n[po])
            best = wbest[po]
            if not full and best <= top:
                best = np.int64(-129)
                for i in range(window):
                    q = pool_win[po, i]
                    if is_over[q]:
                        v = over[q]
                    else:  # tables, not q // ohw: 25 divisions per pair cost 10 %
                        o = pool_ch[po]
                        da = accd[pool_acc[po, i]]
                        v = np.int64(yout_n[q])
                        if da != 0:
                            v = _post_value(
                                np.int64(acc_n[q]) + da, post[q], rq[o, 0], rq[o, 1], rq[o, 2],
                                rq[o, 3], rq[o, 4], rq[o, 5], rq[o, 6], lo, rlo, rhi,
                            )  # fmt: skip
                    best = max(best, v)
            is_pout[po] = 0
            wbest[po] = -129
            if full:
                continue
            out_pos[used] = po
            out_val[used] = best
            used += best != top
        for t in range(nc):
            is_over[cpos[t]] = 0
        for t in range(nt):
            accd[touched[t] * n_out : (touched[t] + 1) * n_out] = 0
        if full:
            progress[0] = p
            progress[1] = used
            return
        out_ptr[p + 1] = used
    progress[0] = img.size
    progress[1] = used


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})  # float sums vectorise
def dense_changes_kernel(pairs, xin, golden, layer, bound, scratch, out):
    """Records: ``pairs``, ``golden``, ``layer``, ``out`` as the module says; ``bound`` = (lin,
    field, cap, top, cap_top, blind, logits, classes); ``scratch`` = (accd, sel, bacc, bfs).

    slo, shi: ``rounding_slack_kernel`` of acc; wt (I, O) int8; scratch accd (O,) int32 zeros,
    sel (O,) int64. Where the layer's output has a ``bounds.LayerBound`` (lin non-empty; logits
    and classes golden) a pair whose changes provably keep its class is written with none, so
    that it stops here without a pass of ``cannot_change_kernel``; scratch bacc, bfs (K,).
    Most such pairs are settled before any requantisation, by the class-blind bound with each
    output's move bounded by M |dacc| + rounding (``bounds.requant_gain``): blind (3, O) holds
    M top[:, 0], rounding top[:, 0] and top[:, 1], so that the bound is a sum over the outputs
    past their slack, one vectorised pass (reassociated float sums: the error is far below the
    bound's 1e-6); blind empty where the layer's outputs may jump (split, zeroing)."""
    img, ptr, pos, val = pairs
    acc, slo, shi, yout = golden
    wt, rq, lo, post, rlo, rhi = layer
    lin, _, _, _, cap_top, blind, logits, classes = bound
    accd, sel, bacc, bfs = scratch
    out_ptr, out_pos, out_val, progress = out
    n_out = wt.shape[1]
    bounded = lin.shape[0] > 0
    bounded_blind = blind.shape[1] > 0
    m_top, r_top, f_top = blind[0], blind[1], blind[2]
    used = progress[1]
    for p in range(progress[0], img.size):
        if used + n_out > out_pos.size:
            progress[0] = p
            progress[1] = used
            return
        n = img[p]
        for e in range(ptr[p], ptr[p + 1]):
            j = pos[e]
            d = np.int32(val[e] - np.int64(xin[n, j]))
            if d != 0:
                w_row = wt[j]
                for o in range(n_out):
                    accd[o] += d * np.int32(w_row[o])
        slo_n, shi_n = slo[n], shi[n]
        start = used
        settled = False
        if bounded_blind:  # the class-blind bound on the moves of the outputs past their slack
            lg = logits[n]
            c = classes[n]
            other = -np.inf
            for k in range(lg.size):
                if k != c:
                    other = max(other, np.float64(lg[k]))
            s_lin, s_field = 0.0, 0.0
            for o in range(n_out):
                a = accd[o]
                past = np.float64((a < slo_n[o]) | (a > shi_n[o]))
                s_lin += past * (m_top[o] * abs(np.float64(a)) + r_top[o])
                s_field += past * f_top[o]
            move = s_lin + min(s_field, cap_top) + 1e-6
            settled = other + move < lg[c] - move  # the class holds whatever the new values
        # branch-free, as in the convolution kernel: the outputs that leave their slack, then
        # their new values
        n_sel = 0
        if not settled:
            for o in range(n_out):
                sel[n_sel] = o
                n_sel += (accd[o] < slo_n[o]) | (accd[o] > shi_n[o])
        for i in range(n_sel):
            o = sel[i]
            v = _post_value(
                np.int64(acc[n, o]) + accd[o], post[o], rq[o, 0], rq[o, 1], rq[o, 2], rq[o, 3],
                rq[o, 4], rq[o, 5], rq[o, 6], lo, rlo, rhi,
            )  # fmt: skip
            out_pos[used] = o
            out_val[used] = v
            used += v != yout[n, o]
        accd[:] = 0
        if (
            bounded
            and used > start
            and _keeps_class(n, out_pos[start:used], out_val[start:used], yout, bound, bacc, bfs)
        ):
            used = start
        out_ptr[p + 1] = used
    progress[0] = img.size
    progress[1] = used


@njit(cache=True, nogil=True)
def _keeps_class(n, pos, val, golden, bound, acc, fs):
    """Whether changes pos -> val of image n's layer output (golden) provably keep its class
    (``bounds``; ``bound`` as ``dense_changes_kernel``'s); scratch acc, fs (K,). First the
    class-blind bound (``LayerBound.top``), which settles most pairs, then the bound per
    class."""
    lin, field, cap, top, cap_top, _, logits, classes = bound
    n_cls = lin.shape[1]
    c = classes[n]
    lg = logits[n]
    other = -np.inf
    for k in range(n_cls):
        if k != c:
            other = max(other, np.float64(lg[k]))
    s_lin, s_field = 0.0, 0.0
    for e in range(pos.size):
        q = pos[e]
        s_lin += abs(np.float64(val[e]) - np.float64(golden[n, q])) * top[q, 0]
        s_field += top[q, 1]
    move = s_lin + min(s_field, cap_top) + 1e-6
    if other + move < lg[c] - move:
        return True
    for k in range(n_cls):
        acc[k] = 0.0
        fs[k] = 0.0
    for e in range(pos.size):
        q = pos[e]
        d = abs(np.float64(val[e]) - np.float64(golden[n, q]))
        for k in range(n_cls):
            acc[k] += d * lin[q, k]
            fs[k] += field[q, k]
    top_c = lg[c] - (acc[c] + min(fs[c], cap[c]) + 1e-6)
    for k in range(n_cls):
        if k != c and lg[k] + acc[k] + min(fs[k], cap[k]) + 1e-6 >= top_c:
            return False
    return True


@njit(cache=True, nogil=True)
def cannot_change_kernel(pairs, golden, bound, scratch, out):
    """out[p] = 1 when pair p's changes provably keep the golden class; ``bound`` as
    ``dense_changes_kernel``'s, scratch (acc, fs), each (K,)."""
    img, ptr, pos, val = pairs
    acc, fs = scratch
    for p in range(img.size):
        a, b = ptr[p], ptr[p + 1]
        out[p] = _keeps_class(img[p], pos[a:b], val[a:b], golden, bound, acc, fs)
