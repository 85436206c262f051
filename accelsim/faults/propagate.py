"""Faulty classes of many (fault, image) pairs, propagating only what each fault changed.

For a batch of faults in one layer: the faulty value of the hit neuron on every image (the
protection's merge applied to the hit copy), then only the images where it differs from golden
go on, as sparse changes, layer by layer (``sparse.py`` and its kernels); a pair stops as soon
as a layer's output equals golden again (ReLU, max-pool and requantisation rounding mask most
faults). A pair whose change spreads over many inputs of a convolution or dense layer goes
through the whole protected layer instead (``dense_step``, also the kernels' numpy
reference). Results equal a full re-inference exactly (tested on every fault of small campaigns).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import ProtectionMode
from accelsim.faults import kernels_sparse as ks
from accelsim.faults.golden import GoldenState
from accelsim.faults.model import FaultBatch, apply_fault
from accelsim.faults.sparse import Changes, fuses_pool, provably_unchanged, sparse_step
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D
from accelsim.protection.plan import EXTRA_COPIES
from accelsim.protection.protected import (
    copies_from_accumulators,
    merge_copies,
    protected_layer,
)

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
# A pair goes through the whole convolution when its changed inputs exceed this fraction of the
# layer's input: a sparse multiply-add costs ~30x a BLAS MAC. Dense layers always take the
# sparse kernel: even with every input changed it beats the whole layer per pair (MLP-7, LeNet-5:
# 2-4 us against 5-25 us, the whole layer's per-call overhead and requantisation of every output).
DENSE_FRACTION = 1 / 32
PAIRS_PER_CALL = 1 << 16
# Faults of neighbouring neurons often leave the same single change after a max-pool (the
# window's new maximum; LeNet-5's paper campaign: 13 % of the pairs after pool1 repeat one
# another): when fewer than this fraction are distinct, only one pair of each runs on.
REPEATS = 0.95
_DENSE_PAIRS = 256


def dense_step(state: GoldenState, layer: int, ch: Changes) -> Changes:
    """Changed outputs of layer ``layer`` from changed inputs, by running the whole protected
    layer on the overlaid inputs (the reference of every ``*_changes_kernel``)."""
    rec = state.pnet.net.layers[layer]
    golden_in, golden_out = state.layer_input(layer), state.outputs[layer]
    ptr, pos, val = [np.zeros(1, np.int64)], [], []
    for s in range(0, ch.img.size, _DENSE_PAIRS):
        part = ch.take(np.arange(s, min(s + _DENSE_PAIRS, ch.img.size)))
        x = golden_in[part.img].copy()
        rows = np.repeat(np.arange(part.img.size), part.counts)
        x[rows, part.pos] = part.val
        y = protected_layer(state.pnet, layer, x.reshape(len(x), *rec.in_shape))
        differs = y.reshape(len(x), -1) != golden_out[part.img]
        r, c = np.nonzero(differs)
        ptr.append(ptr[-1][-1] + np.cumsum(np.bincount(r, minlength=len(x))))
        pos.append(c.astype(np.int64))
        val.append(y.reshape(len(x), -1)[r, c].astype(np.int64))
    return Changes(ch.img, np.concatenate(ptr), np.concatenate(pos), np.concatenate(val))


def _joined(parts: list[tuple[I64, Changes]], n_pairs: int) -> Changes:
    """The pairs of several parts (rows of the original batch, their changes) in original order."""
    if len(parts) == 1:
        return parts[0][1]
    rows = np.concatenate([r for r, _ in parts])
    ptrs = [parts[0][1].ptr]
    for _, c in parts[1:]:
        ptrs.append(ptrs[-1][-1] + c.ptr[1:])
    joined = Changes(
        np.concatenate([c.img for _, c in parts]),
        np.concatenate(ptrs),
        np.concatenate([c.pos for _, c in parts]),
        np.concatenate([c.val for _, c in parts]),
    )
    inverse = np.empty(n_pairs, np.int64)
    inverse[rows] = np.arange(n_pairs)
    return joined.take(inverse)


def step(state: GoldenState, layer: int, ch: Changes) -> tuple[Changes, int]:
    """Changes after layer ``layer`` and the layer they are of (``layer + 1`` where a max-pool
    is fused into the convolution): sparse kernels, dense for widely spread changes."""
    rec = state.pnet.net.layers[layer]
    if isinstance(rec, Flatten) or ch.img.size == 0:
        return ch, layer
    if not isinstance(rec, Conv2D):
        return sparse_step(state, layer, ch, bounded=True), layer
    pooled = fuses_pool(state, layer)
    last = layer + 1 if pooled else layer
    wide = ch.counts > DENSE_FRACTION * int(np.prod(rec.in_shape))
    narrow = np.flatnonzero(~wide)
    parts = []
    if narrow.size:
        parts.append((narrow, sparse_step(state, layer, ch.take(narrow), pooled)))
    if narrow.size < ch.img.size:
        rows = np.flatnonzero(wide)
        out = dense_step(state, layer, ch.take(rows))
        parts.append((rows, sparse_step(state, last, out) if pooled else out))
    return _joined(parts, ch.img.size), last


def propagate_classes(state: GoldenState, layer: int, ch: Changes) -> I64:
    """Class of every pair whose changes are to layer ``layer``'s output."""
    classes = state.classes[ch.img].copy()
    alive = np.arange(ch.img.size)
    layers = state.pnet.net.layers
    at, bounded = layer, False  # bounded: the dense kernel applied the output's bound already
    while True:
        keep = ch.counts > 0
        if not bounded:
            keep &= ~provably_unchanged(state, at, ch)
        keep = np.flatnonzero(keep)
        if keep.size < ch.img.size:
            ch, alive = ch.keep(keep), alive[keep]
        if alive.size == 0:
            return classes
        if at > layer and ch.pos.size == ch.img.size:  # one change each: pairs may repeat
            rep, inverse = _distinct(ch, state.outputs[at].shape[1])
            if rep.size < REPEATS * ch.img.size:
                classes[alive] = propagate_classes(state, at, ch.take(rep))[inverse]
                return classes
        if at == len(layers) - 1:
            break
        ch, at = step(state, at + 1, ch)
        bounded = isinstance(layers[at], Dense)  # see step
    out = np.empty(ch.img.size, np.int64)
    row = np.empty(state.outputs[-1].shape[1], np.int64)
    ks.classify_changes_kernel(ch.img, ch.ptr, ch.pos, ch.val, state.outputs[-1], row, out)
    classes[alive] = out
    return classes


def _distinct(ch: Changes, size: int) -> tuple[I64, I64]:
    """For pairs of one change each: one representative pair per distinct (image, position,
    value), and for every pair the index of its representative."""
    key = (ch.img * size + ch.pos) * 256 + (ch.val + 128)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse


def locality_order(layers: Sequence[Layer], faults: FaultBatch) -> I64:
    """An order of ``faults`` that puts the faults of one max-pool window next to each other
    (by layer, then window, then bit mask and neuron), so that a campaign's batches hold them
    together: their single changes after the pool repeat one another on the images where the
    window's neurons share a value (blank regions), and repeated changes run once per batch
    (LeNet-5's paper campaign: 20 % of conv1's pairs after pool1 repeat within the whole
    campaign, 12.5 % within batches of faults in neuron order)."""
    window = faults.index.copy()
    for layer in np.unique(faults.layer):
        rec = layers[layer]
        pool = layers[layer + 1] if layer + 1 < len(layers) else None
        if not (isinstance(rec, Conv2D) and isinstance(pool, MaxPool2D)):
            continue
        rows = faults.layer == layer
        _, h, w = rec.out_shape
        s = pool.stride
        index = faults.index[rows]
        c, y, x = index // (h * w), index // w % h, index % w
        window[rows] = (c * (h // s + 1) + y // s) * (w // s + 1) + x // s
    return np.lexsort((faults.index, faults.mask, window, faults.layer))


def faulty_values(state: GoldenState, faults: FaultBatch) -> I8:
    """(F, N): what the next layer sees of each fault's neuron on every image (after the
    protection's merge when the fault hits a protected neuron's copy)."""
    pnet = state.pnet
    out = np.empty((len(faults), state.n_images), np.int8)
    for layer in np.unique(faults.layer):
        rows = np.flatnonzero(faults.layer == layer)
        index = faults.index[rows]
        golden = state.outputs[layer][:, index]  # (N, m)
        faulty = apply_fault(golden, faults.mask[rows], faults.kind[rows])
        protected = pnet.plan.for_layer(int(layer))
        if protected is not None and pnet.plan.mode is not ProtectionMode.NONE:
            hit = np.isin(index, protected)
            if hit.any():
                faulty[:, hit] = _merged(state, int(layer), faults.take(rows[hit]))
        out[rows] = faulty.T
    return out


def _merged(state: GoldenState, layer: int, faults: FaultBatch) -> I8:
    """(N, m) merged values when each fault hits one copy of a protected neuron."""
    pnet = state.pnet
    rec = pnet.net.layers[layer]
    bias = rec.bias[rec.channel_of(faults.index)].astype(np.int64)
    acc = state.accs[layer][:, faults.index].astype(np.int64) + bias
    raw = copies_from_accumulators(pnet, layer, acc, faults.index)
    hit = apply_fault(raw, faults.mask, faults.kind)
    copies = [np.where(faults.copy == c, hit, raw) for c in range(1 + EXTRA_COPIES[pnet.plan.mode])]
    return merge_copies(pnet, layer, copies, raw)  # raw: dmr_recompute's recomputed value


def faulty_classes(state: GoldenState, faults: FaultBatch) -> I64:
    """(F, N) class of every image under every fault."""
    classes = np.empty((len(faults), state.n_images), np.int64)
    values = faulty_values(state, faults)
    for layer in np.unique(faults.layer):
        rows = np.flatnonzero(faults.layer == layer)
        index, vals = faults.index[rows], values[rows]
        # image-major order: the pairs of one image run back to back, so the kernels find that
        # image's golden rows in cache (fault-major order made conv kernels memory-bound)
        img, fr, val = (np.empty(vals.size, np.int64) for _ in range(3))
        n = ks.changed_pairs_kernel(vals, state.outputs[layer], index, img, fr, val)
        classes[rows] = state.classes[None, :]
        flat = classes.reshape(-1)
        for s in range(0, n, PAIRS_PER_CALL):
            sl = slice(s, min(s + PAIRS_PER_CALL, n))
            ptr = np.arange(sl.stop - s + 1, dtype=np.int64)
            ch = Changes(img[sl], ptr, index[fr[sl]], val[sl])
            flat[rows[fr[sl]] * state.n_images + img[sl]] = propagate_classes(state, int(layer), ch)
    return classes
