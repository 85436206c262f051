"""The sparse kernels' Python side: pair batches (``Changes``), the kernels' records and
tables per layer, and the calls that grow the output buffers until every pair is done
(``kernels_layers``, ``kernels_sparse``). ``propagate.py`` decides which layer runs how.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.faults import kernels_layers as kl
from accelsim.faults import kernels_sparse as ks
from accelsim.faults.bounds import requant_gain
from accelsim.faults.golden import GoldenState
from accelsim.functional.layers import Conv2D, Dense, MaxPool2D

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


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
        ks.take_pairs_kernel(self.ptr, self.pos, self.val, rows, ptr, pos, val)
        return Changes(self.img[rows], ptr, pos, val)


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
        call((out_ptr, pos[:capacity], val[:capacity], progress))
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
    rq = kl.requant_table(rec.bias, rec.multiplier, rec.shift)
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
    pairs = (ch.img, ch.ptr, ch.pos, ch.val)
    if isinstance(rec, MaxPool2D):
        tables = _pool_tables(rec)
        scratch = (
            np.zeros(xin.shape[1], np.int64),
            np.zeros(xin.shape[1], np.uint8),
            np.zeros(yout.shape[1], np.uint8),
            np.zeros(yout.shape[1], np.int64),
        )

        def call(out):
            ks.maxpool_changes_kernel(pairs, xin, yout, tables, scratch, out)

    elif isinstance(rec, Conv2D):
        o, oh, ow = rec.out_shape
        tables = (*_conv_tables(rec), oh * ow)
        wt = _kernel_weights(rec)
        wt = wt.reshape(wt.shape[0], -1, wt.shape[-1])
        size = o * oh * ow
        if pooled != fuses_pool(state, layer):  # the slacks are the pool's (golden.pooled_bounds)
            raise ValueError(f"layer {layer}: the convolution runs {'un' * pooled}fused")
        if pooled:
            pool_y = state.outputs[layer + 1]
            pool = (*_fused_pool_tables(state.pnet.net.layers[layer + 1]), pool_y)
        else:
            empty = np.zeros(0, np.int64)
            pool_y = np.zeros((0, 0), np.int8)
            pool = (
                np.zeros(1, np.int64),
                empty,
                np.zeros((0, 1), np.int64),
                np.zeros((0, 1), np.int64),
                empty,
                pool_y,
            )
        n_pool = pool_y.shape[1]
        scratch = (
            np.zeros(size, np.int32),
            np.zeros(oh * ow, np.uint8),
            np.zeros(oh * ow, np.int64),
            np.zeros(o, np.int64),
            np.zeros(size, np.int64),
            np.zeros(size, np.uint8),
            np.zeros(n_pool, np.uint8),
            np.zeros(n_pool, np.int64),
            np.zeros(size, np.int64),
            np.full(n_pool, -129, np.int64),
        )
        golden = (state.accs[layer], *state.slack[layer], yout)
        params = (wt, *_post_args(state, layer))

        def call(out):
            kl.conv_changes_kernel(pairs, xin, golden, params, tables, pool, scratch, out)

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
                (state.post[layer] == kl.POST_PLAIN) | (state.post[layer] == kl.POST_CLAMP)
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
        golden = (state.accs[layer], *state.slack[layer], yout)
        params = (wt, *_post_args(state, layer))
        bound_rec = (*bound_args, state.outputs[-1], state.classes)

        def call(out):
            kl.dense_changes_kernel(pairs, xin, golden, params, bound_rec, scratch, out)

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


def provably_unchanged(state: GoldenState, layer: int, ch: Changes) -> npt.NDArray[np.bool_]:
    """Pairs whose changes to layer ``layer``'s output cannot change the class (``bounds``)."""
    bound = state.bounds[layer]
    out = np.zeros(ch.img.size, np.uint8)
    if bound is None or ch.img.size == 0:
        return out.astype(bool)
    n_cls = bound.lin.shape[1]
    record = (bound.lin, bound.field, bound.cap, bound.top, bound.cap_top, np.zeros((3, 0)),
              state.outputs[-1], state.classes)  # fmt: skip
    pairs = (ch.img, ch.ptr, ch.pos, ch.val)
    scratch = (np.empty(n_cls), np.empty(n_cls))
    kl.cannot_change_kernel(pairs, state.outputs[layer], record, scratch, out)
    return out.astype(bool)
