"""The commands as library calls: option records refuse bad values naming the parameter; each
call's results agree with independent computations (predict, numpy counts, brute force)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from accelsim import (
    CampaignOptions,
    FaultKind,
    ParameterError,
    PeSite,
    ProtectionMode,
    ProtectionOptions,
    SimulationOptions,
    analyze_workload,
    load_dataset,
    load_network,
    load_plan,
    load_workload,
    predict,
    prepare_campaign,
    protect_workload,
    run_injection,
    simulate_workload,
)


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: CampaignOptions(protection="triple"), "protection"),
        (lambda: CampaignOptions(faults="many"), "faults"),
        (lambda: CampaignOptions(faults=0), "faults"),
        (lambda: CampaignOptions(kind="flip"), "kind"),
        (lambda: CampaignOptions(threshold=101), "threshold"),
        (lambda: CampaignOptions(workers=0), "workers"),
        (lambda: CampaignOptions(test_split="valid"), "test_split"),
        (lambda: CampaignOptions(seed=-1), "seed"),
        (lambda: SimulationOptions(top=0), "top"),
        (lambda: SimulationOptions(modes=("none", "quad")), "protection"),
        (lambda: SimulationOptions(pe_site="alu"), "pe_site"),
        (lambda: SimulationOptions(test_images=0), "test_images"),
        (lambda: ProtectionOptions(threshold=-1), "threshold"),
        (lambda: ProtectionOptions(eval_images=0), "eval_images"),
    ],
)
def test_options_refuse_bad_values_naming_the_parameter(make, parameter) -> None:
    with pytest.raises(ParameterError) as err:
        make()
    assert err.value.parameter == parameter
    assert "\n" not in str(err.value)


def test_bits_must_suit_the_kind() -> None:
    spec = load_workload("lenet5").faults
    assert CampaignOptions(kind="adjacent_bits").fault_spec(spec).n_bits == 2
    with pytest.raises(ParameterError, match="3 bits with kind single_bit") as err:
        CampaignOptions(kind="single_bit", bits=3).fault_spec(spec)
    assert err.value.parameter == "bits"


def test_injection_counts_and_files(tmp_path: Path) -> None:
    campaign = prepare_campaign("lenet5", CampaignOptions(
        faults=60, test_split="sample", test_images=50, output_dir=tmp_path))  # fmt: skip
    net = load_network("lenet5")
    assert campaign.population.size == 8 * net.n_neurons  # single-bit, unprotected: N x 8 bits
    assert not campaign.database.exists()  # nothing written before run
    r = campaign.run()
    data = load_dataset("mnist", "sample", n_images=50)
    assert r.golden_correct == int(np.sum(predict(net, data.images) == data.labels))
    assert r.overall.n_faults == len(r.rows) == 60
    assert sum(s.n_faults for s in r.per_layer) == sum(s.n_faults for s in r.per_bit) == 60
    with r.files[1].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60
    loss = np.mean([float(row["accuracy_loss_pp"]) for row in rows])
    assert r.overall.accuracy_loss_pp.value == pytest.approx(loss, abs=1e-6)
    again = run_injection("lenet5", faults=60, test_split="sample", test_images=50,
                          output_dir=tmp_path, resume=True)  # fmt: skip
    assert again.evaluated == 0
    assert np.array_equal(again.rows.n_changed, r.rows.n_changed)
    with pytest.raises(ParameterError) as err:  # a second run without resume
        run_injection("lenet5", faults=60, test_split="sample", test_images=50,
                      output_dir=tmp_path)  # fmt: skip
    assert err.value.parameter == "resume"


def test_protection_plans_protect_the_neurons_over_the_threshold(tmp_path: Path) -> None:
    r = protect_workload("lenet5", ProtectionOptions(threshold=1, images=32, split="sample",
                                                     eval_images=100, output_dir=tmp_path))  # fmt: skip
    over = int(np.sum(r.nvf.result.nvf * 100 >= 1 - 1e-12))
    assert over > 0
    assert [m.mode for m in r.modes] == [m for m in ProtectionMode if m is not ProtectionMode.NONE]
    for m in r.modes:
        assert m.plan.n_protected == m.overhead.protected == over
        assert load_plan(m.path, r.nvf.net).n_protected == over
        assert 0 <= m.changed_images <= r.eval_images == 100
    tmr = next(m for m in r.modes if m.mode is ProtectionMode.TMR)
    assert tmr.overhead.neurons == r.nvf.net.n_neurons + 2 * over


def test_analysis_table_counts_neurons_over_each_threshold(tmp_path: Path) -> None:
    a = analyze_workload("lenet5", n_images=32, split="sample", output_dir=tmp_path)
    nvf = a.nvf.result.nvf
    for row in a.table:
        assert row.critical == int(np.sum(nvf * 100 >= row.threshold_percent - 1e-9))
    assert all(p.is_file() for p in a.files)
    assert a.document()["images"] == 32


def test_pe_campaigns_resume_and_run_on_workers_to_the_same_rows(tmp_path: Path) -> None:
    opts = dict(modes=("none",), pe_faults=16, test_images=20, pe_site="output_register")
    one = simulate_workload("pe8x8", "lenet5", SimulationOptions(**opts, output_dir=tmp_path / "a"))
    pe = one.pe_faults[0]
    assert pe.site is PeSite.OUTPUT_REGISTER
    assert pe.pe.n_faults == 16
    assert pe.neuron.n_faults == 16
    assert pe.exposure == 1
    assert all(p.is_file() for p in pe.databases)
    with pytest.raises(ParameterError) as err:
        simulate_workload("pe8x8", "lenet5", SimulationOptions(**opts, output_dir=tmp_path / "a"))
    assert err.value.parameter == "resume"
    resumed = simulate_workload("pe8x8", "lenet5", SimulationOptions(
        **opts, output_dir=tmp_path / "a", resume=True))  # fmt: skip
    two = simulate_workload("pe8x8", "lenet5", SimulationOptions(
        **opts, output_dir=tmp_path / "b", workers=2))  # fmt: skip
    for other in (resumed, two):
        assert other.pe_faults[0].document() == pe.document()
    assert one.runs[0].report.total_cycles == two.runs[0].report.total_cycles


def test_fault_kinds_reach_the_campaign(tmp_path: Path) -> None:
    c = prepare_campaign("lenet5", CampaignOptions(
        faults=10, kind="stuck_at_1", test_split="sample", test_images=5, output_dir=tmp_path))  # fmt: skip
    assert c.fault_spec.kind is FaultKind.STUCK_AT_1
    assert "stuck_at_1 faults" in c.header
