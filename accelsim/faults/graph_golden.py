"""The fault-free state of graph campaigns that the box kernels start from: every tensor of the
unprotected graph and each reachable CONV_2D's raw accumulators, from one pass of the engine's
own GEMMs (``golden_pass``), or made on first use (``golden_acc``); and the box kernels loaded
before workers fork (``warm_box_kernels``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from accelsim.functional import graph_kernels
from accelsim.functional.graph import Graph, Node, run_node
from accelsim.functional.graph_kernels import requantize

if TYPE_CHECKING:
    from accelsim.faults.graph_boxes import GraphGolden

I8 = npt.NDArray[np.int8]

# Bytes per process of fault-free accumulators the sparse kernel starts from (AlexNet after
# conv1: 0.28 MB/image, 10,000 images fit; ResNet-20 after the stem: 0.74 MB, ~4,300 images);
# convolutions past the budget take the GEMM path.
ACC_BUDGET = 3 << 30


def _acc_fits(g: Graph, nd: Node, n: int, used: int) -> bool:
    o, oh, ow = g.tensors[nd.output].shape
    return used + 4 * n * o * oh * ow <= ACC_BUDGET


def _batch_acc(g: Graph, nd: Node, x: I8) -> np.ndarray:
    """Raw accumulators (O, n, OH * OW) of CONV_2D ``nd`` on its input ``x``, the graph
    engine's own GEMM."""
    return graph_kernels.conv2d_acc(
        x, nd.weight, g.params[nd.name]["weight_matrix"], stride=nd.attr("stride", 1),
        padding=tuple(nd.attr("padding", (0, 0, 0, 0))),
        input_zero_point=g.tensors[nd.inputs[0]].zero_point,
    )  # fmt: skip


def _channels_last_acc(acc: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Channel-major accumulators (O, n, OH * OW) as (n, OH, OW, O)."""
    _, oh, ow, o = shape
    return acc.reshape(o, -1, oh, ow).transpose(1, 2, 3, 0)


def golden_pass(g: Graph, x: I8, convs: frozenset[str],
                batch: int = 256) -> tuple[dict[str, I8], dict[str, np.ndarray]]:  # fmt: skip
    """Every tensor of the unprotected graph on ``x``, batch by batch, and the raw
    accumulators (N, OH, OW, O) int32 of the CONV_2D nodes in ``convs`` (those a fault can
    reach) within ``ACC_BUDGET``, from the same GEMM that gives their outputs."""
    n = len(x)
    values = {g.input: x, **{nd.output: np.empty((n, *g.tensors[nd.output].shape), np.int8)
                             for nd in g.nodes}}  # fmt: skip
    accs: dict[str, np.ndarray] = {}
    for nd in g.nodes:
        used = sum(a.nbytes for a in accs.values())
        if nd.op == "CONV_2D" and nd.name in convs and _acc_fits(g, nd, n, used):
            o, oh, ow = g.tensors[nd.output].shape
            accs[nd.name] = np.empty((n, oh, ow, o), np.int32)
    for s in range(0, n, batch):
        e = min(s + batch, n)
        for nd in g.nodes:
            ins = [values[t][s:e] for t in nd.inputs]
            if nd.name in accs:
                p = g.params[nd.name]
                acc = _batch_acc(g, nd, ins[0])
                y = requantize(acc, p["offset_bias"], p.get("multiplier"), p.get("shift"),
                               g.tensors[nd.output].zero_point, p["act_range"])  # fmt: skip
                accs[nd.name][s:e] = _channels_last_acc(acc, accs[nd.name].shape)
                values[nd.output][s:e] = y.reshape(e - s, *g.tensors[nd.output].shape)
            else:
                values[nd.output][s:e] = run_node(g, nd, ins)
    return values, accs


def golden_acc(g: Graph, nd: Node, state: GraphGolden) -> npt.NDArray[np.int32] | None:
    """The fault-free raw accumulators (N, OH, OW, O) of CONV_2D ``nd``, made on first use;
    None past ``ACC_BUDGET``."""
    if nd.name in state._acc:
        return state._acc[nd.name]
    x = state.values[nd.inputs[0]]
    used = sum(a.nbytes for a in state._acc.values() if a is not None)
    if not _acc_fits(g, nd, len(x), used):
        state._acc[nd.name] = None
        return None
    o, oh, ow = g.tensors[nd.output].shape
    out = np.empty((len(x), oh, ow, o), np.int32)
    for s in range(0, len(x), 256):
        out[s : s + 256] = _channels_last_acc(_batch_acc(g, nd, x[s : s + 256]), out.shape)
    state._acc[nd.name] = out
    return out


def warm_box_kernels() -> None:
    """Load every box kernel (the sparse one for each weight and sum type) from numba's cache
    in this process, on one-element arrays of the campaign's types: forked workers then share
    the loaded code instead of each loading it. Without it a first round of 40 ResNet-20 faults
    on two workers ran 3,796 pairs/s against 4,497-4,521 in the next two; with it 4,106-4,171
    against 3,969-5,090 (within the machine's noise)."""
    from accelsim.faults import kernels_boxes as kb
    from accelsim.faults.code_check import CODE_CHECK
    from accelsim.faults.kernels_pool import pool_box_kernel, pool_cl_kernel

    one8 = np.zeros((1, 1, 1, 1), np.int8)
    i1 = np.zeros(1, np.int64)
    box = np.zeros(8, np.int64)
    conv = np.array([1, 1, 1, 0, 0, 0], np.int64)
    counts, bbox = np.zeros((1, 2), np.int64), np.zeros(4, np.int64)
    kb.read_overlay_kernel(one8, i1, i1, one8, box, one8.copy())
    kb.gather_columns_kernel(one8, i1, i1, one8, box, conv, np.zeros((1, 1), np.float32))
    kb.count_changes_kernel(one8, i1, i1, one8, box, counts)
    kb.compare_box_kernel(one8, one8, i1, box, counts, bbox)
    pool_box_kernel(one8, one8, i1, i1, one8, box, np.array([1, 1, 1, 0, 0, 0, -128, 127]),
                    one8.copy(), counts, bbox)  # fmt: skip
    pool_cl_kernel(one8, one8, one8, i1, box, np.array([1, 1, 1, 0, 0, 0, -128, 127]),
                   one8.copy(), counts, bbox)  # fmt: skip
    rq = (i1, i1, i1, i1, np.zeros(1, np.float32), np.zeros((1, 257), np.int64))
    for dtype in (np.float32, np.int32):
        for w_dtype in (dtype, np.int8):
            kb.sparse_conv_kernel(
                (one8, np.zeros((1, 1, 1, 1), np.int32), one8), i1, i1, one8, box, conv,
                np.zeros((1, 1, 1, 1), w_dtype), np.zeros((1, 1, 1), dtype), rq,
                np.array([0, 0, -128, 127, int(CODE_CHECK)], np.int64),
                (one8.copy(), counts, bbox, kb.NO_ACC),
            )  # fmt: skip
