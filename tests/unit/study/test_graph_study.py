"""The headline study on graph networks: ResNet-20 and MobileNet workloads end to end, the
unprotected row's critical rate against full re-inference of every sampled fault."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from accelsim import (
    ProtectionMode,
    classify,
    load_dataset,
    load_model,
    load_workload,
    neuron_faults,
    protected_graph_values,
    quantize_inputs,
    run_study,
    unprotected,
)
from accelsim.faults.model import apply_fault
from tests.conftest import REPO, data_dir_or_fail


def test_run_on_resnet20_end_to_end(tmp_path) -> None:
    data_dir = data_dir_or_fail()
    result = run_study(
        "pe16x16", "resnet20", faults=8, test_images=12, nvf_images=40, tops=(2,),
        thresholds=(), modes=("split", "tmr"), out_dir=tmp_path, data_dir=data_dir,
    )  # fmt: skip
    rows = {r.mode: r for r in result.rows}
    assert list(rows) == [ProtectionMode.NONE, ProtectionMode.SPLIT, ProtectionMode.TMR]
    g = load_model("resnet20")
    assert rows[ProtectionMode.NONE].neurons == 200_704 == g.n_neurons
    # split protects only the splittable nodes (the convolutions before an ADD have none)
    assert (
        0 < rows[ProtectionMode.SPLIT].critical_neurons < rows[ProtectionMode.TMR].critical_neurons
    )
    assert "split rows protect only" in result.meta["split_note"]
    assert rows[ProtectionMode.TMR].cycles > rows[ProtectionMode.NONE].cycles
    assert (tmp_path / "report.html").is_file()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert len(doc["rows"]) == 3

    # the unprotected row, recomputed fault by fault by full re-inference
    spec = load_workload("resnet20")
    fspec = dataclasses.replace(spec.faults, samples=8, seed=spec.faults.seed)
    _, faults = neuron_faults(unprotected(g), fspec)
    data = load_dataset("cifar10", "test", n_images=12, data_dir=data_dir)
    x = quantize_inputs(g, data.images)
    pnet = unprotected(g)
    golden = classify(protected_graph_values(pnet, x)[0][g.output])
    changed = 0
    for k in range(len(faults)):
        m, kind = int(faults.mask[k]), int(faults.kind[k])
        hit = (
            int(faults.layer[k]),
            int(faults.index[k]),
            0,
            lambda v, m=m, kind=kind: apply_fault(v, m, kind),
        )
        logits = protected_graph_values(pnet, x, fault=hit)[0][g.output]
        changed += int(np.sum(classify(logits) != golden))
    assert rows[ProtectionMode.NONE].critical_rate.value == pytest.approx(changed / (8 * 12))
    assert rows[ProtectionMode.NONE].faults == 8


def test_run_on_mobilenet_end_to_end(tmp_path) -> None:
    data_dir = data_dir_or_fail()
    result = run_study(
        "pe16x16", "mobilenetv2", faults=6, test_images=8, nvf_images=30, tops=(5,),
        thresholds=(), modes=("split",), out_dir=tmp_path, data_dir=data_dir,
    )  # fmt: skip
    assert [r.mode for r in result.rows] == [ProtectionMode.NONE, ProtectionMode.SPLIT]
    assert result.rows[1].critical_neurons > 0
    assert result.rows[1].cycles >= result.rows[0].cycles
    assert (tmp_path / "figures" / "fig4.png").is_file()


def test_the_papers_nvf_setting_is_taken_on_graphs(tmp_path) -> None:
    """``nvf="paper"`` on a graph asks for the exact search (graphs have it since the exact
    searches run on downstream re-runs; computing it on ResNet-20 takes minutes per image, so
    only the choice is checked here, the search itself in tests/unit/analysis)."""
    from accelsim import BitMapping, NvfMethod, StudyOptions, load_graph
    from accelsim.study.headline import _nvf_settings

    spec = load_workload(REPO / "workloads" / "resnet20.yaml")
    options = StudyOptions(nvf="paper", nvf_images=4, out_dir=tmp_path)
    g = load_graph("resnet20")
    settings, why = _nvf_settings(spec, options, g, np.zeros((1, 3, 32, 32), np.int8))
    assert settings == {"method": NvfMethod.EXACT, "mapping": BitMapping.PAPER,
                        "gradient_check": True}  # fmt: skip
    assert why.startswith("the paper's setting: exact search")


def test_simulate_with_pe_faults_on_mobilenet(tmp_path) -> None:
    """The simulate command's PE campaign on a graph network (depthwise folds included)."""
    from accelsim import SimulationOptions, simulate_workload

    options = SimulationOptions(modes=("none", "tmr"), top=5, pe_faults=6, test_images=6,
                                images=20, output_dir=tmp_path, data_dir=data_dir_or_fail())  # fmt: skip
    result = simulate_workload("pe16x16", "mobilenetv2", options)
    assert [row.mode for row in result.pe_faults] == [ProtectionMode.NONE, ProtectionMode.TMR]
    assert all(row.pe.n_faults == 6 for row in result.pe_faults)
    assert result.runs[1].report.total_cycles > result.runs[0].report.total_cycles
