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
from accelsim.functional.graph import run_node
from tests.unit.faults.test_graph_campaign import faults_equal_full_reinference, wide
from tests.unit.interop.test_graph_tflite_micro import Builder


@pytest.mark.parametrize(("rows", "n_in", "n_out"), [(1, 1, 1), (7, 300, 13), (40, 3000, 64)])
def test_sparse_fc_kernel_equals_its_reference(rng, rows, n_in, n_out) -> None:
    x_old = rng.integers(-128, 128, size=(rows, n_in)).astype(np.int8)
    x_new = x_old.copy()
    hit = rng.random((rows, n_in)) < 0.05
    x_new[hit] = rng.integers(-128, 128, size=int(hit.sum())).astype(np.int8)
    x_new[0, 0] = 127 if x_old[0, 0] != 127 else -128  # at least one extreme change
    w = rng.integers(-127, 128, size=(n_in, n_out)).astype(np.int8)
    acc0 = rng.integers(-(2**40), 2**40, size=(rows + 3, n_out)).astype(np.int64)
    images = rng.permutation(rows + 3)[:rows].astype(np.int64)
    out = np.empty((rows, n_out), np.int64)
    sparse_fc_kernel(x_new, x_old, w, acc0, images, out)
    np.testing.assert_array_equal(out, sparse_fc_ref(x_new, x_old, w, acc0, images))
    # and the reference is the plain definition: the accumulator of the new inputs
    w64 = w.astype(np.int64)
    want = acc0[images] - x_old.astype(np.int64) @ w64 + x_new.astype(np.int64) @ w64
    np.testing.assert_array_equal(out, want)


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
