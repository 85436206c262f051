"""Rules for the numba kernels that a reviewer would otherwise check by hand.

- No jitted function calls a jitted function of another module: numba's cache sees only the
  file of the function it caches, so a helper changed elsewhere would leave a stale cache. The
  few shared requantisation helpers are copied; every copy equals the original.
- No kernel takes more than 12 arguments (scratch buffers and tables travel as records).
- No ``fastmath`` but where a test shows it harmless: the dense kernel's class-blind bound, the
  sparse convolution's FMA contraction.
- The fault-propagation modules stay under 400 lines.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from tests.conftest import REPO

PACKAGE = REPO / "accelsim"


def _jitted(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            "njit" in ast.unparse(d) for d in node.decorator_list
        ):
            yield node


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "njit" in p.read_text())


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_jitted_functions_call_only_their_own_modules_helpers(path: Path) -> None:
    module = importlib.import_module(_module_name(path))
    tree = ast.parse(path.read_text())
    for fn in _jitted(tree):
        for call in ast.walk(fn):
            if not isinstance(call, ast.Call):
                continue
            target = call.func
            obj = None
            if isinstance(target, ast.Name):
                obj = vars(module).get(target.id)
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                owner = vars(module).get(target.value.id)
                obj = getattr(owner, target.attr, None) if owner is not None else None
            if isinstance(obj, CPUDispatcher):
                assert obj.py_func.__module__ == module.__name__, (
                    f"{path.name}: {fn.name} calls {obj.py_func.__module__}."
                    f"{obj.py_func.__name__}, a jitted function of another module"
                )


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_kernels_take_records_and_no_fastmath(path: Path) -> None:
    for fn in _jitted(ast.parse(path.read_text())):
        assert len(fn.args.args) <= 12, f"{path.name}: {fn.name} takes {len(fn.args.args)}"
        for d in fn.decorator_list:
            allowed = (path.name, fn.name) in FASTMATH_SHOWN_SOUND
            assert allowed or "fastmath" not in ast.unparse(d), f"{path.name}: {fn.name}"


# (file, kernel) whose fastmath a test below shows harmless to what it computes
FASTMATH_SHOWN_SOUND = {
    ("kernels_layers.py", "dense_changes_kernel"),
    ("kernels_boxes.py", "sparse_conv_kernel"),
}


@pytest.mark.parametrize("case", ["edge", "random"])
def test_the_sparse_kernels_contraction_changes_nothing(case: str) -> None:
    """``sparse_conv_kernel`` lets LLVM fuse ``row + d * w`` into one FMA (``fastmath``
    ``contract``). Its float32 sums run only while every partial sum is an integer below 2^24 in
    magnitude, where a product, a sum and an FMA are all exact, so fusing changes nothing. At
    that edge (every output the sum of 9 x 57 products 255 x 127 = 16,613,505, just under
    2^24 = 16,777,216) and on random changes: the kernel as compiled equals itself compiled
    without fastmath and its own int32 sums, output for output (the fault-free sums cancel the
    change's up to +-200, so an output moves with every unit of its sum: with 70 channels, sums
    past 2^24, the float32 outputs differ and this test fails)."""
    import numba

    from accelsim.faults import kernels_boxes as kb
    from accelsim.faults.code_check import NO_THRESHOLDS

    rng = np.random.default_rng(3)
    c, h, w, o = 57, 6, 6, 16
    golden = np.full((2, c, h, w), -128, np.int8)
    vals = np.full((1, c, h, w), 127, np.int8)
    weight = np.full((3, 3, c, o), 127, np.int8)
    if case == "random":
        golden = rng.integers(-128, 128, size=golden.shape).astype(np.int8)
        vals = rng.integers(-128, 128, size=vals.shape).astype(np.int8)
        weight = rng.integers(-127, 128, size=weight.shape).astype(np.int8)
    # fault-free sums that cancel the change's exact sum (int64, by brute force) up to +-200:
    # the outputs then show every unit of the sums, and a float32 rounding would change them
    d = np.zeros((c, h + 2, w + 2), np.int64)
    d[:, 1:-1, 1:-1] = vals[0].astype(np.int64) - golden[1]
    change = sum(np.einsum("cyx,co->yxo", d[:, i : i + h, j : j + w], weight[i, j].astype(np.int64))
                 for i in range(3) for j in range(3))  # fmt: skip
    golden_acc = np.zeros((2, h, w, o), np.int32)
    golden_acc[1] = rng.integers(-200, 200, size=(h, w, o)) - change
    golden_out = rng.integers(-128, 128, size=(2, h, w, o)).astype(np.int8)
    where = np.array([0, h - 1, 0, w - 1, 0, h - 1, 0, w - 1], np.int64)
    conv = np.array([3, 3, 1, 1, 1, 0], np.int64)
    one = np.ones(o, np.int64)
    rq = (np.zeros(o, np.int64), one << 30, np.zeros(o, np.int64), np.zeros(o, np.int64),
          np.zeros(o, np.float32), NO_THRESHOLDS)  # fmt: skip
    plain = numba.njit(nogil=True)(kb.sparse_conv_kernel.py_func)
    results = []
    for kernel, dtype, w_dtype in [(kb.sparse_conv_kernel, np.float32, np.float32),
                                   (kb.sparse_conv_kernel, np.float32, np.int8),
                                   (plain, np.float32, np.float32),
                                   (kb.sparse_conv_kernel, np.int32, np.int32)]:  # fmt: skip
        out = np.empty((1, o, h, w), np.int8)
        counts, bbox = np.empty((1, 2), np.int64), np.empty(4, np.int64)
        kernel((golden, golden_acc, golden_out), np.array([1]), np.array([0]), vals, where,
               conv, np.ascontiguousarray(weight, w_dtype), np.empty((h, w, o), dtype), rq,
               np.array([0, 0, -128, 127], np.int64), (out, counts, bbox, kb.NO_ACC))  # fmt: skip
        results.append((out, counts))
    for out, counts in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(counts, results[0][1])
    assert np.abs(change).max() > (15 << 20 if case == "edge" else 1 << 17)
    assert len(np.unique(results[0][0])) > 100  # the outputs show the sums unit by unit


def test_the_dense_kernels_fastmath_keeps_its_bound_sound(rng) -> None:
    """``dense_changes_kernel`` reassociates two float64 sums of non-negative terms (the
    class-blind bound's moves). Reassociating n such terms errs by at most (n - 1) u of their
    sum (u = 2^-53), and a bound only settles a pair while its computed move is below half the
    logit range (2 x 127.5, int8 logits), so the error stays below 127.5 (n - 1) u, which must
    be far below the 1e-6 the bound adds: here for every dense layer of the zoo. And the kernel
    compiled with and without fastmath gives the same rows on a LeNet-5 and an MLP-7 campaign."""
    import numba

    from accelsim import Dense, FaultSpec, evaluate_faults, load_network, unprotected
    from accelsim.config.workload import FaultKind, FaultSite
    from accelsim.faults import kernels_layers as kl
    from accelsim.faults.campaign import CampaignInputs, neuron_faults

    u = 2.0**-53
    for name in ("lenet5", "mlp7", "alexnet"):
        for layer in load_network(name).layers:
            if isinstance(layer, Dense):
                assert 127.5 * (layer.out_channels - 1) * u < 1e-9
    plain = numba.njit(nogil=True)(kl.dense_changes_kernel.py_func)
    fast = kl.dense_changes_kernel
    spec = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, 150, 0.01, 0.95, 0.5, 0)
    for name in ("lenet5", "mlp7"):
        net = load_network(name)
        x = rng.integers(-128, 128, size=(300, *net.input_shape)).astype(np.int8)
        source = CampaignInputs(unprotected(net), x, np.zeros(len(x), np.int64))
        _, faults = neuron_faults(unprotected(net), spec)
        rows = []
        for kernel in (fast, plain):
            kl.dense_changes_kernel = kernel
            try:
                rows.append(evaluate_faults(source, faults))
            finally:
                kl.dense_changes_kernel = fast
        np.testing.assert_array_equal(rows[0].n_changed, rows[1].n_changed)
        assert rows[0].n_changed.sum() > 0


def test_fault_propagation_modules_stay_small() -> None:
    faults = PACKAGE / "faults"
    modules = [*faults.glob("kernels_*.py"), *faults.glob("graph_*.py")]
    for path in sorted([*modules, faults / "propagate.py", faults / "sparse.py"]):
        n = len(path.read_text().splitlines())
        assert n <= 400, f"{path.name}: {n} lines"


def test_copies_of_the_requantisation_helpers_equal_the_original(rng) -> None:
    from accelsim.faults import kernels_boxes, kernels_fc, kernels_layers, kernels_slack
    from accelsim.functional import graph_kernels, kernels

    n = 20_000
    acc = np.concatenate([rng.integers(-(2**40), 2**40, n), rng.integers(-5000, 5000, n)])
    mult = rng.integers(2**30, 2**31, acc.size)
    shift = rng.integers(-31, 8, acc.size)
    lo = rng.choice([-128, 0], acc.size)
    for a, m, s, low in zip(acc[:4000], mult[:4000], shift[:4000], lo[:4000], strict=True):
        want = kernels.requant_one(a, m, s, low)
        assert kernels_layers._requant_one(a, m, s, low) == want
        assert kernels_slack._requant_one(a, m, s, low) == want
    for a, m, s in zip(acc[::10], mult[::10], shift[::10], strict=True):
        r = max(-s, 0)
        mask = (1 << r) - 1
        x = int(a) << max(s, 0) if abs(int(a)) < 2**40 else int(a)
        want = kernels.scale_by_multiplier(x, m, r, mask, mask >> 1)
        for copy in (kernels_layers, kernels_slack, graph_kernels, kernels_boxes, kernels_fc):
            assert copy._scale_by_multiplier(x, m, r, mask, mask >> 1) == want
