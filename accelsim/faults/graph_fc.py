"""A changed FULLY_CONNECTED computed from its changed inputs alone, exactly.

A fault that reaches a fully connected layer usually changes few of its inputs per image. The
fault-free raw accumulators ``W x`` (the int8 codes; the input offset is left to
``offset_bias`` as in ``graph_kernels``) are kept per node, int32; each changed image adds
``(x_new - x_old)[f] W[:, f]`` over its own changed inputs f (``kernels_fc``), then
requantises as the node does (TFLite's fixed point or XNNPACK's fp32), in the same kernel.
When more than ``DENSE_SHARE`` of the images' inputs changed the node runs whole (BLAS).
Results equal ``run_node`` (tests).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.faults import kernels_fc
from accelsim.faults.code_check import requant_records
from accelsim.faults.graph_boxes import GraphGolden
from accelsim.functional import kernels
from accelsim.functional.graph import Graph, Node

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]

# Above this share of changed inputs (over all the rows) the node runs whole on BLAS. AlexNet's
# fc1 (3,072 x 512) sees a median 1.7 % per image; replayed calls from 60 faults x 1,000 images
# (one thread, Zen 4) took 0.16-0.18 s against 1.62-1.73 s whole below 5 %, 0.031-0.034 s
# against 0.074-0.082 s at 10-20 %: the two would meet near 40 % (docs/campaigns.md).
DENSE_SHARE = 0.3
# Fault-free accumulators kept per process, all fully connected nodes together.
FC_ACC_BUDGET = 1 << 30
# The int32 sums of ``kernels_fc`` hold any accumulator of int8 codes below this many inputs.
MAX_INPUTS = 1 << 17


def fc_prep(g: Graph, nd: Node, state: GraphGolden) -> tuple | None:
    """FULLY_CONNECTED ``nd``'s fault-free raw accumulators (N, O) int32, its weights
    transposed (F, O) and its requantisation records (``kernels_fc``), made once
    (``GraphCampaignInputs.golden``, before workers fork); None past ``FC_ACC_BUDGET`` or
    ``MAX_INPUTS``."""
    if nd.name in state._fc:
        return state._fc[nd.name]
    x = state.values[nd.inputs[0]]
    n, (o, f) = len(x), nd.weight.shape
    used = sum(r[0].nbytes for r in state._fc.values() if r is not None)
    if used + 4 * n * o > FC_ACC_BUDGET or f >= MAX_INPUTS:
        state._fc[nd.name] = None
        return None
    wm = g.params[nd.name]["weight_matrix"]
    acc0 = np.empty((n, o), np.int32)
    for s in range(0, n, 1024):
        xs = x[s : s + 1024].reshape(-1, wm.shape[0]).astype(np.float32)
        acc0[s : s + 1024] = kernels.exact_matmul(wm.T, xs.T).T
    state._fc[nd.name] = (acc0, np.ascontiguousarray(nd.weight.T), *requant_records(g, nd))
    return state._fc[nd.name]


def _words(x: I8) -> npt.NDArray[np.uint64]:
    """Rows of int8 (R, F) as uint64 words, zero-padded to a multiple of 8 values."""
    pad = -x.shape[1] % 8
    if pad:
        x = np.concatenate([x, np.zeros((len(x), pad), np.int8)], axis=1)
    return x.view(np.uint64)


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
    acc0, weight_t, rq, q = prep
    out = np.empty((len(images), nd.weight.shape[0]), np.int8)
    kernels_fc.sparse_fc_kernel((_words(x_new), _words(x_old)), x_new, x_old, weight_t, acc0,
                                np.asarray(images, np.int64), rq, q, out)  # fmt: skip
    return out
