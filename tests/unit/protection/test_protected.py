"""Protection transforms: fault-free invariance, hand values, faults in copies, accounting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.config.workload import ProtectionMode as Mode
from accelsim.errors import AccelsimError, ModelFormatError
from accelsim.functional.layers import Flatten
from accelsim.functional.network import Network, forward_all, quantize_images
from accelsim.protection.overhead import network_overhead
from accelsim.protection.plan import load_plan, plan_from_neurons, plan_from_nvf, save_plan
from accelsim.protection.protected import (
    CopyFault,
    ProtectedNetwork,
    neuron_accumulators,
    profile_ranges,
    protected_logits,
)
from tests.conftest import make_dense


@pytest.fixture
def hand_net() -> Network:
    """2 inputs -> 3 hidden (ReLU, M = 1) -> 2 logits (M = 1): hidden = (x0 + x1, x0, 2 x1 + 1)."""
    hidden = make_dense("h", [[1, 1], [1, 0], [0, 2]], [0, 0, 1], 1.0, True)
    out = make_dense("o", [[1, 0, 1], [0, 1, 0]], [0, 0], 1.0, False)
    return Network(
        "hand", "mnist", (1, 1, 2), 1.0, (0.0,), (1.0,), (Flatten("f", (1, 1, 2)), hidden, out)
    )


def _x(*rows: tuple[int, int]) -> np.ndarray:
    return np.array(rows, np.int8).reshape(-1, 1, 1, 2)


def test_split_hand_values(hand_net: Network) -> None:
    """Each copy holds round(y / 2) of the accumulator; the next layer sees 2 * LCU(a, b)."""
    plan = plan_from_neurons(hand_net, Mode.SPLIT, {1: [0, 2]})
    pnet = ProtectedNetwork(hand_net, plan, {})
    x = _x((10, 0), (11, 0), (3, 20))
    # hidden 0: 10 -> 5 -> 10; 11 -> 5.5 -> 6 -> 12; 23 -> 11.5 -> 12 -> 24
    # hidden 2: 1 -> 0.5 -> 1 -> 2; 1 -> 2; 41 -> 20.5 -> 21 -> 42
    logits = protected_logits(pnet, x)
    np.testing.assert_array_equal(logits[:, 0], [10 + 2, 12 + 2, 24 + 42])
    np.testing.assert_array_equal(logits[:, 1], [10, 11, 3])  # unprotected neuron 1 = x0


def test_split_lcu_zeroes_a_half_of_64(hand_net: Network) -> None:
    """y = 127 gives half 64 (63.5 rounded away from zero): bit 6 is cleared, the neuron reads 0."""
    pnet = ProtectedNetwork(hand_net, plan_from_neurons(hand_net, Mode.SPLIT, {1: [0]}), {})
    logits = protected_logits(pnet, _x((127, 0)))
    assert logits[0, 0] == 0 + 1  # hidden 0 -> 0, hidden 2 = 1


def test_split_refuses_layers_without_relu(hand_net: Network) -> None:
    with pytest.raises(AccelsimError, match="layer o holds no neurons"):
        plan_from_neurons(hand_net, Mode.SPLIT, {2: [0]})
    lin = make_dense("h", [[1, 1]], [0], 1.0, False)
    net = Network(
        "n",
        "mnist",
        (1, 1, 2),
        1.0,
        (0.0,),
        (1.0,),
        (Flatten("f", (1, 1, 2)), lin, make_dense("o", [[1]], [0], 1.0, False)),
    )
    with pytest.raises(AccelsimError, match="cannot split its neurons: without a fused ReLU"):
        plan_from_neurons(net, Mode.SPLIT, {1: [0]})
    assert plan_from_neurons(net, Mode.TMR, {1: [0]}).n_protected == 1


@pytest.mark.parametrize(
    "mode", [Mode.TMR, Mode.DMR_AND, Mode.DMR_RECOMPUTE, Mode.RANGER, Mode.ZERO]
)
def test_fault_free_invariance(tiny_net, tiny_images, mode: Mode) -> None:
    x = quantize_images(tiny_net, tiny_images)
    everything = {
        i: np.arange(int(np.prod(tiny_net.layers[i].out_shape))) for i in tiny_net.neuron_layers
    }
    pnet = ProtectedNetwork(
        tiny_net, plan_from_neurons(tiny_net, mode, everything), profile_ranges(tiny_net, x)
    )
    np.testing.assert_array_equal(protected_logits(pnet, x), forward_all(tiny_net, x)[-1])


def test_split_differs_only_by_rounding(tiny_net, tiny_images) -> None:
    x = quantize_images(tiny_net, tiny_images)
    outs = forward_all(tiny_net, x)
    layer = tiny_net.neuron_layers[0]
    index = np.arange(int(np.prod(tiny_net.layers[layer].out_shape)))
    pnet = ProtectedNetwork(tiny_net, plan_from_neurons(tiny_net, Mode.SPLIT, {layer: index}), {})
    # compare the layer as the next layer sees it with 2 * round(y / 2) from the accumulators
    from accelsim.protection.protected import protected_layer

    seen = protected_layer(pnet, layer, x).reshape(len(x), -1)
    y = outs[layer].reshape(len(x), -1).astype(np.int64)
    below = y < 127  # saturated values are not (test_split_corrupts_saturated_neurons...)
    assert np.all(np.abs(seen - y)[below] <= 1)  # rounding y/2 moves it by at most one step
    assert np.any(seen != y)
    acc = neuron_accumulators(tiny_net.layers[layer], x, index)
    assert acc.shape == (len(x), index.size)


# pre-clamp value v of hidden neuron 0 (x0 + x1, M = 1) -> what the next layer sees: split's
# halves round(v / 2) reach 64 from v = 127 on, and the LCU clears their bit 6 with no fault;
# split_clamped holds the halves at 63 (one step below 127 at saturation)
SATURATION = {
    100: (100, 100, 100), 125: (125, 126, 126), 126: (126, 126, 126), 127: (127, 0, 126),
    128: (127, 0, 126), 129: (127, 2, 126), 150: (127, 22, 126), 200: (127, 72, 126),
    254: (127, 126, 126),
}  # fmt: skip


@pytest.mark.parametrize("v", sorted(SATURATION))
def test_split_corrupts_saturated_neurons_fault_free_and_split_clamped_does_not(
    hand_net: Network, v: int
) -> None:
    from accelsim.protection.protected import protected_layer

    x = _x((v - v // 2, v // 2))
    plain, split, clamped = SATURATION[v]
    assert forward_all(hand_net, x)[1][0, 0] == plain
    for mode, expected in ((Mode.SPLIT, split), (Mode.SPLIT_CLAMPED, clamped)):
        pnet = ProtectedNetwork(hand_net, plan_from_neurons(hand_net, mode, {1: [0]}), {})
        assert protected_layer(pnet, 1, x.reshape(1, 2))[0, 0] == expected, mode


def test_faults_in_copies(hand_net: Network) -> None:
    x = _x((10, 20))  # hidden = (30, 10, 41); halves (15, 5, 21) -> 2 * = (30, 10, 42)
    split = ProtectedNetwork(hand_net, plan_from_neurons(hand_net, Mode.SPLIT, {1: [0, 1, 2]}), {})
    clean = protected_logits(split, x)
    # 0 -> 1 flip (bit 5 of 15 = 0b1111) in one copy: corrected
    assert np.array_equal(protected_logits(split, x, fault=CopyFault(1, 0, 1, 1 << 5)), clean)
    # 1 -> 0 flip (bit 0 of 15): the LCU passes 14, the next layer sees 28
    hurt = protected_logits(split, x, fault=CopyFault(1, 0, 0, 1))
    assert hurt[0, 0] == clean[0, 0] - 2
    tmr = ProtectedNetwork(hand_net, plan_from_neurons(hand_net, Mode.TMR, {1: [0]}), {})
    for copy in range(3):
        for bit in range(8):
            assert np.array_equal(
                protected_logits(tmr, x, fault=CopyFault(1, 0, copy, 1 << bit)),
                forward_all(hand_net, x)[-1],
            )
    # an unprotected neuron is not corrected
    bad = protected_logits(tmr, x, fault=CopyFault(1, 1, 0, 1 << 6))
    assert bad[0, 1] == 10 + 64


def test_overhead_counts(hand_net: Network) -> None:
    split = network_overhead(hand_net, plan_from_neurons(hand_net, Mode.SPLIT, {1: [0, 2]}))
    tmr = network_overhead(hand_net, plan_from_neurons(hand_net, Mode.TMR, {1: [0, 2]}))
    assert (split.neurons, tmr.neurons) == (3 + 2, 3 + 4)
    # split: per copy a 2-byte weight row + 4-byte bias, and a weight in the next layer per logit
    assert split.param_bytes_extra == 2 * (2 + 4 + 2)
    assert tmr.param_bytes_extra == 2 * 2 * (2 + 4)
    assert split.activation_bytes_extra == 2
    assert split.correction_ops == 2
    assert split.param_bytes == (6 + 3 * 4) + (6 + 2 * 4)


def test_plan_from_nvf_and_file_round_trip(tiny_net, tmp_path: Path) -> None:
    nvf = {
        i: np.linspace(0, 0.3, int(np.prod(tiny_net.layers[i].out_shape)))
        for i in tiny_net.neuron_layers
    }
    plan = plan_from_nvf(tiny_net, Mode.TMR, nvf, 20.0)
    assert plan.n_protected == sum(int(np.sum(v * 100 >= 20 - 1e-12)) for v in nvf.values())
    save_plan(plan, tmp_path / "p.npz")
    back = load_plan(tmp_path / "p.npz", tiny_net)
    assert back.mode is Mode.TMR
    assert back.threshold_percent == 20.0
    for a, b in zip(plan.neurons, back.neurons, strict=True):
        np.testing.assert_array_equal(a, b)
    other = Network(
        "x", "mnist", tiny_net.input_shape, 2.0, tiny_net.mean, tiny_net.std, tiny_net.layers
    )
    with pytest.raises(ModelFormatError, match="made for another network"):
        load_plan(tmp_path / "p.npz", other)


@pytest.mark.parametrize("count", [5, 200])
def test_conv_neuron_accumulators_both_paths(tiny_net, tiny_images, rng, count: int) -> None:
    from accelsim.functional.reference import conv2d_acc_ref

    x = quantize_images(tiny_net, tiny_images)
    layer = tiny_net.layers[0]  # conv c1: 3 x 9 x 9 = 243 outputs; 200 takes the full-map path
    index = np.sort(rng.choice(243, count, replace=False))
    want = conv2d_acc_ref(x, layer.weight, layer.bias, stride=1, padding=1).reshape(len(x), -1)[
        :, index
    ]
    np.testing.assert_array_equal(neuron_accumulators(layer, x, index), want)
