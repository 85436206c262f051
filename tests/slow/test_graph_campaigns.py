"""Graph campaigns on the shipped ResNet-20 and MobileNet, protected as ``run`` protects them:
every sampled fault, in every copy, equals a full protected re-inference of the graph."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim import ProtectionMode, load_dataset, load_workload, workload_nvf
from accelsim.faults.graph_campaign import GraphCampaignInputs, faulty_graph_output
from accelsim.faults.model import apply_fault
from accelsim.functional.models import quantize_inputs
from accelsim.protection.graph_protected import protected_graph_values
from tests.conftest import data_dir_or_fail
from tests.unit.protection.test_graph_protection import sampled_faults

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2"])
@pytest.mark.parametrize("mode", [ProtectionMode.NONE, ProtectionMode.SPLIT, ProtectionMode.TMR],
                         ids=lambda m: m.value)  # fmt: skip
def test_zoo_graph_faults_equal_full_protected_reinference(name, mode, tmp_path) -> None:
    data_dir = data_dir_or_fail()
    spec = load_workload(name)
    nvf = workload_nvf(spec, n_images=40, split="train", data_dir=data_dir, output_dir=tmp_path)
    pnet = nvf.protected(mode, nvf.threshold_for_top(5))
    g = pnet.net
    data = load_dataset("cifar10", "test", n_images=30, data_dir=data_dir)
    x = quantize_inputs(g, data.images)
    source = GraphCampaignInputs(g, x, data.labels.astype(np.int64), pnet.plan, dict(pnet.ranges))
    state = source.golden()
    faults = sampled_faults(g, pnet.plan, 40, seed=3)
    reached = 0
    for k in range(len(faults)):
        node, index, copy = int(faults.layer[k]), int(faults.index[k]), int(faults.copy[k])
        mask, kind = int(faults.mask[k]), int(faults.kind[k])
        got = faulty_graph_output(pnet, state, node, index, mask, kind, copy=copy)
        hit = (node, index, copy, lambda v, m=mask, c=kind: apply_fault(v, m, c))
        want = protected_graph_values(pnet, x, fault=hit)[0][g.output]
        np.testing.assert_array_equal(got, want)
        reached += not np.array_equal(want, state.values[g.output])
    assert reached > 0
