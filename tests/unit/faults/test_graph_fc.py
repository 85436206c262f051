"""A changed FULLY_CONNECTED from the fault-free accumulators and each image's changed inputs:
the kernel equals its numpy reference, the node equals ``run_node``, and whole campaigns that
take this path equal a full re-inference."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.faults import graph_fc
from accelsim.faults.graph_campaign import (
    GraphCampaignInputs,
    sample_graph_faults,
)
from accelsim.faults.kernels_fc import sparse_fc_kernel, sparse_fc_ref
from accelsim.functional import graph_ref
from accelsim.functional.graph import run_node
from tests.unit.faults.test_graph_campaign import faults_equal_full_reinference, wide
from tests.unit.interop.test_graph_tflite_micro import Builder


def _records(rng, n_out: int, fp32: bool) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """``kernels_fc``'s requantisation records: TFLite's fixed point or XNNPACK's fp32 scale."""
    shift = rng.integers(-12, 2, n_out)
    rq = (
        rng.integers(-5000, 5000, n_out),
        rng.integers(2**30, 2**31, n_out),
        np.maximum(shift, 0),
        np.maximum(-shift, 0),
        rng.uniform(1e-4, 1e-2, n_out).astype(np.float32),
    )
    return rq, np.array([fp32, rng.integers(-20, 20), -128 if fp32 else -3, 127], np.int64)


@pytest.mark.parametrize("fp32", [False, True])
@pytest.mark.parametrize(("rows", "n_in", "n_out"), [(1, 1, 1), (7, 300, 13), (40, 3000, 64)])
def test_sparse_fc_kernel_equals_its_reference(rng, rows, n_in, n_out, fp32) -> None:
    x_old = rng.integers(-128, 128, size=(rows, n_in)).astype(np.int8)
    x_new = x_old.copy()
    hit = rng.random((rows, n_in)) < 0.05
    x_new[hit] = rng.integers(-128, 128, size=int(hit.sum())).astype(np.int8)
    x_new[0, 0] = 127 if x_old[0, 0] != 127 else -128  # at least one extreme change
    x_new[-1, -1] = -128 if x_old[-1, -1] != -128 else 127  # and one in the last word
    w = rng.integers(-127, 128, size=(n_in, n_out)).astype(np.int8)
    images = rng.permutation(rows + 3)[:rows].astype(np.int64)
    before = rng.integers(-128, 128, size=(rows + 3, n_in))
    before[images] = x_old
    acc0 = (before @ w.astype(np.int64)).astype(np.int32)  # accumulators of int8 codes
    rq, q = _records(rng, n_out, fp32)
    out = np.empty((rows, n_out), np.int8)
    words = (graph_fc._words(x_new), graph_fc._words(x_old))
    sparse_fc_kernel(words, x_new, x_old, w, acc0, images, rq, q, out)
    np.testing.assert_array_equal(out, sparse_fc_ref(x_new, x_old, w, acc0, images, rq, q))
    # and the reference is the plain definition: the requantised accumulator of the new inputs
    acc = x_new.astype(np.int64) @ w.astype(np.int64) + rq[0]
    zp, lo, hi = (int(v) for v in q[1:])
    scale = (rq[4], None) if fp32 else (rq[1], rq[2] - rq[3])
    np.testing.assert_array_equal(out, graph_ref._finish(acc, *scale, zp, lo, hi))


def test_sparse_fc_kernel_sums_stay_exact_at_the_int32_edge(rng) -> None:
    """Every input at an extreme and changing sign, with one input fewer than ``MAX_INPUTS``:
    the accumulators run from -128 x 127 x n_in to 127 x 127 x n_in (within 1 % of int32's
    range), exact all the way."""
    n_in, n_out = graph_fc.MAX_INPUTS - 1, 16
    x_old = np.full((2, n_in), -128, np.int8)
    x_new = np.full((2, n_in), 127, np.int8)
    x_new[1, ::2] = -128
    w = np.full((n_in, n_out), 127, np.int8)
    w[:, 1::2] = -127
    acc0 = (x_old.astype(np.int64) @ w.astype(np.int64)).astype(np.int32)
    rq = (np.zeros(n_out, np.int64), np.full(n_out, 2**30, np.int64), np.zeros(n_out, np.int64),
          np.full(n_out, 23, np.int64), np.ones(n_out, np.float32))  # fmt: skip
    q = np.array([0, 0, -128, 127], np.int64)
    out = np.empty((2, n_out), np.int8)
    words = (graph_fc._words(x_new), graph_fc._words(x_old))
    sparse_fc_kernel(words, x_new, x_old, w, acc0, np.arange(2), rq, q, out)
    acc = x_new.astype(np.int64) @ w.astype(np.int64)
    np.testing.assert_array_equal(out, graph_ref._finish(acc, rq[1], -rq[3], 0, -128, 127))
    assert np.abs(acc0).max() > 0.99 * 2**31
    assert np.abs(acc).max() > 0.98 * 2**31
    assert np.abs(out).max() > 100  # x 2^30 / 2^31 / 2^23: near 2^31 / 2^24


def _fc_graph(rng, requantization: str):
    b = Builder(rng, (4, 6, 6))
    b.weighted("CONV_2D", "c", "x", (5, 4, 3, 3), (5, 6, 6), padding=(1, 1, 1, 1),
               activation="relu")  # fmt: skip
    b.op("RESHAPE", "flat", ["c"], (180,), shape=(180,), order="chw")
    b.weighted("FULLY_CONNECTED", "fc1", "flat", (20, 180), (20,), activation="relu")
    b.weighted("FULLY_CONNECTED", "fc2", "fc1", (6, 20), (6,))
    return b.graph("fc2", requantization)


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
def test_fc_delta_equals_run_node(rng, monkeypatch, requantization) -> None:
    monkeypatch.setattr(graph_fc, "DENSE_SHARE", 1.0)
    g = _fc_graph(rng, requantization)
    x = rng.integers(-128, 128, size=(12, 4, 6, 6)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(12, np.int64)).golden()
    fc1 = next(n for n in g.nodes if n.name == "fc1")
    images = np.array([1, 4, 7, 11])
    x_new = state.values["flat"][images].copy()
    x_new[:, rng.choice(180, 9, replace=False)] = rng.integers(-128, 128, (4, 9)).astype(np.int8)
    got = graph_fc.fc_delta(g, fc1, state, images, x_new)
    np.testing.assert_array_equal(got, run_node(g, fc1, [x_new]))
    monkeypatch.setattr(graph_fc, "DENSE_SHARE", 0.0)
    assert graph_fc.fc_delta(g, fc1, state, images, x_new) is None  # too many: run whole
    monkeypatch.setattr(graph_fc, "DENSE_SHARE", 1.0)
    monkeypatch.setattr(graph_fc, "FC_ACC_BUDGET", 0)
    state = GraphCampaignInputs(g, x, np.zeros(12, np.int64)).golden()
    assert graph_fc.fc_delta(g, fc1, state, images, x_new) is None  # past the budget


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize("build", ["fc", "wide"])
def test_campaigns_through_the_fc_path_equal_full_reinference(
    rng, monkeypatch, requantization, build
) -> None:
    monkeypatch.setattr(graph_fc, "DENSE_SHARE", 1.0)
    calls = []
    kernel = graph_fc.kernels_fc.sparse_fc_kernel
    monkeypatch.setattr(graph_fc.kernels_fc, "sparse_fc_kernel",
                        lambda *a: calls.append(1) or kernel(*a))  # fmt: skip
    g = _fc_graph(rng, requantization) if build == "fc" else wide(rng, requantization)
    shape = g.tensors[g.input].shape
    x = rng.integers(-128, 128, size=(10, *shape)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(10, np.int64)).golden()
    assert faults_equal_full_reinference(g, x, state, sample_graph_faults(g, 120, seed=5)) > 10
    assert calls  # the path under test ran


@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
def test_the_golden_state_loads_the_kernel_the_campaign_calls(rng, monkeypatch,
                                                              requantization) -> None:  # fmt: skip
    """``GraphCampaignInputs.golden`` calls the FC kernel (``kernels_fc.warm``) with the very
    argument types ``fc_delta`` passes, so that forked workers find that specialisation loaded
    instead of each loading it."""
    import numba

    from accelsim.faults import kernels_fc

    monkeypatch.setattr(graph_fc, "DENSE_SHARE", 1.0)
    types = []
    kernel = kernels_fc.sparse_fc_kernel
    monkeypatch.setattr(kernels_fc, "sparse_fc_kernel",
                        lambda *a: types.append(numba.typeof(a)) or kernel(*a))  # fmt: skip
    g = _fc_graph(rng, requantization)
    x = rng.integers(-128, 128, size=(6, 4, 6, 6)).astype(np.int8)
    state = GraphCampaignInputs(g, x, np.zeros(6, np.int64)).golden()
    assert len(types) == 1  # the warm-up
    fc1 = next(n for n in g.nodes if n.name == "fc1")
    x_new = state.values["flat"][[0, 3]].copy()
    x_new[:, 7] ^= 1
    assert graph_fc.fc_delta(g, fc1, state, np.array([0, 3]), x_new) is not None
    assert types[1] == types[0]
