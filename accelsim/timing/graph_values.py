"""What the accelerator computes for a graph network, fold by fold (``values.py`` for graphs),
and PE-datapath faults in it as a fault source of the campaign engine.

A weighted node is the GEMM ``schedule.gemm_schedule`` folds: CONV_2D and FULLY_CONNECTED one,
DEPTHWISE_CONV_2D one per input channel (the fold's ``group``). The operands are the raw int8
codes (the padding holds the input zero point) and the weights; the input offset
``-zp_in sum(w)`` is folded into the bias, so the accumulators are TFLite's. Faults hit the PE
registers exactly as for chains (``values._os_fault``, ``values._stationary_fault``); outputs
are requantised with the node's zero point and clamp; protected neurons' copies (split halves
from the accumulators with half the multiplier) are merged by ``graph_protected``. Without a
fault the result equals the graph engine bit for bit (tests).

A transient fault touches the node whose fold runs at its cycle: that node is recomputed fold
by fold with the fault from the cached fault-free tensors, then the nodes after it run
fault-free. A permanent fault runs every weighted node on the array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from accelsim.config.arch import Dataflow, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.functional import graph_kernels
from accelsim.functional.graph import Graph, Node, run_node
from accelsim.functional.network import classify
from accelsim.protection.graph_protected import (
    cap_halves,
    half_params,
    merge_node_copies,
    protect_output,
    protected_graph_tensors,
)
from accelsim.protection.plan import SPLITS
from accelsim.protection.protected import ProtectedNetwork
from accelsim.timing.kernels import fold_acc_int8
from accelsim.timing.pe_campaign import PeCampaignInputs, fold_at
from accelsim.timing.pe_faults import PeFault
from accelsim.timing.schedule import LayerSchedule, Schedule
from accelsim.timing.values import _Fold, _os_fault, _stationary_fault, _wrap32, fold_block

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]


def node_operands(g: Graph, nd: Node, x: I8) -> tuple[I8, I8]:
    """The GEMM operands of a weighted node: A (G, B, M, K) int8 codes, W (G, K, N) int8, one
    of each per group (a depthwise node: one per input channel)."""
    b = x.shape[0]
    if nd.op == "FULLY_CONNECTED":
        return x.reshape(1, b, 1, -1), np.ascontiguousarray(nd.weight.T)[None]
    top, bottom, left, right = nd.attr("padding", (0, 0, 0, 0))
    zp = g.tensors[nd.inputs[0]].zero_point
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=zp)
    kh, kw = nd.weight.shape[-2:]
    s = nd.attr("stride", 1)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
    _, c, oh, ow = win.shape[:4]
    if nd.op == "CONV_2D":
        a = win.transpose(0, 2, 3, 1, 4, 5).reshape(1, b, oh * ow, c * kh * kw)
        w = nd.weight.reshape(nd.weight.shape[0], -1).T[None]
        return np.ascontiguousarray(a), np.ascontiguousarray(w)
    dm = nd.attr("depth_multiplier", 1)
    a = win.transpose(1, 0, 2, 3, 4, 5).reshape(c, b, oh * ow, kh * kw)
    w = nd.weight.reshape(c, dm, kh * kw).transpose(0, 2, 1)
    return np.ascontiguousarray(a), np.ascontiguousarray(w)


Edit = tuple[int, int, I64, I64]  # output-register edits: copy, group, m indices, n indices


def node_accumulators(
    ls: LayerSchedule, pe: PEArraySpec, a: I8, w: I8, n_copies: int,
    fault: PeFault | None = None, starts: I64 | None = None,
) -> tuple[I64, list[Edit]]:  # fmt: skip
    """int64 accumulators (copies, G, B, M, N) without bias, wrapped to int32, of every fold of
    one node, and the output-register edits the fault makes."""
    gm = ls.gemm
    acc = np.zeros((n_copies, a.shape[0], a.shape[1], gm.m, gm.n), np.int64)
    edits: list[Edit] = []
    for t in range(ls.n_tiles):
        grp = int(ls.group[t])
        view = acc[:, grp]
        f = None
        if fault is not None:
            start = None if fault.is_permanent else int(starts[t])
            busy = fault.is_permanent or 0 <= fault.cycle - start < ls.fold.fold_cycles
            f = _Fold(ls, pe, t, fault, start) if busy else None
        before = view[f.acc].copy() if f is not None and f.acc is not None else None
        for copy in range(ls.copy[t], ls.copy[t] + ls.stack[t]):
            fold_acc_int8(a[grp], w[grp], fold_block(ls, pe, t), view[copy])
        if f is None:
            continue
        found: list[tuple[int, I64, I64]] = []
        if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
            _os_fault(fault, f, a[grp], w[grp], view, pe, gm, found)
        else:
            _stationary_fault(fault, f, a[grp], w[grp], view, before, pe, gm, found)
        edits += [(c, grp, m, n) for c, m, n in found]
    return _wrap32(acc), edits


def _requant(g: Graph, nd: Node, acc: I64, params: dict) -> I8:
    """(G, B, M, N) accumulators without bias -> (B, *out_shape) int8 (channel grp * N + n)."""
    groups, b, m, n = acc.shape
    cm = acc.transpose(0, 3, 1, 2).reshape(groups * n, b, m)  # channel-major (O, B, M)
    bias = graph_kernels.offset_bias(nd.bias, nd.weight, g.tensors[nd.inputs[0]].zero_point)
    out = g.tensors[nd.output]
    y = graph_kernels.requantize(cm, bias, params["multiplier"], params["shift"],
                                 out.zero_point, params["act_range"])  # fmt: skip
    return np.ascontiguousarray(y).reshape(b, *out.shape)


def _flat(edits_m: I64, edits_n: I64, grp: int, gm_m: int, gm_n: int) -> I64:
    """Flat C-H-W output indices of GEMM outputs (m, n) of group ``grp``."""
    return (grp * gm_n + np.atleast_1d(edits_n)) * gm_m + np.atleast_1d(edits_m)


def node_outputs(
    ls: LayerSchedule, pe: PEArraySpec, pnet: ProtectedNetwork, x: I8,
    fault: PeFault | None = None, starts: I64 | None = None,
) -> I8:  # fmt: skip
    """One weighted node on the array: its output as the next nodes see it (after correction)."""
    g = pnet.net
    nd = g.nodes[ls.layer]
    a, w = node_operands(g, nd, x)
    n_copies = int(np.max(ls.copy + ls.stack, initial=1))
    acc, edits = node_accumulators(ls, pe, a, w, n_copies, fault, starts)
    params = g.params[nd.name]
    y = _requant(g, nd, acc[0], params)
    flat = y.reshape(len(y), -1)
    gm = ls.gemm
    index = pnet.plan.for_layer(ls.layer) if pnet.plan.mode is not ProtectionMode.NONE else None
    if index is None:
        for copy, grp, m, n in edits:
            if copy == 0:
                sel = _flat(m, n, grp, gm.m, gm.n)
                flat[:, sel] = fault.apply(flat[:, sel], 8).astype(np.int8)
        return y
    split = pnet.plan.mode in SPLITS
    copy_params = half_params(g, nd) if split else params
    copies = [
        _requant(g, nd, acc[k], copy_params).reshape(len(y), -1)[:, index] for k in range(n_copies)
    ]
    if split:
        copies = [cap_halves(pnet, ls.layer, c) for c in copies]
    plain = flat[:, index].copy()
    for copy, grp, m, n in edits:
        for q in _flat(m, n, grp, gm.m, gm.n):
            pos = np.searchsorted(index, q)
            if pos < index.size and index[pos] == q:
                copies[copy][:, pos] = fault.apply(copies[copy][:, pos], 8).astype(np.int8)
            elif copy == 0:
                flat[:, q] = fault.apply(flat[:, q], 8).astype(np.int8)
    flat[:, index] = merge_node_copies(pnet, ls.layer, copies, plain)
    return y


def graph_accelerator_logits(
    schedule: Schedule, pnet: ProtectedNetwork, x: I8, *, fault: PeFault | None = None,
    fold_starts: tuple[I64, ...] | None = None,
) -> I8:  # fmt: skip
    """Logits of int8 inputs ``x``: every weighted node fold by fold on the array (with
    ``fault``; ``fold_starts`` from the timing report place a transient one), the other nodes
    on the activation unit."""
    g = pnet.net
    pe = schedule.arch.pe_array
    position = {ls.layer: k for k, ls in enumerate(schedule.layers) if ls.fold is not None}
    values = {g.input: x}
    for i, nd in enumerate(g.nodes):
        ins = [values[t] for t in nd.inputs]
        k = position.get(i)
        if k is None:
            values[nd.output] = protect_output(pnet, i, nd, ins, run_node(g, nd, ins))[0]
            continue
        starts = None if fold_starts is None else fold_starts[k]
        values[nd.output] = node_outputs(schedule.layers[k], pe, pnet, ins[0], fault, starts)
    return values[g.output]


@dataclass(frozen=True)
class GraphPeGolden:
    values: dict[str, I8]
    classes: I64
    labels: I64


@dataclass(frozen=True, eq=False)
class GraphPeCampaignInputs(PeCampaignInputs):
    """PE faults on a graph network: ``pe_campaign.PeCampaignInputs`` with the graph's golden
    tensors and its fold-by-fold nodes."""

    KIND: ClassVar[bytes] = b"graph-pe"

    def golden(self) -> GraphPeGolden:
        values, _ = protected_graph_tensors(self.pnet, self.x)
        return GraphPeGolden(values, classify(values[self.pnet.net.output]), self.labels)

    def fault_free_classes(self) -> I64:
        return self.golden().classes

    def _classes(self, state: GraphPeGolden, fault: PeFault) -> I64:
        g = self.pnet.net
        if fault.is_permanent:
            return classify(graph_accelerator_logits(self.schedule, self.pnet, self.x,
                                                     fault=fault))  # fmt: skip
        k = fold_at(self.schedule, self.report, fault.cycle)
        if k < 0:
            return state.classes
        ls = self.schedule.layers[k]
        nd = g.nodes[ls.layer]
        y = node_outputs(ls, self.schedule.arch.pe_array, self.pnet,
                         state.values[nd.inputs[0]], fault, self.report.fold_starts[k])  # fmt: skip
        if np.array_equal(y, state.values[nd.output]):
            return state.classes
        values = dict(state.values)
        values[nd.output] = y
        for i in range(ls.layer + 1, len(g.nodes)):
            node = g.nodes[i]
            ins = [values[t] for t in node.inputs]
            values[node.output] = protect_output(self.pnet, i, node, ins,
                                                 run_node(g, node, ins))[0]  # fmt: skip
        return classify(values[g.output])
