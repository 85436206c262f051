"""What the accelerator computes, fold by fold, in the schedule's order (with an optional PE
fault): the numbers behind the timing model.

Every fold accumulates its block of the layer GEMM with the numba kernel into the accumulators
of its copy; a layer's outputs are requantised from them, protected neurons are merged by the
LCU / voter (``protection.protected.merge_copies``) and written back. Without a fault the result
equals the functional engine (``functional.network.forward``, ``protected_logits`` for protected
networks) bit for bit; tests hold that.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.config.arch import Dataflow, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.functional.layers import Conv2D, Dense
from accelsim.functional.network import apply_layer
from accelsim.functional.reference import requantize_ref
from accelsim.protection.protected import (
    ProtectedNetwork,
    copies_from_accumulators,
    merge_copies,
)
from accelsim.timing.kernels import Block, fold_acc_int8
from accelsim.timing.pe_faults import PeFault, PeSite
from accelsim.timing.schedule import LayerSchedule, Schedule

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
Edit = tuple[int, I64, I64]  # output-register edits: copy, m indices, n indices


def layer_operands(layer: Conv2D | Dense, x: I8) -> tuple[I8, I8]:
    """The GEMM operands of a layer: A (B, M, K) int8 from the inputs, W (K, N) int8."""
    if isinstance(layer, Dense):
        return np.ascontiguousarray(x[:, None, :]), np.ascontiguousarray(layer.weight.T)
    p, s = layer.padding, layer.stride
    kh, kw = layer.weight.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    b, c, oh, ow = win.shape[:4]
    a = win.transpose(0, 2, 3, 1, 4, 5).reshape(b, oh * ow, c * kh * kw)
    w = layer.weight.reshape(layer.out_channels, -1).T
    return np.ascontiguousarray(a), np.ascontiguousarray(w)


def fold_block(ls: LayerSchedule, pe: PEArraySpec, t: int) -> Block:
    """GEMM ranges (m0, m1, n0, n1, k0, k1) of fold ``t``."""
    g, r0, c0 = ls.gemm, int(ls.row_fold[t]) * pe.rows, int(ls.col_fold[t]) * pe.cols
    if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
        return r0, min(r0 + pe.rows, g.m), c0, min(c0 + pe.cols, g.n), 0, g.k
    if pe.dataflow is Dataflow.WEIGHT_STATIONARY:
        return 0, g.m, c0, min(c0 + pe.cols, g.n), r0, min(r0 + pe.rows, g.k)
    return c0, min(c0 + pe.cols, g.m), 0, g.n, r0, min(r0 + pe.rows, g.k)


def _wrap32(v: I64) -> I64:
    return ((np.asarray(v, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class _Fold:
    """One fold with the fault's PE in it: which copy's accumulators the PE feeds (``acc``,
    None when the PE is idle in a stacked fold), its logical position, spatial indices and the
    cycle inside the fold."""

    def __init__(self, ls: LayerSchedule, pe: PEArraySpec, t: int, fault: PeFault, start) -> None:
        self.rot = int(ls.copy[t])  # re-run copies are rotated; stacked folds are not
        self.stack, self.offset = int(ls.stack[t]), int(ls.stack_offset[t])
        self.os = pe.dataflow is Dataflow.OUTPUT_STATIONARY
        self.r, self.c = fault.row, fault.col
        self.row0 = int(ls.row_fold[t]) * pe.rows
        self.col0 = int(ls.col_fold[t]) * pe.cols
        self.is_last_k = int(ls.row_fold[t]) == ls.fold.row_folds - 1
        self.tau = None if start is None else fault.cycle - start
        self.acc, self.rp = self.row_copy(fault.row, pe)
        self.cp = (fault.col - self.rot) % pe.cols
        if self.stack > 1 and not self.os:
            e = fault.col // self.offset
            self.acc, self.cp = (e if e < self.stack else None), fault.col - e * self.offset
        self.i, self.j = self.row0 + self.rp, self.col0 + self.cp

    def row_copy(self, row: int, pe: PEArraySpec) -> tuple[int | None, int]:
        """(copy, logical row) of physical ``row``."""
        if self.stack > 1 and self.os:
            e = row // self.offset
            return (e if e < self.stack else None), row - e * self.offset
        return self.rot, (row - self.rot) % pe.rows


def _column_partial(a: I8, w: I8, f: _Fold, pe: PEArraySpec, k_total: int, m, n) -> I64:
    """Partial sums leaving physical row ``f.r`` in this fold (rows 0..r, valid k only), of the
    outputs (m, n) where exactly one of m, n is an index array: (B, len(array))."""
    ks = f.row0 + (np.arange(f.r + 1) - f.rot) % pe.rows
    ks = ks[ks < k_total]
    if np.ndim(m):  # weight stationary: streamed outputs m of column n
        return a[:, m][:, :, ks].astype(np.int64) @ w[ks, n].astype(np.int64)
    return a[:, m, ks].astype(np.int64) @ w[ks][:, n].astype(np.int64)


def _os_weight_fault(fault: PeFault, f: _Fold, a: I8, w: I8, acc: I64, pe, g) -> None:
    """The weight register's value moves down the column: every PE from row r down uses it."""
    n = f.j
    if n >= g.n:
        return
    k = None if fault.is_permanent else f.tau - f.r - f.c
    if k is not None and not 0 <= k < g.k:
        return
    dw = fault.apply(w[:, n] if k is None else w[k, n], 8) - (w[:, n] if k is None else w[k, n])
    for row in range(f.r, pe.rows):
        copy, rp = f.row_copy(row, pe)
        m = f.row0 + rp
        if copy is None or m >= g.m or (f.stack > 1 and rp >= f.offset):
            continue
        prod = a[:, m, :].astype(np.int64) @ dw if k is None else a[:, m, k].astype(np.int64) * dw
        acc[copy][:, m, n] += prod


def _os_fault(fault, f: _Fold, a, w, acc, pe, g, edits):
    if fault.site is PeSite.OPERAND_REGISTER:
        _os_weight_fault(fault, f, a, w, acc, pe, g)
        return
    m, n = f.i, f.j
    if f.acc is None or m >= g.m or n >= g.n:
        return
    acc = acc[f.acc]
    kappa = None if fault.is_permanent else f.tau - f.r - f.c
    if fault.site is PeSite.OUTPUT_REGISTER:
        if kappa is None or kappa >= g.k:
            edits.append((f.acc, np.array([m]), np.array([n])))
        return
    if kappa is None:  # stuck accumulator: forced after every MAC
        p = np.zeros(a.shape[0], np.int64)
        for k in range(g.k):
            p = fault.apply(_wrap32(p + a[:, m, k].astype(np.int64) * w[k, n]), 32)
        acc[:, m, n] = p
    elif kappa >= 0:
        p = (
            acc[:, m, n]
            if kappa >= g.k
            else a[:, m, : kappa + 1].astype(np.int64) @ w[: kappa + 1, n]
        )
        acc[:, m, n] += fault.apply(_wrap32(p), 32) - _wrap32(p)


def _stationary_fault(fault, f: _Fold, a, w, acc, before, pe, g, edits):
    """Weight stationary (spatial rows: k, cols: n, streamed: m) and input stationary
    (rows: k, cols: m, streamed: n)."""
    ws = pe.dataflow is Dataflow.WEIGHT_STATIONARY
    streamed = g.m if ws else g.n
    if f.acc is None or f.j >= (g.n if ws else g.m):
        return
    acc = acc[f.acc]
    s = None if fault.is_permanent else f.tau - pe.rows - f.r - f.c
    sel = np.arange(streamed) if s is None else np.array([s])
    if fault.site is PeSite.OUTPUT_REGISTER:
        if f.r == pe.rows - 1 and f.is_last_k:
            sel = sel[(sel >= 0) & (sel < streamed)]
            fixed = np.full(sel.size, f.j)
            edits.append((f.acc, *((sel, fixed) if ws else (fixed, sel))))
        return
    if fault.site is PeSite.OPERAND_REGISTER:
        if f.i >= g.k or (s is not None and f.tau < pe.rows):
            return
        rest = slice(0 if s is None else max(0, s), None)
        k = f.i
        if ws:
            dw = fault.apply(w[k, f.j], 8) - np.int64(w[k, f.j])
            acc[:, rest, f.j] += a[:, rest, k].astype(np.int64) * dw
        else:
            da = fault.apply(a[:, f.j, k], 8) - a[:, f.j, k].astype(np.int64)
            acc[:, f.j, rest] += da[:, None] * w[k, rest].astype(np.int64)[None, :]
        return
    sel = sel[(sel >= 0) & (sel < streamed)]
    if sel.size == 0:
        return
    m, n = (sel, f.j) if ws else (f.j, sel)
    p = _wrap32(before[:, m, n] + _column_partial(a, w, f, pe, g.k, m, n))
    acc[:, m, n] += fault.apply(p, 32) - p


def layer_accumulators(
    ls: LayerSchedule, pe: PEArraySpec, layer: Conv2D | Dense, x: I8, n_copies: int,
    fault: PeFault | None = None, starts: I64 | None = None,
) -> tuple[I64, list[Edit]]:  # fmt: skip
    """int64 accumulators (copies, B, M, N), without bias and wrapped to int32, of every fold of
    one layer, and the output-register edits the fault makes."""
    a, w = layer_operands(layer, x)
    g = ls.gemm
    acc = np.zeros((n_copies, a.shape[0], g.m, g.n), np.int64)
    edits: list[Edit] = []
    for t in range(ls.n_tiles):
        copies = range(ls.copy[t], ls.copy[t] + ls.stack[t])  # a re-run copy, or the stack
        f = None
        if fault is not None:
            start = None if fault.is_permanent else int(starts[t])
            busy = fault.is_permanent or 0 <= fault.cycle - start < ls.fold.fold_cycles
            f = _Fold(ls, pe, t, fault, start) if busy else None
        before = acc[f.acc].copy() if f is not None and f.acc is not None else None
        for copy in copies:
            fold_acc_int8(a, w, fold_block(ls, pe, t), acc[copy])
        if f is None:
            continue
        if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
            _os_fault(fault, f, a, w, acc, pe, g, edits)
        else:
            _stationary_fault(fault, f, a, w, acc, before, pe, g, edits)
    return _wrap32(acc), edits


def _requant(layer: Conv2D | Dense, acc: I64) -> I8:
    """(B, M, N) accumulators without bias -> (B, *out_shape) int8."""
    full = acc.transpose(0, 2, 1) + layer.bias.astype(np.int64)[None, :, None]
    y = requantize_ref(full, layer.multiplier, layer.shift, relu=layer.relu)
    return np.ascontiguousarray(y).reshape(acc.shape[0], *layer.out_shape)


def _edit(fault: PeFault, values: I8, sel) -> None:
    values[sel] = fault.apply(values[sel], 8).astype(np.int8)


def layer_outputs(
    ls: LayerSchedule, pe: PEArraySpec, pnet: ProtectedNetwork, x: I8,
    fault: PeFault | None = None, starts: I64 | None = None,
) -> I8:  # fmt: skip
    """One layer on the array: outputs as the next layer sees them (after correction)."""
    layer = pnet.net.layers[ls.layer]
    if ls.gemm is None:
        return apply_layer(layer, x)
    index = pnet.plan.for_layer(ls.layer) if pnet.plan.mode is not ProtectionMode.NONE else None
    n_copies = int(np.max(ls.copy + ls.stack, initial=1))
    acc, edits = layer_accumulators(ls, pe, layer, x, n_copies, fault, starts)
    y = _requant(layer, acc[0])
    flat = y.reshape(len(y), -1)  # a view: y is contiguous
    m_per = ls.gemm.m
    if index is None:
        for copy, m, n in edits:
            if copy == 0:
                _edit(fault, flat, (slice(None), n * m_per + m))
        return y
    pm, pn = index % m_per, index // m_per
    bias = layer.bias.astype(np.int64)[pn]
    copies = [
        copies_from_accumulators(pnet, ls.layer, acc[k][:, pm, pn] + bias, index)
        for k in range(n_copies)
    ]
    golden = flat[:, index].copy()
    for copy, m, n in edits:
        for mi, ni in zip(np.atleast_1d(m), np.atleast_1d(n), strict=False):
            pos = np.searchsorted(index, ni * m_per + mi)
            if pos < index.size and index[pos] == ni * m_per + mi:
                _edit(fault, copies[copy], (slice(None), pos))
            elif copy == 0:
                _edit(fault, flat, (slice(None), ni * m_per + mi))
    flat[:, index] = merge_copies(pnet, ls.layer, copies, golden)
    return y


def accelerator_logits(
    schedule: Schedule, pnet: ProtectedNetwork, x: I8, *, fault: PeFault | None = None,
    fold_starts: tuple[I64, ...] | None = None, start: int = 0,
) -> I8:  # fmt: skip
    """Logits of int8 inputs ``x`` (the input of network layer ``start``) computed fold by fold
    on the array; ``fold_starts`` (from the timing report) place transient faults."""
    pe = schedule.arch.pe_array
    position = {ls.layer: k for k, ls in enumerate(schedule.layers)}
    h = x
    for i in range(start, len(pnet.net.layers)):
        k = position.get(i)
        if k is None:  # flatten
            h = apply_layer(pnet.net.layers[i], h)
            continue
        starts = None if fold_starts is None else fold_starts[k]
        h = layer_outputs(schedule.layers[k], pe, pnet, h, fault, starts)
    return h
