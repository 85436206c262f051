"""Incremental fault propagation equals full re-inference exactly; kernels equal their reference."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.workload import FaultKind, FaultSite, FaultSpec
from accelsim.config.workload import ProtectionMode as Mode
from accelsim.faults import propagate, sparse
from accelsim.faults.golden import compute_golden
from accelsim.faults.model import Fault, fault_batch
from accelsim.faults.propagate import dense_step, faulty_classes
from accelsim.faults.sampling import build_population, sample_faults
from accelsim.faults.sparse import Changes, fuses_pool, provably_unchanged, sparse_step
from accelsim.functional.layers import Conv2D, Dense, MaxPool2D
from accelsim.functional.network import Network, classify, quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, protected_logits

MODES = list(Mode)


def _pnet(net: Network, mode: Mode, x: np.ndarray, rng: np.random.Generator) -> ProtectedNetwork:
    """Half of every neuron layer's neurons protected by ``mode``."""
    if mode is Mode.NONE:
        return ProtectedNetwork(net, plan_from_neurons(net, mode, {}), {})
    chosen = {}
    for i in net.neuron_layers:
        size = int(np.prod(net.layers[i].out_shape))
        chosen[i] = rng.choice(size, size // 2, replace=False)
    # ranges profiled on a few images only, so that clamp and zero really act on the others
    return ProtectedNetwork(net, plan_from_neurons(net, mode, chosen), profile_ranges(net, x[:3]))


def _naive(pnet: ProtectedNetwork, x: np.ndarray, fault: Fault) -> np.ndarray:
    return classify(protected_logits(pnet, x, fault=fault))


def _spec(kind: FaultKind, bits: int, samples) -> FaultSpec:
    return FaultSpec(FaultSite.NEURON_OUTPUT, kind, bits, samples, 0.01, 0.95, 0.5, 0)


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
@pytest.mark.parametrize("net_name", ["tiny", "pool", "deep", "saturated"])
def test_every_single_bit_fault_equals_full_reinference(
    mode: Mode, net_name: str, tiny_net, pool_net, deep_net, tiny_images, rng
) -> None:
    """Every single-bit fault, every mode; "saturated" is tiny with 4x multipliers, where
    split's LCU corrupts saturated neurons and split_clamped does not (see below)."""
    net = {"tiny": tiny_net, "pool": pool_net, "deep": deep_net,
           "saturated": _saturating(tiny_net)}[net_name]  # fmt: skip
    x = quantize_images(net, tiny_images[:12])
    pnet = _pnet(net, mode, x, rng)
    state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
    pop = build_population(net, pnet.plan, FaultKind.SINGLE_BIT, 1)
    faults = sample_faults(pop, _spec(FaultKind.SINGLE_BIT, 1, "exhaustive"), rng=rng)
    classes = faulty_classes(state, fault_batch(faults))
    naive = np.stack([_naive(pnet, x, f) for f in faults])
    np.testing.assert_array_equal(classes, naive)
    assert (naive != state.classes).any(), "the campaign must contain class-changing faults"


@pytest.mark.parametrize(
    ("kind", "bits"),
    [
        (FaultKind.ADJACENT_BITS, 2),
        (FaultKind.RANDOM_BITS, 3),
        (FaultKind.STUCK_AT_0, 1),
        (FaultKind.STUCK_AT_1, 1),
    ],
)
@pytest.mark.parametrize("mode", [Mode.NONE, Mode.SPLIT, Mode.DMR_AND, Mode.ZERO])
def test_other_fault_kinds_equal_full_reinference(kind, bits, mode, tiny_net, tiny_images, rng):
    x = quantize_images(tiny_net, tiny_images[:10])
    pnet = _pnet(tiny_net, mode, x, rng)
    state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
    pop = build_population(tiny_net, pnet.plan, kind, bits)
    faults = sample_faults(pop, _spec(kind, bits, 150), rng=rng)
    classes = faulty_classes(state, fault_batch(faults))
    for f, row in zip(faults, classes, strict=True):
        np.testing.assert_array_equal(row, _naive(pnet, x, f), err_msg=str(f))


def test_golden_state_matches_protected_inference(tiny_net, tiny_images, rng) -> None:
    x = quantize_images(tiny_net, tiny_images)
    for mode in MODES:
        pnet = _pnet(tiny_net, mode, x, rng)
        state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
        np.testing.assert_array_equal(state.outputs[-1], protected_logits(pnet, x))


def _random_changes(state, layer: int, rng: np.random.Generator, n_pairs: int) -> Changes:
    """Random changes (1 to 6 positions, any int8 value) of the input of ``layer``."""
    size = state.layer_input(layer).shape[1]
    counts = rng.integers(1, min(6, size) + 1, n_pairs)
    pos = np.concatenate([np.sort(rng.choice(size, c, replace=False)) for c in counts])
    low = 0 if state.layer_input(layer).min() >= 0 else -128  # after ReLU: what faults leave
    val = rng.integers(low, 128, pos.size)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    return Changes(rng.integers(0, state.n_images, n_pairs), ptr, pos, val.astype(np.int64))


def _as_sets(ch: Changes) -> list[dict[int, int]]:
    return [
        dict(zip(ch.pos[a:b].tolist(), ch.val[a:b].tolist(), strict=True))
        for a, b in zip(ch.ptr[:-1], ch.ptr[1:], strict=True)
    ]


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_kernels_equal_their_numpy_reference(
    mode, tiny_net, pool_net, deep_net, tiny_images, rng
) -> None:
    fused = bounded = 0
    for net in (tiny_net, pool_net, deep_net):
        x = quantize_images(net, tiny_images)
        state = compute_golden(_pnet(net, mode, x, rng), x, np.zeros(len(x), np.int64))
        for layer, rec in enumerate(net.layers):
            if not isinstance(rec, Conv2D | Dense | MaxPool2D) or layer == 0:
                continue
            ch = _random_changes(state, layer, rng, 200)
            expected = dense_step(state, layer, ch)
            if fuses_pool(state, layer):  # the conv + max-pool kernel, pooled slacks
                fused += 1
                pooled = dense_step(state, layer + 1, expected)
                assert _as_sets(sparse_step(state, layer, ch, pooled=True)) == _as_sets(pooled)
                continue
            assert _as_sets(sparse_step(state, layer, ch)) == _as_sets(expected)
            if isinstance(rec, Dense):  # the bound applied in the kernel: those pairs emptied
                safe = provably_unchanged(state, layer, expected)
                bounded += int(safe.sum())
                want = [{} if s else c for s, c in zip(safe, _as_sets(expected), strict=True)]
                assert _as_sets(sparse_step(state, layer, ch, bounded=True)) == want
    assert fused == 1  # deep_net's second convolution
    if mode in (Mode.NONE, Mode.TMR):  # split and zero allow no bound
        assert bounded > 0


@pytest.mark.parametrize("net_name", ["tiny", "deep"])  # convolution alone, fused with a pool
def test_single_and_multiple_changes_of_a_convolution_agree(
    net_name, tiny_net, deep_net, tiny_images, rng
) -> None:
    """The convolution kernel's one-change path equals its accumulating path: the same change
    given once alone and once beside a change that moves nothing (the golden value)."""
    net = tiny_net if net_name == "tiny" else deep_net
    x = quantize_images(net, tiny_images)
    state = compute_golden(_pnet(net, Mode.NONE, x, rng), x, np.zeros(len(x), np.int64))
    pooled = net_name == "deep"
    ch = _random_changes(state, 2, rng, 300)
    first = ch.pos[ch.ptr[:-1]]
    one = Changes(ch.img, np.arange(ch.img.size + 1), first, ch.val[ch.ptr[:-1]])
    golden_in = state.layer_input(2)
    other = (first + 1) % golden_in.shape[1]
    two = Changes(
        ch.img,
        2 * np.arange(ch.img.size + 1),
        np.stack([first, other], 1).ravel(),
        np.stack([one.val, golden_in[ch.img, other].astype(np.int64)], 1).ravel(),
    )
    a, b = sparse_step(state, 2, one, pooled), sparse_step(state, 2, two, pooled)
    assert _as_sets(a) == _as_sets(b)
    assert a.pos.size > 0


@pytest.mark.parametrize("pooled", [False, True])
def test_kernel_output_buffers_grow(
    pooled, tiny_net, deep_net, tiny_images, rng, monkeypatch
) -> None:
    """Pairs that do not fit stop the kernel and resume after the wrapper grows the buffers."""
    net = deep_net if pooled else tiny_net
    x = quantize_images(net, tiny_images)
    pnet = _pnet(net, Mode.NONE, x, rng)
    state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
    ch = _random_changes(state, 2, rng, 300)
    calls = []
    original = sparse._run_kernel

    def tiny_capacity(call, n_pairs, capacity):
        calls.append(capacity)
        return original(call, n_pairs, 1)

    expected = dense_step(state, 2, ch)
    if pooled:
        expected = dense_step(state, 3, expected)
    monkeypatch.setattr(sparse, "_run_kernel", tiny_capacity)
    assert _as_sets(sparse_step(state, 2, ch, pooled)) == _as_sets(expected)
    assert calls


@pytest.mark.parametrize("net_name", ["tiny", "deep"])
def test_widely_spread_changes_take_the_dense_path(
    net_name, tiny_net, deep_net, tiny_images, rng, monkeypatch
):
    net = tiny_net if net_name == "tiny" else deep_net
    x = quantize_images(net, tiny_images)
    state = compute_golden(_pnet(net, Mode.SPLIT, x, rng), x, np.zeros(len(x), np.int64))
    ch = _random_changes(state, 2, rng, 100)
    expected = dense_step(state, 2, ch)
    if net_name == "deep":  # convolution and max-pool in one step
        expected = dense_step(state, 3, expected)
    expected = _as_sets(expected)
    monkeypatch.setattr(propagate, "DENSE_FRACTION", 0.05)  # most pairs dense, some sparse
    got, last = propagate.step(state, 2, ch)
    assert last == (3 if net_name == "deep" else 2)
    np.testing.assert_array_equal(got.img, ch.img)
    assert _as_sets(got) == expected


def test_repeated_single_changes_run_once(deep_net, tiny_images, rng, monkeypatch) -> None:
    """Pairs left with the same single change (image, position, value) after a max-pool run
    once and share the answer: classes equal the campaign without the shortcut, which does
    find repeats here."""
    x = quantize_images(deep_net, tiny_images[:12])
    state = compute_golden(_pnet(deep_net, Mode.NONE, x, rng), x, np.zeros(len(x), np.int64))
    pop = build_population(deep_net, state.pnet.plan, FaultKind.SINGLE_BIT, 1)
    batch = fault_batch(sample_faults(pop, _spec(FaultKind.SINGLE_BIT, 1, "exhaustive"), rng=rng))
    saved = []
    original = propagate._distinct

    def spy(ch, size):
        rep, inverse = original(ch, size)
        saved.append(ch.img.size - rep.size)
        return rep, inverse

    monkeypatch.setattr(propagate, "_distinct", spy)
    with_shortcut = faulty_classes(state, batch)
    assert sum(saved) > 0
    monkeypatch.setattr(propagate, "REPEATS", 0.0)
    np.testing.assert_array_equal(faulty_classes(state, batch), with_shortcut)


def test_keeping_pairs_equals_taking_them(rng) -> None:
    """``Changes.keep`` gives what ``take`` gives, sharing the entries when only pairs with no
    changes are left out and copying them otherwise."""
    counts = rng.integers(0, 4, 300)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    ch = Changes(
        rng.integers(0, 50, counts.size),
        ptr,
        rng.integers(0, 99, ptr[-1]),
        rng.integers(-9, 9, ptr[-1]),
    )
    nonempty = np.flatnonzero(counts > 0)
    some = np.sort(rng.choice(counts.size, 120, replace=False))
    for rows, shared in ((nonempty, True), (some, False)):
        kept, taken = ch.keep(rows), ch.take(rows)
        assert _as_sets(kept) == _as_sets(taken)
        np.testing.assert_array_equal(kept.img, taken.img)
        assert (kept.pos is ch.pos) == shared


def test_locality_order_puts_each_pool_window_together(tiny_net, rng) -> None:
    """Every fault once; the faults of c1 (3 x 9 x 9, 2x2/2 max-pool after it) grouped by
    window, the other layers' faults after them in neuron order."""
    plan = plan_from_neurons(tiny_net, Mode.NONE, {})
    pop = build_population(tiny_net, plan, FaultKind.SINGLE_BIT, 1)
    faults = fault_batch(sample_faults(pop, _spec(FaultKind.SINGLE_BIT, 1, "exhaustive"), rng=rng))
    faults = faults.take(rng.permutation(len(faults)))
    order = propagate.locality_order(tiny_net.layers, faults)
    assert sorted(order.tolist()) == list(range(len(faults)))
    ordered = faults.take(order)
    assert np.all(np.diff(ordered.layer) >= 0)
    c1 = ordered.index[ordered.layer == 0]
    windows = [(i // 81, i // 9 % 9 // 2, i % 9 // 2) for i in c1.tolist()]
    runs = [w for i, w in enumerate(windows) if i == 0 or w != windows[i - 1]]
    assert len(runs) == len(set(windows)) == 3 * 5 * 5  # each window one run (row 8, col 8 too)
    later = ordered.index[ordered.layer > 0]
    assert np.all(np.diff(later[ordered.layer[ordered.layer > 0] == 2]) >= 0)


def test_changed_pairs_kernel_equals_numpy(rng) -> None:
    """The (image, fault) pairs whose faulty value differs from golden, image-major, as numpy's
    nonzero gives them."""
    from accelsim.faults.kernels_sparse import changed_pairs_kernel

    golden = rng.integers(-128, 128, (40, 30)).astype(np.int8)
    index = rng.integers(0, 30, 7)
    vals = golden[:, index].T.copy()
    flip = rng.random(vals.shape) < 0.3
    vals[flip] = rng.integers(-128, 128, int(flip.sum()))
    img, fr, val = (np.empty(vals.size, np.int64) for _ in range(3))
    n = changed_pairs_kernel(vals, golden, index, img, fr, val)
    want_img, want_fr = np.nonzero((vals != golden[:, index].T).T)
    assert 0 < n == want_img.size < vals.size
    np.testing.assert_array_equal(img[:n], want_img)
    np.testing.assert_array_equal(fr[:n], want_fr)
    np.testing.assert_array_equal(val[:n], vals[want_fr, want_img])


def test_golden_state_is_the_same_on_any_number_of_threads(deep_net, tiny_images, monkeypatch):
    """Image blocks on several threads (the forward pass and the slacks) give the state of one
    thread, block for block."""
    from accelsim.faults import golden

    x = quantize_images(deep_net, tiny_images)
    pnet = ProtectedNetwork(deep_net, plan_from_neurons(deep_net, Mode.NONE, {}), {})
    monkeypatch.setattr(golden, "_BATCH", 3)  # several blocks even for a few images
    states = []
    for threads in (1, 3):
        monkeypatch.setattr(golden, "_threads", lambda threads=threads: threads)
        states.append(golden.compute_golden(pnet, x, np.zeros(len(x), np.int64)))
    one, many = states
    assert len(x) > 3 * 3
    for a, b in zip((*one.outputs, *one.accs), (*many.outputs, *many.accs), strict=True):
        np.testing.assert_array_equal(a, b)
    for (lo1, hi1), (lo2, hi2) in zip(one.slack, many.slack, strict=True):
        np.testing.assert_array_equal(lo1, lo2)
        np.testing.assert_array_equal(hi1, hi2)
    assert sum(lo.size for lo, _ in many.slack) > 0


def _saturating(net: Network) -> Network:
    """``net`` with every neuron layer's multiplier 4x larger (shift + 2): many outputs clamp at
    127, where split's halves reach 64 and its LCU corrupts them while split_clamped does not."""
    import dataclasses

    layers = tuple(
        dataclasses.replace(rec, shift=(rec.shift + 2).astype(np.int32))
        if i in net.neuron_layers else rec
        for i, rec in enumerate(net.layers)
    )  # fmt: skip
    return dataclasses.replace(net, layers=layers)


def test_split_and_split_clamped_differ_on_saturated_neurons(tiny_net, tiny_images) -> None:
    """The saturated network of the exhaustive test above really saturates: split's fault-free outputs
    of the first protected layer differ from split_clamped's (which stay within one step)."""
    from accelsim.functional.network import forward_all
    from accelsim.protection.protected import protected_layer

    net = _saturating(tiny_net)
    x = quantize_images(net, tiny_images[:12])
    first = net.neuron_layers[0]
    size = int(np.prod(net.layers[first].out_shape))
    outs = forward_all(net, x)
    inputs = x if first == 0 else outs[first - 1]
    y = outs[first].reshape(len(x), -1).astype(np.int64)
    assert np.mean(y == 127) > 0.01
    seen = {}
    for mode in (Mode.SPLIT, Mode.SPLIT_CLAMPED):
        pnet = ProtectedNetwork(net, plan_from_neurons(net, mode, {first: np.arange(size)}), {})
        seen[mode] = protected_layer(pnet, first, inputs).reshape(len(x), -1).astype(np.int64)
    assert np.any(np.abs(seen[Mode.SPLIT] - y) > 1)
    assert np.all(np.abs(seen[Mode.SPLIT_CLAMPED] - y) <= 1)
