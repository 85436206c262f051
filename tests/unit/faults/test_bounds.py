"""The shortcuts are sound: rounding slacks against brute force, logit bounds against the truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from accelsim import load_network
from accelsim.config.workload import ProtectionMode as Mode
from accelsim.datasets import load_dataset
from accelsim.faults.bounds import layer_bounds
from accelsim.faults.golden import compute_golden, pooled_bounds
from accelsim.faults.kernels_slack import NO_CEILING, SLACK_LIMIT
from accelsim.faults.sparse import Changes, provably_unchanged
from accelsim.functional.layers import Conv2D, Dense
from accelsim.functional.network import forward, quantize_images
from accelsim.functional.reference import requantize_ref
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import (
    ProtectedNetwork,
    profile_ranges,
    protected_layer,
    protected_logits,
)
from tests.unit.faults.test_propagate import _pnet, _random_changes


def _channels_last(a: np.ndarray, channels: int) -> np.ndarray:
    return a.reshape(len(a), channels, -1).transpose(0, 2, 1).reshape(len(a), -1)


def _raw(rec, acc: np.ndarray, chan: np.ndarray, split: np.ndarray) -> np.ndarray:
    shift = rec.shift[chan] - split.astype(np.int32)
    out = requantize_ref(
        (acc + rec.bias[chan])[None, :, None], rec.multiplier[chan], shift, relu=rec.relu
    )
    return out[0, :, 0].astype(np.int64)


@pytest.mark.parametrize("mode", [Mode.NONE, Mode.SPLIT, Mode.ZERO])
def test_rounding_slack_is_exact(mode, tiny_net, tiny_images, rng) -> None:
    x = quantize_images(tiny_net, tiny_images)
    pnet = _pnet(tiny_net, mode, x, rng)
    state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
    checked = 0
    for i, rec in enumerate(tiny_net.layers):
        if not isinstance(rec, Conv2D | Dense) or i == 0:
            assert state.slack[i][0].size == 0
            continue
        lo, hi = state.slack[i]
        acc = state.accs[i].astype(np.int64)
        per = int(np.prod(rec.out_shape[1:])) if isinstance(rec, Conv2D) else 1
        chan = np.broadcast_to(np.arange(acc.shape[1]) // per, acc.shape)
        split = np.broadcast_to(state.post[i] == 1, acc.shape)
        if isinstance(rec, Conv2D):  # slacks of convolutions are stored channels-last
            acc, chan, split = (_channels_last(a, rec.out_channels) for a in (acc, chan, split))
        chan, split = chan.ravel(), split.ravel()
        a, lo, hi = acc.ravel(), lo.ravel().astype(np.int64), hi.ravel().astype(np.int64)
        y0 = _raw(rec, a, chan, split)
        assert np.all(lo <= 0)
        assert np.all(hi >= 0)
        np.testing.assert_array_equal(_raw(rec, a + lo, chan, split), y0)
        np.testing.assert_array_equal(_raw(rec, a + hi, chan, split), y0)
        inner_hi, inner_lo = hi < SLACK_LIMIT, lo > -SLACK_LIMIT
        assert np.all(_raw(rec, a + hi + 1, chan, split)[inner_hi] != y0[inner_hi])
        assert np.all(_raw(rec, a + lo - 1, chan, split)[inner_lo] != y0[inner_lo])
        checked += a.size
    assert checked > 1000


@pytest.mark.parametrize("mode", [Mode.NONE, Mode.TMR, Mode.RANGER])
def test_logit_bounds_hold_for_random_changes(mode, tiny_net, pool_net, tiny_images, rng):
    """For random changes at every layer output, the true logit moves (full re-inference) never
    exceed the bound, so every pair declared unchanged keeps its class."""
    for net in (tiny_net, pool_net):
        x = quantize_images(net, tiny_images)
        pnet = _pnet(net, mode, x, rng)
        state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
        bounds = layer_bounds(net.layers, state.post)
        for layer in range(len(net.layers) - 1):
            bound = bounds[layer]
            assert bound is not None
            ch = _random_changes(state, layer + 1, rng, 150)  # changes of this layer's output
            for p in range(ch.img.size):
                a, b = ch.ptr[p], ch.ptr[p + 1]
                n = ch.img[p]
                h = state.outputs[layer][n].copy()
                h[ch.pos[a:b]] = ch.val[a:b]
                logits = _logits_from(pnet, layer, h)
                moved = np.abs(logits.astype(np.int64) - state.outputs[-1][n])
                d = np.abs(ch.val[a:b] - state.outputs[layer][n, ch.pos[a:b]].astype(np.int64))
                limit = d @ bound.lin[ch.pos[a:b]] + np.minimum(
                    bound.field[ch.pos[a:b]].sum(axis=0), bound.cap
                )
                assert np.all(moved <= limit + 1e-9), (layer, p)
            safe = provably_unchanged(replace(state, bounds=bounds), layer, ch)
            for p in np.flatnonzero(safe):
                a, b = ch.ptr[p], ch.ptr[p + 1]
                h = state.outputs[layer][ch.img[p]].copy()
                h[ch.pos[a:b]] = ch.val[a:b]
                assert np.argmax(_logits_from(pnet, layer, h)) == state.classes[ch.img[p]]


def _logits_from(pnet: ProtectedNetwork, layer: int, flat_out: np.ndarray) -> np.ndarray:
    """Logits when layer ``layer`` outputs ``flat_out`` (protection applied downstream)."""
    h = flat_out.reshape(1, *pnet.net.layers[layer].out_shape)
    for i in range(layer + 1, len(pnet.net.layers)):
        h = protected_layer(pnet, i, h)
    return h[0]


def test_bounds_prune_on_a_real_network_and_stay_exact(rng) -> None:
    """On LeNet-5 the bounds drop most changes of fc1's output (tiny moves) and none of the
    dropped ones changes the class."""
    net = load_network("lenet5")
    data = load_dataset("mnist", "sample", n_images=40)
    x = quantize_images(net, data.images)
    pnet = ProtectedNetwork(net, plan_from_neurons(net, Mode.NONE, {}), {})
    state = compute_golden(pnet, x, data.labels)
    fc1 = net.layer_index("fc1")
    n = 400
    img = rng.integers(0, len(x), n)
    pos = rng.integers(0, 120, n)
    old = state.outputs[fc1][img, pos].astype(np.int64)
    val = np.clip(old + rng.integers(-3, 4, n), 0, 127)
    ch = Changes(img, np.arange(n + 1), pos, val)
    safe = provably_unchanged(state, fc1, ch)
    assert safe.mean() > 0.5
    for p in np.flatnonzero(safe):
        h = state.outputs[fc1][img[p]].copy()
        h[pos[p]] = val[p]
        logits = forward(net, h[None], start=fc1 + 1)
        assert np.argmax(logits[0]) == state.classes[img[p]]


def test_no_bounds_upstream_of_split_or_zero_neurons(tiny_net, tiny_images) -> None:
    x = quantize_images(tiny_net, tiny_images)
    d1 = tiny_net.layer_index("d1")
    for mode in (Mode.SPLIT, Mode.ZERO):
        plan = plan_from_neurons(tiny_net, mode, {d1: [0]})
        pnet = ProtectedNetwork(tiny_net, plan, profile_ranges(tiny_net, x))
        state = compute_golden(pnet, x, np.zeros(len(x), np.int64))
        bounds = layer_bounds(tiny_net.layers, state.post)
        assert all(b is None for b in bounds[:d1])
        assert bounds[d1] is not None
        np.testing.assert_array_equal(state.outputs[-1], protected_logits(pnet, x))


def test_class_blind_bound_only_shortcuts_the_per_class_one(tiny_net, tiny_images, rng) -> None:
    """The class-blind first pass (``LayerBound.top``) never declares a pair safe that the
    per-class bound would not: with it disabled (infinite) the answers are the same, and it
    does settle some pairs on its own."""
    x = quantize_images(tiny_net, tiny_images)
    state = compute_golden(_pnet(tiny_net, Mode.NONE, x, rng), x, np.zeros(len(x), np.int64))
    bounds = layer_bounds(tiny_net.layers, state.post)
    layer = len(tiny_net.layers) - 2  # the last hidden layer: the tightest bound
    bound = bounds[layer]
    ch = _random_changes(state, layer + 1, rng, 2000)
    ch = Changes(ch.img, ch.ptr, ch.pos, np.clip(ch.val, 0, 3))  # small moves: some are safe
    with_blind = provably_unchanged(replace(state, bounds=bounds), layer, ch)
    blind_off = replace(bound)
    object.__setattr__(blind_off, "top", np.full_like(bound.top, np.inf))
    without = provably_unchanged(
        replace(state, bounds=(*bounds[:layer], blind_off, *bounds[layer + 1 :])), layer, ch
    )
    np.testing.assert_array_equal(with_blind, without)
    logits = state.outputs[-1].astype(np.float64)
    top = logits[np.arange(len(logits)), state.classes]
    other = np.where(np.eye(logits.shape[1], dtype=bool)[state.classes], -np.inf, logits).max(1)
    settled = 0
    for p in range(ch.img.size):
        a, b = ch.ptr[p], ch.ptr[p + 1]
        n, q = ch.img[p], ch.pos[a:b]
        d = np.abs(ch.val[a:b] - state.outputs[layer][n, q].astype(np.int64))
        move = d @ bound.top[q, 0] + min(bound.top[q, 1].sum(), bound.cap_top) + 1e-6
        settled += other[n] + move < top[n] - move
    assert 0 < settled <= with_blind.sum()


@pytest.mark.parametrize("mode", [Mode.NONE, Mode.SPLIT, Mode.RANGER])
def test_pooled_slack_is_exact(mode, deep_net, tiny_images, rng) -> None:
    """A convolution followed by a max-pool gets pooled slacks (golden.pooled_bounds): within
    them an output that holds no window maximum may drop freely and rise to its windows'
    smallest maximum; one more step up crosses it. Outputs that hold a maximum, or whose
    post-operation is split, keep the plain slack (their exact value)."""
    x = quantize_images(deep_net, tiny_images)
    state = compute_golden(_pnet(deep_net, mode, x, rng), x, np.zeros(len(x), np.int64))
    layer = 2
    rec = deep_net.layers[layer]
    lo, hi = (a.ravel().astype(np.int64) for a in state.slack[layer])
    ceiling, free = pooled_bounds(deep_net.layers, layer, state.outputs, state.post[layer])
    # the same by hand, window by window: the smallest maximum of the windows holding an
    # output, and whether it holds one of them
    pool = deep_net.layers[layer + 1]
    y = state.outputs[layer].reshape(len(x), *rec.out_shape).astype(np.int64)
    top = state.outputs[layer + 1].reshape(len(x), *pool.out_shape).astype(np.int64)
    lowest = np.full(y.shape, 127)
    holds = np.zeros(y.shape, bool)
    for py in range(pool.out_shape[1]):
        for px in range(pool.out_shape[2]):
            r = slice(py * pool.stride, py * pool.stride + pool.size)
            c = slice(px * pool.stride, px * pool.stride + pool.size)
            m = top[:, :, py, px][:, :, None, None]
            lowest[:, :, r, c] = np.minimum(lowest[:, :, r, c], m)
            holds[:, :, r, c] |= y[:, :, r, c] == m
    monotone = (state.post[layer] != 1).reshape(rec.out_shape)[None]  # not split
    want_free = ~holds & monotone
    np.testing.assert_array_equal(free.reshape(y.shape), want_free)
    np.testing.assert_array_equal(ceiling.reshape(y.shape), np.where(want_free, lowest, NO_CEILING))
    o = rec.out_channels
    acc = _channels_last(state.accs[layer].astype(np.int64), o).ravel()
    n_pos = state.accs[layer].shape[1] // o
    chan = np.tile(np.arange(o), n_pos * len(x))  # channels-last
    split = _channels_last(np.broadcast_to(state.post[layer] == 1, state.accs[layer].shape), o)
    split = split.ravel()
    ceiling = _channels_last(ceiling, o).ravel().astype(np.int64)
    free = _channels_last(free, o).ravel().astype(bool)
    y0 = _raw(rec, acc, chan, split)
    up = np.where(ceiling == NO_CEILING, y0, np.maximum(y0, ceiling))
    assert free.any()
    assert (up > y0).any()
    assert not free[split].any()
    at_hi = _raw(rec, acc + hi, chan, split)
    assert np.all((at_hi >= y0) & (at_hi <= up))
    inner = hi < SLACK_LIMIT
    assert np.all(_raw(rec, acc + hi + 1, chan, split)[inner] > up[inner])
    np.testing.assert_array_equal(lo[free], -SLACK_LIMIT)
    np.testing.assert_array_equal(_raw(rec, acc + lo, chan, split)[~free], y0[~free])
