"""numba kernels that carry sparse changes of one layer's input to its output, per (fault, image).

A batch of P "pairs" (one fault on one image) is held in CSR form: pair p changed the layer
input at flat positions ``pos[ptr[p]:ptr[p + 1]]`` to ``val[...]``; ``img[p]`` says which golden
image it departs from. Each kernel writes the changed outputs of every pair in the same form,
computing only what the changed inputs reach and leaving out outputs equal to the golden ones:

- convolution: accumulator deltas ``d * w`` over the receptive fields of the changed inputs,
  then requantisation (and the protection's post-operation) of the outputs whose move leaves
  their rounding slack; with the max-pool after it in the same kernel, the pool's changes;
- dense: deltas ``d * w[:, j]`` for each changed input j, then the outputs that moved; where a
  class bound holds, pairs it proves harmless are written with no changes;
- max-pool: the windows holding a changed input, re-reduced with the changes laid over;
- the classifier: argmax of the golden logits with the changes laid over.

Kernels write into ``out_*`` and never allocate: when ``out_pos`` is full they stop before the
pair that does not fit and record in ``progress`` (pairs done, entries used) where to go on; the
wrapper (``propagate.py``) grows the buffers and calls again. The numpy reference is
``propagate.dense_step``: the whole protected layer on the overlaid input.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.functional.kernels import requant_one, scale_by_multiplier

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
        y = scale_by_multiplier((a + b) << left, m, right, mask, half)
        return min(max(y, lo), 127)
    if code == POST_SPLIT:
        h = requant_one(a + b, m, sh - 1, lo)
        return 2 * (h & 0xBF)
    if code == POST_SPLIT_CLAMPED:
        h = min(requant_one(a + b, m, sh - 1, lo), 63)
        return 2 * (h & 0xBF)
    y = requant_one(a + b, m, sh, lo)
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


# Slacks are capped here and stored as int16 (half the memory and cache of int32): still
# exact, since a move beyond the cap only costs a requantisation that finds the output
# unchanged; one change moves an accumulator by at most 255 * 127 < SLACK_LIMIT.
SLACK_LIMIT = (1 << 15) - 1


NO_CEILING = -(1 << 15)


@njit(cache=True, nogil=True)
def pooled_bounds_kernel(y, top, win, monotone, ceiling, free):
    """``golden.pooled_bounds`` per image: y (N, size) a convolution's output, top (N, P) the
    max-pool's, win (P, window) each window's inputs, monotone (size,) uint8; writes ceiling
    (N, size) int16 and free (N, size) uint8."""
    size = y.shape[1]
    lowest = np.empty(size, np.int64)
    holds = np.empty(size, np.uint8)
    for n in range(y.shape[0]):
        lowest[:] = 127  # in no window: anything goes
        holds[:] = 0
        for po in range(win.shape[0]):
            t = np.int64(top[n, po])
            for i in range(win.shape[1]):
                q = win[po, i]
                lowest[q] = min(lowest[q], t)
                holds[q] |= np.int64(y[n, q]) == t
        for q in range(size):
            f = monotone[q] & (holds[q] ^ 1)
            free[n, q] = f
            ceiling[n, q] = lowest[q] if f else NO_CEILING


@njit(cache=True)
def _within(a, m, sh, lo, y0, up):
    y = requant_one(a, m, sh, lo)
    return y0 <= y <= up


@njit(cache=True, nogil=True)
def rounding_slack_kernel(acc, bias, mult, shift, lo, post, chan, ceiling, free, out_lo, out_hi):
    """For every accumulator acc[n, k] (without bias; channel chan[k]): the largest moves
    out_lo[n, k] <= 0 <= out_hi[n, k] (int16) that leave its requantised value unchanged,
    capped at SLACK_LIMIT. Requantisation is monotone in the accumulator, so every move in between
    leaves the output, and whatever post-operation follows, unchanged: the kernels below skip
    those outputs with two comparisons instead of a requantisation.

    With ceiling and free non-empty (N, size): upward, the largest move that keeps the value at
    or below ceiling[n, k] (unless ceiling[n, k] is NO_CEILING); downward unlimited where
    free[n, k] (``golden.pooled_bounds``)."""
    n_img, size = acc.shape
    k_b, k_m = np.empty(size, np.int64), np.empty(size, np.int64)
    k_sh, k_mr = np.empty(size, np.int64), np.empty(size, np.float64)
    for k in range(size):
        o = chan[k]
        k_b[k], k_m[k] = bias[o], mult[o]
        halved = post[k] == POST_SPLIT or post[k] == POST_SPLIT_CLAMPED
        k_sh[k] = shift[o] - (1 if halved else 0)  # split: the half's boundaries
        k_mr[k] = np.float64(mult[o]) * 2.0 ** (k_sh[k] - 31)
    for n in range(n_img):
        for k in range(size):
            b, m, sh, m_real = k_b[k], k_m[k], k_sh[k], k_mr[k]
            a0 = np.int64(acc[n, k])
            y0 = requant_one(a0 + b, m, sh, lo)
            up = y0  # the largest value a move up may reach
            if ceiling.size and ceiling[n, k] != NO_CEILING:
                up = max(y0, np.int64(ceiling[n, k]))
            for direction in (1, -1):
                # a move of x is fine while the value stays within [y0, up] (monotone in x)
                limit = up if direction == 1 else y0
                if (direction == 1 and up >= 127) or (
                    direction == -1 and (y0 <= lo or (free.size and free[n, k]))
                ):
                    good = SLACK_LIMIT  # saturated (or ReLU zero, or free): nothing to find
                else:
                    # the next value starts near acc + bias = (limit +- 0.5) / M: start there,
                    # gallop to bracket the exact boundary (two roundings), bisect the bracket
                    edge = (limit + 0.5 * direction) / m_real - b - a0
                    good = np.int64(min(max(np.ceil(abs(edge)) - 1, 0), SLACK_LIMIT))
                    bad = good + 1
                    if _within(a0 + direction * good + b, m, sh, lo, y0, up):
                        while bad <= SLACK_LIMIT:
                            if not _within(a0 + direction * bad + b, m, sh, lo, y0, up):
                                break
                            good, bad = bad, bad + 2 * (bad - good)
                    else:
                        bad, good = good, good - 1
                        while good > 0:
                            if _within(a0 + direction * good + b, m, sh, lo, y0, up):
                                break
                            bad, good = good, max(good - 2 * (bad - good), 0)
                    bad = min(bad, SLACK_LIMIT + 1)
                    while bad - good > 1:
                        mid = (good + bad) // 2
                        if _within(a0 + direction * mid + b, m, sh, lo, y0, up):
                            good = mid
                        else:
                            bad = mid
                    good = min(good, SLACK_LIMIT)
                if direction == 1:
                    out_hi[n, k] = good
                else:
                    out_lo[n, k] = -good


@njit(cache=True, nogil=True)
def conv_changes_kernel(
    img, ptr, pos, val, xin, acc, slo, shi, yout, wt, rq, lo, post, rlo, rhi,
    chan_of, pix_of, map_ptr, map_sp, map_ij, ohw, accd, mark, touched, sel,
    pool_ptr, pool_out, pool_win, pool_acc, pool_ch, pool_y, over, is_over, is_pout, ptouched,
    cpos, wbest, out_ptr, out_pos, out_val, progress,
):  # fmt: skip
    """slo, shi: ``rounding_slack_kernel`` of acc, channels-last; wt (C, KH * KW, O) int8.
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
def dense_changes_kernel(
    img, ptr, pos, val, xin, acc, slo, shi, yout, wt, rq, lo, post, rlo, rhi,
    lin, field, cap, top, cap_top, blind, logits, classes, accd, sel, bacc, bfs,
    out_ptr, out_pos, out_val, progress,
):  # fmt: skip
    """slo, shi: ``rounding_slack_kernel`` of acc; wt (I, O) int8; scratch accd (O,) int32 zeros,
    sel (O,) int64. Where the layer's output has a ``bounds.LayerBound`` (lin non-empty; logits
    and classes golden) a pair whose changes provably keep its class is written with none, so
    that it stops here without a pass of ``cannot_change_kernel``; scratch bacc, bfs (K,).
    Most such pairs are settled before any requantisation, by the class-blind bound with each
    output's move bounded by M |dacc| + rounding (``bounds.requant_gain``): blind (3, O) holds
    M top[:, 0], rounding top[:, 0] and top[:, 1], so that the bound is a sum over the outputs
    past their slack, one vectorised pass (reassociated float sums: the error is far below the
    bound's 1e-6); blind empty where the layer's outputs may jump (split, zeroing)."""
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
        if bounded and used > start and _keeps_class(
            n, out_pos[start:used], out_val[start:used], yout, lin, field, cap, top, cap_top,
            logits, classes, bacc, bfs,
        ):  # fmt: skip
            used = start
        out_ptr[p + 1] = used
    progress[0] = img.size
    progress[1] = used


@njit(cache=True, nogil=True)
def maxpool_changes_kernel(
    img, ptr, pos, val, xin, yout, map_ptr, map_out, win, over, is_over, is_out, touched,
    out_ptr, out_pos, out_val, progress,
):  # fmt: skip
    """Tables instead of index arithmetic (64-bit divisions dominated this kernel): input q
    feeds outputs map_out[map_ptr[q]:map_ptr[q + 1]], output k's window is the input indices
    win[k, :]. Scratch over (C*H*W) int64, is_over (C*H*W) and is_out (C*OH*OW) uint8 zeros,
    touched (C*OH*OW) int64."""
    used = progress[1]
    window = win.shape[1]
    for p in range(progress[0], img.size):
        n = img[p]
        for e in range(ptr[p], ptr[p + 1]):
            is_over[pos[e]] = 1
            over[pos[e]] = val[e]
        nt = 0
        for e in range(ptr[p], ptr[p + 1]):
            q = pos[e]
            for m in range(map_ptr[q], map_ptr[q + 1]):
                k = map_out[m]
                if is_out[k] == 0:
                    is_out[k] = 1
                    touched[nt] = k
                    nt += 1
        if used + nt > out_pos.size:
            for t in range(nt):
                is_out[touched[t]] = 0
            for e in range(ptr[p], ptr[p + 1]):
                is_over[pos[e]] = 0
            progress[0] = p
            progress[1] = used
            return
        for t in range(nt):
            k = touched[t]
            is_out[k] = 0
            best = np.int64(-129)
            for i in range(window):
                q = win[k, i]
                v = over[q] if is_over[q] else np.int64(xin[n, q])
                best = max(best, v)
            if best != yout[n, k]:
                out_pos[used] = k
                out_val[used] = best
                used += 1
        for e in range(ptr[p], ptr[p + 1]):
            is_over[pos[e]] = 0
        out_ptr[p + 1] = used
    progress[0] = img.size
    progress[1] = used


@njit(cache=True, nogil=True)
def classify_changes_kernel(img, ptr, pos, val, logits, row, out_class):
    """Class of each pair: argmax (first maximum) of the golden logits with its changes; scratch
    row (K,) int64."""
    n_cls = logits.shape[1]
    for p in range(img.size):
        n = img[p]
        for k in range(n_cls):
            row[k] = logits[n, k]
        for e in range(ptr[p], ptr[p + 1]):
            row[pos[e]] = val[e]
        best = 0
        for k in range(1, n_cls):
            if row[k] > row[best]:
                best = k
        out_class[p] = best


@njit(cache=True, nogil=True)
def _keeps_class(n, pos, val, golden, lin, field, cap, top, cap_top, logits, classes, acc, fs):
    """Whether changes pos -> val of image n's layer output (golden) provably keep its class
    (``bounds``); scratch acc, fs (K,). First the class-blind bound (``LayerBound.top``), which
    settles most pairs, then the bound per class."""
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
def cannot_change_kernel(
    img, ptr, pos, val, golden, lin, field, cap, top, cap_top, logits, classes, acc, fs, out
):
    """out[p] = 1 when pair p's changes provably keep the golden class; scratch acc, fs (K,)."""
    for p in range(img.size):
        a, b = ptr[p], ptr[p + 1]
        out[p] = _keeps_class(
            img[p], pos[a:b], val[a:b], golden, lin, field, cap, top, cap_top, logits, classes,
            acc, fs,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def take_pairs_kernel(ptr, pos, val, rows, out_ptr, out_pos, out_val):
    """Copy the changes of pairs ``rows`` into out_pos/out_val at out_ptr (already summed)."""
    for r in range(rows.size):
        src = ptr[rows[r]]
        dst = out_ptr[r]
        for e in range(out_ptr[r + 1] - dst):
            out_pos[dst + e] = pos[src + e]
            out_val[dst + e] = val[src + e]


@njit(cache=True, nogil=True)
def changed_pairs_kernel(vals, golden, index, out_img, out_fault, out_val):
    """The (image, fault) pairs where faulty value vals[f, n] (F, N) of neuron index[f] differs
    from golden[n, index[f]], image-major (the pairs of one image back to back: the kernels then
    find its golden rows in cache); returns their number."""
    count = 0
    for n in range(vals.shape[1]):
        for f in range(vals.shape[0]):
            v = vals[f, n]
            out_img[count] = n
            out_fault[count] = f
            out_val[count] = v
            count += v != golden[n, index[f]]
    return count
