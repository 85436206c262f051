"""A changed FULLY_CONNECTED computed from its changed inputs alone, exactly.

A fault that reaches a fully connected layer usually changes few of its inputs per image. The
fault-free raw accumulators ``W x`` (the int8 codes; the input offset is left to
``offset_bias`` as in ``graph_kernels``) are kept per node; each changed image adds ``(x_new -
x_old)[f] W[:, f]`` over its own changed inputs f in int64 (``kernels_fc``), then requantises
as the node does (TFLite's fixed point or XNNPACK's fp32). When more than ``DENSE_SHARE`` of
the images' inputs changed the node runs whole (BLAS). Results equal ``run_node`` (tests).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.faults import kernels_fc
from accelsim.faults.graph_boxes import GraphGolden
from accelsim.functional import kernels
from accelsim.functional.graph import Graph, Node
from accelsim.functional.graph_kernels import requantize

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

# Above this share of changed inputs (over all the rows) the node runs whole on BLAS. A setting,
# not tuned: AlexNet's fc1 sees a median 1.7 % per image (docs/campaigns.md).
DENSE_SHARE = 0.05
# Fault-free accumulators kept per process, all fully connected nodes together.
FC_ACC_BUDGET = 1 << 30


def fc_prep(g: Graph, nd: Node, state: GraphGolden) -> tuple[I64, I8] | None:
    """FULLY_CONNECTED ``nd``'s fault-free raw accumulators (N, O) int64 and its weights
    transposed (F, O), made once (``GraphCampaignInputs.golden``, before workers fork); None
    past ``FC_ACC_BUDGET``."""
    if nd.name in state._fc:
        return state._fc[nd.name]
    x = state.values[nd.inputs[0]]
    n, o = len(x), nd.weight.shape[0]
    used = sum(r[0].nbytes for r in state._fc.values() if r is not None)
    if used + 8 * n * o > FC_ACC_BUDGET:
        state._fc[nd.name] = None
        return None
    wm = g.params[nd.name]["weight_matrix"]
    acc0 = np.empty((n, o), np.int64)
    for s in range(0, n, 1024):
        xs = x[s : s + 1024].reshape(-1, wm.shape[0]).astype(np.float32)
        acc0[s : s + 1024] = kernels.exact_matmul(wm.T, xs.T).T
    state._fc[nd.name] = (acc0, np.ascontiguousarray(nd.weight.T))
    return state._fc[nd.name]


def fc_delta(g: Graph, nd: Node, state: GraphGolden, images: I64, x_new: I8) -> I8 | None:
    """The outputs of FULLY_CONNECTED ``nd`` on ``images`` whose inputs are now ``x_new``
    (rows, ...), from the fault-free accumulators and each row's changed inputs; None when
    too many inputs changed (or the accumulators are past the budget): run the node whole."""
    x_old = state.values[nd.inputs[0]][images].reshape(len(images), -1)
    x_new = np.ascontiguousarray(x_new.reshape(len(images), -1))
    if np.count_nonzero(x_new != x_old) > DENSE_SHARE * x_old.size:
        return None
    prep = fc_prep(g, nd, state)
    if prep is None:
        return None
    acc = np.empty((len(images), nd.weight.shape[0]), np.int64)
    kernels_fc.sparse_fc_kernel(x_new, x_old, prep[1], prep[0], np.asarray(images, np.int64),
                                acc)  # fmt: skip
    p = g.params[nd.name]
    out = requantize(acc.T[:, :, None], p["offset_bias"], p.get("multiplier"), p.get("shift"),
                     g.tensors[nd.output].zero_point, p["act_range"])  # fmt: skip
    return out[:, :, 0]
