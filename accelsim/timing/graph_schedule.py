"""Compute cycles of graph networks on the PE array, lowered the way SCALE-Sim v3 lowers them.

CONV_2D and FULLY_CONNECTED are one GEMM each (``schedule.Gemm``: M output pixels, N output
channels, K = Cin * KH * KW), as for chains. DEPTHWISE_CONV_2D is what SCALE-Sim v3 does with a
``DP`` topology row: one convolution per input channel, each with one input channel and
``depth_multiplier`` filters (M output pixels, N = dm, K = KH * KW), run one after another.
The other ops (ADD, pools, MEAN, CONCATENATION, PAD, RESHAPE) take no array cycles: they run
on the activation unit (not modelled in cycles yet).

``graph_topology_csv`` writes the SCALE-Sim topology of a graph's weighted nodes. SCALE-Sim has
no padding field and computes ``ceil((H - K + S) / S)`` output rows on the input it is given, so
each row gives the padded input cropped to ``(O - 1) S + K``: exactly O outputs.
"""

from __future__ import annotations

import numpy as np

from accelsim.config.arch import PEArraySpec
from accelsim.functional.graph import Graph, Node
from accelsim.timing.schedule import Gemm, fold_map


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
