"""The zoo networks computed fold by fold on the shipped arrays equal the functional engine
bit for bit (unprotected and split-protected), on the bundled MNIST sample."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accelsim.config.arch import Dataflow, PEArraySpec, load_arch
from accelsim.config.workload import ProtectionMode
from accelsim.datasets import load_dataset
from accelsim.functional.modelio import load_network
from accelsim.functional.network import forward, quantize_images
from accelsim.protection.plan import plan_from_neurons
from accelsim.protection.protected import ProtectedNetwork, protected_logits
from accelsim.timing.simulate import plan_schedule
from accelsim.timing.values import accelerator_logits
from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("flow", list(Dataflow))
@pytest.mark.parametrize("name", ["lenet5", "mlp7"])
def test_zoo_network_on_the_array_equals_forward(name, flow, rng):
    net = load_network(name)
    x = quantize_images(net, load_dataset("mnist", "sample", n_images=8).images)
    arch = load_arch(REPO / "arch" / "eyeriss12x14.yaml")
    arch = dataclasses.replace(arch, pe_array=PEArraySpec(12, 14, flow))
    none = ProtectedNetwork(net, plan_from_neurons(net, ProtectionMode.NONE, {}), {})
    got = accelerator_logits(plan_schedule(net, arch), none, x)
    np.testing.assert_array_equal(got, forward(net, x))
    first = net.neuron_layers[0]
    size = int(np.prod(net.layers[first].out_shape))
    plan = plan_from_neurons(
        net, ProtectionMode.SPLIT, {first: rng.choice(size, size // 20, replace=False)}
    )
    pnet = ProtectedNetwork(net, plan, {})
    got = accelerator_logits(plan_schedule(net, arch, plan), pnet, x)
    np.testing.assert_array_equal(got, protected_logits(pnet, x))
