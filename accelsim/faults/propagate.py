"""Faulty classes of many (fault, image) pairs, propagating only what each fault changed.

For a batch of faults in one layer: the faulty value of the hit neuron on every image (the
protection's merge applied to the hit copy), then only the images where it differs from golden
go on, as sparse changes, layer by layer (``kernels.py``); a pair stops as soon as a layer's
output equals golden again (ReLU, max-pool and requantisation rounding mask most faults). A pair
whose change spreads over many inputs of a convolution or dense layer goes through the whole
protected layer instead (``dense_step``, also the kernels' numpy reference). Results equal a
full re-inference exactly (tested on every fault of small campaigns).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import ProtectionMode
from accelsim.faults import kernels as k
from accelsim.faults.bounds import requant_gain
from accelsim.faults.golden import GoldenState
from accelsim.faults.model import FaultBatch, apply_fault
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


@dataclass(frozen=True, eq=False)
class Changes:
    """P pairs: ``img`` (P,) golden image of each; pair p changed flat positions
    ``pos[ptr[p]:ptr[p + 1]]`` of some layer's output to ``val[...]`` (int64)."""

    img: I64
    ptr: I64
    pos: I64
    val: I64

    @property
    def counts(self) -> I64:
        return np.diff(self.ptr)

    def keep(self, rows: I64) -> Changes:
        """The pairs ``rows`` (increasing); where every pair left out has no changes, without
        copying any: the kept pairs' entries already lie back to back."""
        counts = self.counts
        if counts.sum() != counts[rows].sum():
            return self.take(rows)
        ptr = np.empty(rows.size + 1, np.int64)
        ptr[0] = 0
        ptr[1:] = self.ptr[rows + 1]
        return Changes(self.img[rows], ptr, self.pos, self.val)

    def take(self, rows: I64) -> Changes:
        """The pairs ``rows`` (in that order)."""
        rows = np.asarray(rows, np.int64)
        ptr = np.zeros(rows.size + 1, np.int64)
        np.cumsum(self.counts[rows], out=ptr[1:])
        pos, val = np.empty(ptr[-1], np.int64), np.empty(ptr[-1], np.int64)
        k.take_pairs_kernel(self.ptr, self.pos, self.val, rows, ptr, pos, val)
        return Changes(self.img[rows], ptr, pos, val)


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


_BUFFERS = threading.local()  # per thread (Dask runs tasks on threads): reused output buffers


def _buffers(size: int) -> tuple[I64, I64]:
    """This thread's kernel output buffers, at least ``size`` long. Reused across calls: fresh
    ones of a few 10 MB per call cost more in page faults than the LeNet-5 dense kernel's
    work (0.2 us per pair)."""
    pos = getattr(_BUFFERS, "pos", None)
    if pos is None or pos.size < size:
        _BUFFERS.pos = pos = np.empty(max(size, 1 << 20), np.int64)
        _BUFFERS.val = np.empty_like(pos)
    return pos, _BUFFERS.val


def _run_kernel(call, n_pairs: int, capacity: int) -> tuple[I64, I64, I64]:
    """Call a ``*_changes_kernel`` until every pair is done, giving it ``capacity`` entries of
    output and doubling that whenever it stops short."""
    out_ptr = np.zeros(n_pairs + 1, np.int64)
    progress = np.zeros(2, np.int64)
    capacity = max(capacity, 16)
    while True:
        pos, val = _buffers(capacity)
        call(out_ptr, pos[:capacity], val[:capacity], progress)
        used = int(progress[1])
        if progress[0] == n_pairs:
            return out_ptr, pos[:used].copy(), val[:used].copy()
        if pos.size < 2 * capacity:  # a bigger buffer, keeping what is written
            grown = np.empty(4 * capacity, np.int64), np.empty(4 * capacity, np.int64)
            grown[0][:used], grown[1][:used] = pos[:used], val[:used]
            _BUFFERS.pos, _BUFFERS.val = grown
        capacity *= 2


def _post_args(state: GoldenState, layer: int) -> tuple:
    rec = state.pnet.net.layers[layer]
    lo, hi = state.ranges[layer]
    rq = k.requant_table(rec.bias, rec.multiplier, rec.shift)
    return rq, 0 if rec.relu else -128, state.post[layer], lo, hi


# per-layer tables, bounded: a process that builds many networks keeps the last few layers' only
LAYER_CACHE = 64


@functools.lru_cache(maxsize=LAYER_CACHE)
def _kernel_weights(rec: Conv2D | Dense) -> npt.NDArray[np.int8]:
    """int8 weights with the output channel last and contiguous, (C, KH, KW, O) or (I, O), so
    the kernels' innermost loop over output channels vectorises and the weights stay in cache
    (AlexNet's conv4 is 590 kB in int8, 2.4 MB in int32). Accumulator moves fit in int32:
    |acc| < 2^14 * fan-in < 2^30 for every network that quantises at all."""
    w = rec.weight.transpose(1, 2, 3, 0) if isinstance(rec, Conv2D) else rec.weight.T
    return np.ascontiguousarray(w)


@functools.lru_cache(maxsize=LAYER_CACHE)
def _conv_tables(rec: Conv2D) -> tuple[I64, I64, I64, I64, I64]:
    """For the convolution kernel: channel and pixel of every flat input (C*H*W,), and for
    every input pixel (H*W) the output pixels it feeds with the kernel tap (i * KW + j) it
    feeds them through (CSR: ptr (H*W + 1,), output pixels, taps)."""
    c, h, w = rec.in_shape
    _, oh, ow = rec.out_shape
    kh, kw = rec.weight.shape[2:]
    s, pad = rec.stride, rec.padding
    oy, ox, i, j = np.meshgrid(
        np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw), indexing="ij"
    )
    y, x = oy * s - pad + i, ox * s - pad + j
    inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    pix = (y * w + x)[inside]
    sp = (oy * ow + ox)[inside]
    tap = (i * kw + j)[inside]
    order = np.argsort(pix, kind="stable")
    ptr = np.zeros(h * w + 1, np.int64)
    np.cumsum(np.bincount(pix, minlength=h * w), out=ptr[1:])
    flat = np.arange(c * h * w)
    return (flat // (h * w), flat % (h * w), ptr, sp[order].astype(np.int64),
            tap[order].astype(np.int64))  # fmt: skip


@functools.lru_cache(maxsize=LAYER_CACHE)
def _pool_tables(rec: MaxPool2D) -> tuple[I64, I64, I64]:
    """For the max-pool kernel: which outputs each input feeds (CSR: ptr (C*H*W + 1,), outputs)
    and the input indices of each output's window (C*OH*OW, size * size), flat C-H-W."""
    win = rec.windows()
    n_in = int(np.prod(rec.in_shape))
    out = np.repeat(np.arange(win.shape[0]), win.shape[1])
    order = np.argsort(win.ravel(), kind="stable")
    ptr = np.zeros(n_in + 1, np.int64)
    np.cumsum(np.bincount(win.ravel(), minlength=n_in), out=ptr[1:])
    return ptr, out[order].astype(np.int64), win


@functools.lru_cache(maxsize=LAYER_CACHE)
def _fused_pool_tables(rec: MaxPool2D) -> tuple[I64, I64, I64, I64, I64]:
    """``_pool_tables`` of the max-pool after a convolution, and for the fused kernel each
    window's channel (C*OH*OW,) and its inputs' places in the channels-last accumulator moves
    (C*OH*OW, size * size)."""
    ptr, out, win = _pool_tables(rec)
    c, h, w = rec.in_shape
    chan = win[:, 0] // (h * w)
    acc = (win - chan[:, None] * (h * w)) * c + chan[:, None]
    return ptr, out, win, np.ascontiguousarray(acc, np.int64), chan.astype(np.int64)


def sparse_step(
    state: GoldenState, layer: int, ch: Changes, pooled: bool = False, bounded: bool = False
) -> Changes:
    """Changed outputs of layer ``layer`` (max-pool, convolution or dense) by its kernel; with
    ``pooled``, of the max-pool right after convolution ``layer`` (one fused kernel); with
    ``bounded``, none for the pairs of a dense layer that ``provably_unchanged`` would drop."""
    rec = state.pnet.net.layers[layer]
    xin, yout = state.layer_input(layer), state.outputs[layer]
    args = (ch.img, ch.ptr, ch.pos, ch.val, xin)
    if isinstance(rec, MaxPool2D):
        map_ptr, map_out, win = _pool_tables(rec)
        scratch = (
            np.zeros(xin.shape[1], np.int64),
            np.zeros(xin.shape[1], np.uint8),
            np.zeros(yout.shape[1], np.uint8),
            np.zeros(yout.shape[1], np.int64),
        )

        def call(*out):
            k.maxpool_changes_kernel(*args, yout, map_ptr, map_out, win, *scratch, *out)

    elif isinstance(rec, Conv2D):
        o, oh, ow = rec.out_shape
        tables = _conv_tables(rec)
        wt = _kernel_weights(rec)
        wt = wt.reshape(wt.shape[0], -1, wt.shape[-1])
        size = o * oh * ow
        if pooled != fuses_pool(state, layer):  # the slacks are the pool's (golden.pooled_bounds)
            raise ValueError(f"layer {layer}: the convolution runs {'un' * pooled}fused")
        if pooled:
            pool = _fused_pool_tables(state.pnet.net.layers[layer + 1])
            pool_y = state.outputs[layer + 1]
        else:
            empty = np.zeros(0, np.int64)
            pool = (
                np.zeros(1, np.int64),
                empty,
                np.zeros((0, 1), np.int64),
                np.zeros((0, 1), np.int64),
                empty,
            )
            pool_y = np.zeros((0, 0), np.int8)
        n_pool = pool_y.shape[1]
        scratch = (
            np.zeros(size, np.int32),
            np.zeros(oh * ow, np.uint8),
            np.zeros(oh * ow, np.int64),
            np.zeros(o, np.int64),
            *pool,
            pool_y,
            np.zeros(size, np.int64),
            np.zeros(size, np.uint8),
            np.zeros(n_pool, np.uint8),
            np.zeros(n_pool, np.int64),
            np.zeros(size, np.int64),
            np.full(n_pool, -129, np.int64),
        )
        post_args = _post_args(state, layer)

        def call(*out):
            k.conv_changes_kernel(
                *args,
                state.accs[layer],
                *state.slack[layer],
                yout,
                wt,
                *post_args,
                *tables,
                oh * ow,
                *scratch,
                *out,
            )

    else:
        wt = _kernel_weights(rec)
        bound = state.bounds[layer] if bounded else None
        n_cls = state.outputs[-1].shape[1]
        if bound is None:
            none = np.zeros((0, n_cls))
            bound_args = (none, none, np.zeros(n_cls), np.zeros((0, 2)), 0.0, np.zeros((3, 0)))
        else:
            # |dy| <= M |dacc| + rounding holds for plain and clamped outputs only (split and
            # zeroing jump): else no bound before the new values
            continuous = np.all(
                (state.post[layer] == k.POST_PLAIN) | (state.post[layer] == k.POST_CLAMP)
            )
            m, rounding = requant_gain(rec)
            top = bound.top
            blind = np.stack([m * top[:, 0], rounding * top[:, 0], top[:, 1]])
            blind = blind if continuous else np.zeros((3, 0))
            bound_args = (bound.lin, bound.field, bound.cap, top, bound.cap_top, blind)
        scratch = (
            np.zeros(rec.out_channels, np.int32),
            np.zeros(rec.out_channels, np.int64),
            np.empty(n_cls),
            np.empty(n_cls),
        )
        post_args = _post_args(state, layer)

        def call(*out):
            k.dense_changes_kernel(
                *args,
                state.accs[layer],
                *state.slack[layer],
                yout,
                wt,
                *post_args,
                *bound_args,
                state.outputs[-1],
                state.classes,
                *scratch,
                *out,
            )

    ptr, pos, val = _run_kernel(call, ch.img.size, 4 * ch.pos.size + 64)
    return Changes(ch.img, ptr, pos, val)


def fuses_pool(state: GoldenState, layer: int) -> bool:
    """Whether convolution ``layer`` and the max-pool after it run as one kernel (always: the
    convolution's output is then never checked against its ``bounds``, the pool's is)."""
    layers = state.pnet.net.layers
    return (
        isinstance(layers[layer], Conv2D)
        and layer + 1 < len(layers)
        and isinstance(layers[layer + 1], MaxPool2D)
    )


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


def provably_unchanged(state: GoldenState, layer: int, ch: Changes) -> npt.NDArray[np.bool_]:
    """Pairs whose changes to layer ``layer``'s output cannot change the class (``bounds``)."""
    bound = state.bounds[layer]
    out = np.zeros(ch.img.size, np.uint8)
    if bound is None or ch.img.size == 0:
        return out.astype(bool)
    n_cls = bound.lin.shape[1]
    k.cannot_change_kernel(
        ch.img, ch.ptr, ch.pos, ch.val, state.outputs[layer], bound.lin, bound.field, bound.cap,
        bound.top, bound.cap_top, state.outputs[-1], state.classes, np.empty(n_cls),
        np.empty(n_cls), out,
    )  # fmt: skip
    return out.astype(bool)


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
    k.classify_changes_kernel(ch.img, ch.ptr, ch.pos, ch.val, state.outputs[-1], row, out)
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
        n = k.changed_pairs_kernel(vals, state.outputs[layer], index, img, fr, val)
        classes[rows] = state.classes[None, :]
        flat = classes.reshape(-1)
        for s in range(0, n, PAIRS_PER_CALL):
            sl = slice(s, min(s + PAIRS_PER_CALL, n))
            ptr = np.arange(sl.stop - s + 1, dtype=np.int64)
            ch = Changes(img[sl], ptr, index[fr[sl]], val[sl])
            flat[rows[fr[sl]] * state.n_images + img[sl]] = propagate_classes(state, int(layer), ch)
    return classes
