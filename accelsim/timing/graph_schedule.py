"""Compute cycles of graph networks on the PE array, lowered the way SCALE-Sim v3 lowers them.

CONV_2D and FULLY_CONNECTED are one GEMM each (``schedule.Gemm``: M output pixels, N output
channels, K = Cin * KH * KW), as for chains. DEPTHWISE_CONV_2D is what SCALE-Sim v3 does with a
``DP`` topology row: one convolution per input channel, each with one input channel and
``depth_multiplier`` filters (M output pixels, N = dm, K = KH * KW), run one after another.
The other ops take no array cycles: they run on the activation unit between two array
layers, one element operation per lane per cycle, one lane per array column (the chain's
pooling convention): ADD reads two operands per output (2 x outputs), a pool reads its window
(outputs x KH x KW), MEAN its input (H x W per channel), a requantising CONCATENATION its
requantised parts; PAD, RESHAPE and a CONCATENATION of equally quantised parts are addressing
only (no cycles, no transfers). ``schedule_graph`` gives the whole graph as a ``Schedule`` for
the SimPy model (``timing.accelerator``), protected neurons included as for chains; a tensor
still awaiting a later reader while a node runs (a residual block's skip tensor) is that
node's ``held_bytes``, part of the memory footprint.

``graph_topology_csv`` writes the SCALE-Sim topology of a graph's weighted nodes. SCALE-Sim has
no padding field and computes ``ceil((H - K + S) / S)`` output rows on the input it is given, so
each row gives the padded input cropped to ``(O - 1) S + K``: exactly O outputs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.config.arch import ArchSpec, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.functional.graph import Graph, Node
from accelsim.timing.schedule import (
    ACC_BYTES,
    Gemm,
    LayerSchedule,
    Schedule,
    check_copies_fit,
    fold_map,
    gemm_schedule,
    unit_schedule,
)

I64 = npt.NDArray[np.int64]


def node_gemms(g: Graph, node: Node) -> list[Gemm]:
    """The GEMMs a node lowers to, in execution order (empty for non-weighted ops)."""
    out = g.tensors[node.output].shape
    if node.op == "CONV_2D":
        return [Gemm(out[1] * out[2], node.weight.shape[0], int(np.prod(node.weight.shape[1:])))]
    if node.op == "FULLY_CONNECTED":
        return [Gemm(1, node.weight.shape[0], int(node.weight.shape[1]))]
    if node.op == "DEPTHWISE_CONV_2D":
        channels = g.tensors[node.inputs[0]].shape[0]
        dm = node.attr("depth_multiplier", 1)
        k = int(np.prod(node.weight.shape[1:]))
        return [Gemm(out[1] * out[2], dm, k) for _ in range(channels)]
    return []


def graph_compute_cycles(g: Graph, pe: PEArraySpec) -> dict[str, int]:
    """Compute cycles of every weighted node (SCALE-Sim v3's count: folds x cycles per fold,
    each GEMM of a depthwise node counted on its own)."""
    return {
        n.name: sum(fold_map(gemm, pe).cycles for gemm in node_gemms(g, n))
        for n in g.nodes
        if node_gemms(g, n)
    }


def graph_topology_csv(g: Graph) -> str:
    """SCALE-Sim v3's topology CSV of the weighted nodes; depthwise rows are named ``<node>_DP``
    (SCALE-Sim splits a row whose name holds ``DP`` into one layer per channel)."""
    rows = [
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,"
    ]
    for n in g.nodes:
        if n.op == "FULLY_CONNECTED":
            rows.append(f"{n.name}, 1, 1, 1, 1, {n.weight.shape[1]}, {n.weight.shape[0]}, 1,")
        elif n.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            c = g.tensors[n.inputs[0]].shape[0]
            _, oh, ow = g.tensors[n.output].shape
            kh, kw = n.weight.shape[-2:]
            s = n.attr("stride", 1)
            ih, iw = (oh - 1) * s + kh, (ow - 1) * s + kw
            if n.op == "CONV_2D":
                rows.append(f"{n.name}, {ih}, {iw}, {kh}, {kw}, {c}, {n.weight.shape[0]}, {s},")
            else:
                dm = n.attr("depth_multiplier", 1)
                rows.append(f"{n.name}_DP, {ih}, {iw}, {kh}, {kw}, {c}, {dm}, {s},")
    return "\n".join(rows) + "\n"


def _size(g: Graph, t: str) -> int:
    return int(np.prod(g.tensors[t].shape))


def _same_quant(g: Graph, a: str, b: str) -> bool:
    ta, tb = g.tensors[a], g.tensors[b]
    return (np.float32(ta.scale), ta.zero_point) == (np.float32(tb.scale), tb.zero_point)


def unit_work(g: Graph, nd: Node) -> tuple[int, int, int]:
    """(element operations on the activation unit, bytes read, bytes written) of a non-weighted
    node."""
    out = _size(g, nd.output)
    if nd.op == "ADD":
        return 2 * out, sum(_size(g, t) for t in nd.inputs), out
    if nd.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        kh, kw = nd.attr("size")
        return out * kh * kw, _size(g, nd.inputs[0]), out
    if nd.op == "MEAN":
        return _size(g, nd.inputs[0]), _size(g, nd.inputs[0]), out
    if nd.op == "CONCATENATION":
        moved = sum(_size(g, t) for t in nd.inputs if not _same_quant(g, t, nd.output))
        return moved, moved, moved
    return 0, 0, 0  # PAD, RESHAPE: addressing


def held_bytes(g: Graph) -> list[int]:
    """Per node, the bytes of earlier tensors (the input included) that a later node still
    reads and this node does not: a residual block's skip tensor while the block runs."""
    last: dict[str, int] = {}
    for i, nd in enumerate(g.nodes):
        for t in nd.inputs:
            last[t] = i
    born = {g.input: -1, **{nd.output: i for i, nd in enumerate(g.nodes)}}
    return [
        sum(_size(g, t) for t, b in born.items()
            if b < i and last.get(t, -1) > i and t not in nd.inputs)
        for i, nd in enumerate(g.nodes)
    ]  # fmt: skip


def schedule_graph(
    g: Graph, arch: ArchSpec, *, protected: dict[int, I64] | None = None,
    extra_copies: int = 0, mode: ProtectionMode = ProtectionMode.NONE,
) -> Schedule:  # fmt: skip
    """Every node of ``g`` on ``arch``, in topological order: weighted nodes as folds on the
    array (a depthwise node's per-channel GEMMs one after another), the others on the
    activation unit (``unit_work``); ``protected`` maps node index -> protected neurons."""
    protected = protected or {}
    pe = arch.pe_array
    check_copies_fit(arch, extra_copies)
    held = held_bytes(g)
    layers: list[LayerSchedule] = []
    for i, nd in enumerate(g.nodes):
        gemms = node_gemms(g, nd)
        if gemms:
            sizes = (_size(g, nd.inputs[0]), int(nd.weight.size + ACC_BYTES * nd.bias.size),
                     _size(g, nd.output))  # fmt: skip
            layers.append(gemm_schedule(i, nd.name, gemms[0], pe, protected.get(i),
                                        extra_copies, sizes, groups=len(gemms),
                                        held_bytes=held[i]))  # fmt: skip
            continue
        work, read, written = unit_work(g, nd)
        if work == 0 and read == 0:
            continue
        layers.append(unit_schedule(i, nd.name, read, written, -(-work // pe.cols), held[i]))
    return Schedule(arch, g.name, mode, extra_copies, tuple(layers))
