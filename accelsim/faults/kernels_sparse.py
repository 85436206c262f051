"""numba kernels that route sparse changes without arithmetic, per (fault, image) pair: a
max-pool's windows re-reduced with the changes laid over, the classifier's argmax, and the
bookkeeping of pair batches (``kernels_layers`` explains the CSR form and the records).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def maxpool_changes_kernel(pairs, xin, yout, tables, scratch, out):
    """Records: ``pairs`` = (img, ptr, pos, val), ``tables`` = (map_ptr, map_out, win),
    ``scratch`` = (over, is_over, is_out, touched), ``out`` = (out_ptr, out_pos, out_val,
    progress).

    Tables instead of index arithmetic (64-bit divisions dominated this kernel): input q
    feeds outputs map_out[map_ptr[q]:map_ptr[q + 1]], output k's window is the input indices
    win[k, :]. Scratch over (C*H*W) int64, is_over (C*H*W) and is_out (C*OH*OW) uint8 zeros,
    touched (C*OH*OW) int64."""
    img, ptr, pos, val = pairs
    map_ptr, map_out, win = tables
    over, is_over, is_out, touched = scratch
    out_ptr, out_pos, out_val, progress = out
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
