"""The zoo's paper-regime networks (``<name>-paper``, experiments/undertrain.py): the paper's
architectures at the paper's int8 accuracy (issue #18: within 2 points of 70.1 / 89.1 / 62.9 %
on the full test split), loadable everywhere a zoo name is."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim import ZOO_NAMES, load_dataset, load_network, load_workload, predict
from accelsim.report.tables import PAPER_TABLE_I, PAPER_THRESHOLDS, critical_table
from tests.conftest import data_dir_or_fail

PAPER_INT8 = {"mlp7": 70.1, "lenet5": 89.1, "alexnet": 62.9}  # the paper's baselines


@pytest.mark.parametrize("name", ["mlp7", "lenet5", "alexnet"])
def test_paper_variant_is_the_papers_architecture(name: str) -> None:
    base, paper = load_network(name), load_network(f"{name}-paper")
    assert f"{name}-paper" in ZOO_NAMES
    assert paper.name == f"{name}-paper"
    assert paper.n_neurons == base.n_neurons
    assert [type(r) for r in paper.layers] == [type(r) for r in base.layers]
    assert [r.out_shape for r in paper.layers] == [r.out_shape for r in base.layers]
    first = paper.neuron_layers[0]
    assert not np.array_equal(paper.layers[first].weight, base.layers[first].weight)  # retrained
    spec = load_workload(f"workloads/{name}-paper.yaml")
    assert spec.network == f"{name}-paper"


@pytest.mark.parametrize(
    "name", ["mlp7", "lenet5", pytest.param("alexnet", marks=pytest.mark.slow)]
)
def test_paper_variant_reaches_the_papers_int8_accuracy(name: str) -> None:
    net = load_network(f"{name}-paper")
    test = load_dataset(net.dataset, "test", data_dir=data_dir_or_fail())
    accuracy = 100 * float(np.mean(predict(net, test.images) == test.labels))
    assert abs(accuracy - PAPER_INT8[name]) <= 2.0
    assert net.accuracy is not None
    assert abs(100 * net.accuracy.int8_accuracy - accuracy) < 1e-9


def test_critical_table_shows_the_papers_numbers_for_a_paper_variant() -> None:
    nvf = np.array([0.0, 0.06, 0.3])
    rows = critical_table(nvf, PAPER_THRESHOLDS, "lenet5-paper")
    assert [r.paper_critical for r in rows] == list(PAPER_TABLE_I["lenet5"])
    assert [r.critical for r in rows[:3]] == [3, 2, 1]
