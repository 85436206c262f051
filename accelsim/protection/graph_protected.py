"""Protection on graph networks: the copies of a protected neuron and how they are merged, in
TFLite's asymmetric scheme (``protected.py`` is the chain version; DESIGN.md section 4).

A protected network is a ``ProtectedNetwork`` whose ``net`` is a ``Graph``; plans are keyed by
node index. Per protected neuron of a node with output zero point zp and activation clamp
[lo, hi], on its code relative to zp (``lcu.relative_code``):

- split / split_clamped: two halves, each the node's output computed with half its multiplier
  (the shift minus one in fixed point, the fp32 scale times 0.5 in ``xnnpack`` mode) and the
  clamp of the halved tensor (RELU: [zp, 127]; RELU6: up to zp + round(3 / s)); split_clamped
  clamps each half at ``half_bits(zp, hi)`` above zp. The next node sees
  ``zp + 2 lcu_zp(a, b)`` (clamped to [lo, hi]). Only neurons whose activation clamps at the
  zero point, with zp -128 (what TFLite's converter writes for RELU / RELU6) or 0 (a chain),
  can be split: there a stored bit flip is a flip of the same relative bit.
- tmr: the bitwise majority of three copies of the code.
- dmr_and: ``zp + (r_a & r_b)`` (the AND on relative codes; at zp 0 the chain's ``a & b``).
- dmr_recompute: on a mismatch the neuron is recomputed (fault-free).
- ranger / zero: one copy clamped to the node's profiled code range, or replaced by zp (the
  real value 0) outside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import ProtectionMode
from accelsim.errors import AccelsimError
from accelsim.functional.graph import Graph, Node, run_graph, run_node
from accelsim.functional.graph_kernels import requantize
from accelsim.functional.graph_ref import quantized_activation_range
from accelsim.functional.models import neuron_layers
from accelsim.functional.network import classify
from accelsim.protection import dmr, ranger
from accelsim.protection.lcu import half_bits, lcu_zp, relative_code
from accelsim.protection.plan import EXTRA_COPIES, SPLITS
from accelsim.protection.vote import vote

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
Box = tuple[int, int, int, int]
Hit = tuple[int, int, Callable[[I8], I8]]  # (flat neuron index, copy, what the fault does)
SPLIT_ZERO_POINTS = (-128, 0)


def split_refusal(g: Graph, i: int) -> str | None:
    """Why node ``i``'s neurons cannot be split (None when they can)."""
    nd = g.nodes[i]
    zp = g.tensors[nd.output].zero_point
    lo, _ = g.params[nd.name]["act_range"]
    act = nd.attr("activation", "none")
    if lo != zp:
        return (
            f"its activation ({act}) does not clamp at the zero point {zp} (lowest code {lo}): "
            "the halves could be negative, and the LCU needs values above the zero point"
        )
    if zp not in SPLIT_ZERO_POINTS:
        return (
            f"its zero point is {zp}: the LCU works on codes relative to the zero point, and "
            "only at zero point -128 or 0 is a stored bit flip a flip of the same relative bit"
        )
    return None


def half_params(g: Graph, nd: Node) -> dict[str, Any]:
    """The node's params for one half of a split neuron: half the multiplier, the halved
    tensor's activation clamp."""
    p = dict(g.params[nd.name])
    out = g.tensors[nd.output]
    if p["shift"] is not None:
        p["shift"] = p["shift"] - 1
    else:
        p["multiplier"] = (p["multiplier"] * np.float32(0.5)).astype(p["multiplier"].dtype)
    p["act_range"] = quantized_activation_range(
        nd.attr("activation", "none"), float(np.float32(out.scale) * 2), out.zero_point
    )
    return p


def _code_range(g: Graph, i: int) -> tuple[int, int, int]:
    nd = g.nodes[i]
    lo, hi = g.params[nd.name]["act_range"]
    return g.tensors[nd.output].zero_point, lo, hi


def local_columns(index: I64, shape: tuple[int, ...], box: Box | None) -> tuple[I64, I64]:
    """Positions (in ``index``) of the protected neurons inside ``box`` of a feature map of
    ``shape`` (all of them when box is None), and their flat positions in the box's output."""
    if box is None or len(shape) != 3:
        return np.arange(index.size), index
    c, yy, xx = np.unravel_index(index, shape)
    y0, y1, x0, x1 = box
    inside = np.flatnonzero((yy >= y0) & (yy <= y1) & (xx >= x0) & (xx <= x1))
    bh, bw = y1 - y0 + 1, x1 - x0 + 1
    local = c[inside] * (bh * bw) + (yy[inside] - y0) * bw + (xx[inside] - x0)
    return inside, local.astype(np.int64)


def cap_halves(pnet, i: int, half: I8) -> I8:
    """split_clamped: node ``i``'s halves capped at ``half_bits`` above the zero point, so that
    the top relative bit stays 0 fault-free (other modes: unchanged)."""
    if pnet.plan.mode is not ProtectionMode.SPLIT_CLAMPED:
        return half
    zp, _, hi = _code_range(pnet.net, i)
    return np.minimum(half, zp + half_bits(zp, hi)).astype(np.int8)


def node_copies(pnet, i: int, nd: Node, ins: Sequence[I8], y: I8, cols: I64) -> list[I8]:
    """The copies (N, n) of the protected neurons at flat positions ``cols`` of output ``y``
    (computed by ``nd`` on ``ins``: the node itself, or its region version)."""
    g, mode = pnet.net, pnet.plan.mode
    n = len(y)
    if mode in SPLITS:
        half = run_node(g, nd, ins, params=half_params(g, g.nodes[i])).reshape(n, -1)[:, cols]
        half = cap_halves(pnet, i, half)
        return [half, half.copy()]
    plain = y.reshape(n, -1)[:, cols]
    return [plain.copy() for _ in range(1 + EXTRA_COPIES[mode])]


def merge_node_copies(pnet, i: int, copies: list[I8], plain: I8) -> I8:
    """What the next node sees of the copies (N, n) of node ``i``'s protected neurons;
    ``plain``: their fault-free value (dmr_recompute's recomputation)."""
    g, mode = pnet.net, pnet.plan.mode
    zp, lo, hi = _code_range(g, i)
    if mode in SPLITS:
        r = relative_code(lcu_zp(copies[0], copies[1], zp, half_bits(zp, hi)), zp)
        return np.clip(zp + 2 * r, lo, hi).astype(np.int8)
    if mode is ProtectionMode.TMR:
        return vote(*copies)
    if mode is ProtectionMode.DMR_AND:
        r = relative_code(copies[0], zp) & relative_code(copies[1], zp)
        return ((r + zp + 128) % 256 - 128).astype(np.int8)
    if mode is ProtectionMode.DMR_RECOMPUTE:
        return dmr.merge_recompute(copies[0], copies[1], plain)
    r_lo, r_hi = pnet.ranges[i]
    if mode is ProtectionMode.RANGER:
        return ranger.merge_clamp(copies[0], r_lo, r_hi)
    return ranger.merge_zero(copies[0], r_lo, r_hi, zp)


def protect_output(
    pnet,
    i: int,
    nd: Node,
    ins: Sequence[I8],
    y: I8,
    *,
    box: Box | None = None,
    fault: Hit | None = None,
) -> tuple[I8, I8 | None]:
    """Node ``i``'s output as the next node sees it: ``y`` (computed by ``nd`` on ``ins``; a
    region ``box`` of the feature map when given) with its protected neurons merged, and a
    fault ``(index, copy, apply)`` in one copy of one neuron (``apply`` maps the copy's values
    to the faulty ones). Returns the merged output and the protected neurons' copy 0 before
    the merge (None without protection)."""
    index = pnet.plan.for_layer(i)
    shape = tuple(pnet.net.tensors[pnet.net.nodes[i].output].shape)
    out = y.copy()
    flat = out.reshape(len(y), -1)
    pre = None
    hit_protected = False
    if index is not None and pnet.plan.mode is not ProtectionMode.NONE:
        which, cols = local_columns(index, shape, box)
        copies = node_copies(pnet, i, nd, ins, y, cols)
        pre = copies[0].copy()
        if fault is not None:
            pos = np.searchsorted(index[which], fault[0])
            if pos < which.size and index[which][pos] == fault[0]:
                hit_protected = True
                c = fault[1]
                copies[c][:, pos] = fault[2](copies[c][:, pos])
        flat[:, cols] = merge_node_copies(pnet, i, copies, y.reshape(len(y), -1)[:, cols])
    if fault is not None and not hit_protected:
        flat[:, fault[0]] = fault[2](flat[:, fault[0]])
    return out, pre


# Modes whose fault-free copies merge to the plain value (TMR's vote of three equal codes, DMR's
# AND or comparison of two equal codes): downstream of a fault, where none of a node's copies is
# hit, their nodes compute exactly what the unprotected node does (a test holds every code).
PLAIN_MERGES = (
    ProtectionMode.NONE, ProtectionMode.TMR, ProtectionMode.DMR_AND, ProtectionMode.DMR_RECOMPUTE,
)  # fmt: skip
_PER_CHANNEL = ("offset_bias", "multiplier", "shift")


def channel_node(nd: Node, chs: I64, params: Mapping[str, Any]) -> tuple[Node, dict[str, Any]]:
    """CONV_2D or FULLY_CONNECTED ``nd`` restricted to its output channels ``chs``, and
    ``params`` (the node's, or a split half's) sliced alike."""
    o = nd.weight.shape[0]
    p = dict(params)
    for k in _PER_CHANNEL:
        if p.get(k) is not None and np.ndim(p[k]) == 1 and len(p[k]) == o:
            p[k] = np.asarray(p[k])[chs]
    p["weight_matrix"] = np.ascontiguousarray(params["weight_matrix"][:, chs])
    scale = nd.weight_scale
    if scale is not None and scale.size == o:
        scale = scale[chs]
    bias = None if nd.bias is None else nd.bias[chs]
    return dataclasses.replace(nd, weight=nd.weight[chs], bias=bias, weight_scale=scale), p


def merge_fault_free(
    pnet, i: int, nd: Node, y: I8, box: Box | None, inputs: Callable[[], Sequence[I8]],
    *, acc: np.ndarray | None = None,
) -> I8:  # fmt: skip
    """``protect_output`` without a fault in node ``i``, for the campaign's changed regions:
    ``y`` (node ``i``'s plain output, over ``box`` of the feature map when given, computed by
    ``nd`` on ``inputs()``) with its protected neurons merged from their fault-free copies.
    Unchanged in ``PLAIN_MERGES``; ranger and zero merge ``y`` itself; a split requantises its
    halves from ``acc`` (the raw accumulators (O, N, box pixels) of a CONV_2D) when given, else
    recomputes them for the output channels that hold protected neurons only (the whole node
    for a depthwise convolution, whose channels read their own input channels)."""
    index = pnet.plan.for_layer(i)
    if index is None or pnet.plan.mode in PLAIN_MERGES:
        return y
    g = pnet.net
    _, cols = local_columns(index, tuple(g.tensors[g.nodes[i].output].shape), box)
    if cols.size == 0:
        return y
    out = y.copy()
    flat = out.reshape(len(y), -1)
    if pnet.plan.mode not in SPLITS:
        copies = [flat[:, cols].copy()]
    elif acc is not None:
        per = acc.shape[2]
        ch = cols // per
        p = half_params(g, g.nodes[i])
        sliced = [None if p.get(k) is None else np.asarray(p[k])[ch] for k in _PER_CHANNEL]
        moved = np.asarray(acc[ch, :, cols % per], np.float64)[:, :, None]  # (n_cols, N, 1)
        half = requantize(moved, *sliced, g.tensors[nd.output].zero_point, p["act_range"])
        half = cap_halves(pnet, i, half[:, :, 0])
        copies = [half, half.copy()]
    elif nd.op in ("CONV_2D", "FULLY_CONNECTED"):
        per = flat.shape[1] // nd.weight.shape[0]  # values per output channel
        chs, at = np.unique(cols // per, return_inverse=True)
        sub, params = channel_node(nd, chs, half_params(g, g.nodes[i]))
        half = run_node(g, sub, inputs(), params=params).reshape(len(y), -1)
        half = cap_halves(pnet, i, half[:, at * per + cols % per])
        copies = [half, half.copy()]
    else:
        copies = node_copies(pnet, i, nd, inputs(), y, cols)
    flat[:, cols] = merge_node_copies(pnet, i, copies, flat[:, cols])
    return out


def protected_graph_values(
    pnet, x: I8, *, fault: tuple[int, int, int, Callable[[I8], I8]] | None = None,
    reference: bool = False,
) -> tuple[dict[str, I8], dict[int, I8]]:  # fmt: skip
    """Every tensor of the protected graph on int8 inputs ``x`` (the input included) and, per
    protected node, its protected neurons' copy 0 before the merge; ``fault``: (node, index,
    copy, apply) applied where it lands. Node by node on whole tensors: the reference the
    campaign engine's incremental path is tested against."""
    g = pnet.net
    values: dict[str, I8] = {g.input: x}
    pre: dict[int, I8] = {}
    for i, nd in enumerate(g.nodes):
        ins = [values[t] for t in nd.inputs]
        y = run_node(g, nd, ins, reference=reference)
        here = fault[1:] if fault is not None and fault[0] == i else None
        y, p = protect_output(pnet, i, nd, ins, y, fault=here)
        if p is not None:
            pre[i] = p
        values[nd.output] = y
    return values, pre


def protected_graph_tensors(
    pnet, x: I8, *, batch_size: int = 256
) -> tuple[dict[str, I8], dict[int, I8]]:
    """``protected_graph_values`` of the fault-free network, ``batch_size`` images at a time
    into arrays made once: the same tensors, without whole-test-set temporaries (a
    convolution's float32 im2col of 10,000 AlexNet images is 5.9 GB, conv4's 10,000 x 64
    positions x 2,304 taps; at 256 images 0.15 GB)."""
    n = len(x)
    if n <= batch_size:
        return protected_graph_values(pnet, x)
    values: dict[str, I8] = {}
    pre: dict[int, I8] = {}
    for start in range(0, n, batch_size):
        part, part_pre = protected_graph_values(pnet, x[start : start + batch_size])
        for out, got in ((values, part), (pre, part_pre)):
            for key, a in got.items():
                if key not in out:
                    out[key] = np.empty((n, *a.shape[1:]), a.dtype)
                out[key][start : start + len(a)] = a
    values[pnet.net.input] = x
    return values, pre


def protected_graph_classes(pnet, x: I8, **kwargs: Any) -> I64:
    values, _ = protected_graph_values(pnet, x, **kwargs)
    return classify(values[pnet.net.output])


def graph_ranges(g: Graph, x: I8) -> dict[int, tuple[int, int]]:
    """Per neuron node, the (min, max) code of its output over the profiling inputs x."""
    wanted = {g.nodes[i].output: i for i in neuron_layers(g)}
    values = run_graph(g, x, keep=lambda t: t in wanted)
    return {wanted[t]: (int(v.min()), int(v.max())) for t, v in values.items() if t in wanted}


def check_split_nodes(g: Graph, nodes: Mapping[int, Any]) -> None:
    """Refuse a split on any node of ``nodes`` whose neurons cannot be split (one line naming
    the model file, the node and the tensor)."""
    for i in nodes:
        why = split_refusal(g, i)
        if why is not None:
            nd = g.nodes[i]
            raise AccelsimError(
                f"{g.source}: node {nd.name}, tensor {nd.output}: cannot split its neurons: {why}"
            )
