"""The accelerator's outputs equal the functional engine's bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.config.arch import Dataflow, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.functional.network import forward, quantize_images
from accelsim.protection.plan import EXTRA_COPIES, plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, protected_logits
from accelsim.timing.kernels import fold_acc_int8, fold_acc_ref
from accelsim.timing.schedule import schedule_network
from accelsim.timing.values import accelerator_logits
from tests.unit.timing.conftest import arch_with


@pytest.mark.parametrize(
    "block", [(0, 1, 0, 1, 0, 1), (2, 7, 1, 4, 0, 9), (0, 7, 0, 5, 3, 4), (3, 3, 0, 5, 0, 9)]
)
def test_fold_kernel_matches_reference(rng, block):
    a = rng.integers(-128, 128, (3, 7, 9), dtype=np.int8)
    a[0, 0, :] = -128
    w = rng.integers(-128, 128, (9, 5), dtype=np.int8)
    w[:, 0] = -128
    got = rng.integers(-5, 5, (3, 7, 5)).astype(np.int64)
    want = got.copy()
    fold_acc_int8(a, w, block, got)
    fold_acc_ref(a, w, block, want)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (5, 7), (16, 16)])
def test_unprotected_outputs_equal_forward(tiny_net, tiny_images, flow, shape):
    arch = arch_with(PEArraySpec(*shape, flow))
    pnet = ProtectedNetwork(tiny_net, plan_from_neurons(tiny_net, ProtectionMode.NONE, {}), {})
    x = quantize_images(tiny_net, tiny_images)
    got = accelerator_logits(schedule_network(tiny_net, arch), pnet, x)
    np.testing.assert_array_equal(got, forward(tiny_net, x))


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("mode", [m for m in ProtectionMode if m is not ProtectionMode.NONE])
def test_protected_outputs_equal_protected_inference(tiny_net, tiny_images, rng, flow, mode):
    arch = arch_with(PEArraySpec(3, 4, flow))
    x = quantize_images(tiny_net, tiny_images)
    chosen = {0: rng.choice(243, 40, replace=False), 2: [0, 5, 15], 4: [1, 6]}
    plan = plan_from_neurons(tiny_net, mode, chosen)
    pnet = ProtectedNetwork(tiny_net, plan, profile_ranges(tiny_net, x[:10]))
    schedule = schedule_network(
        tiny_net, arch, protected=dict(zip(plan.layers, plan.neurons, strict=True)),
        extra_copies=EXTRA_COPIES[mode], mode=mode.value,
    )  # fmt: skip
    got = accelerator_logits(schedule, pnet, x)
    np.testing.assert_array_equal(got, protected_logits(pnet, x))
