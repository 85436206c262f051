"""``run``'s NVF: the exhaustive ground truth when it fits the budget, else the workload's
settings; the paper's setting and the workload's on request."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelsim import ParameterError, StudyOptions, prepare_study
from accelsim.config.workload import BitMapping, NvfMethod


def _study(tmp_path: Path, **options):
    return prepare_study("pe16x16", "lenet5", StudyOptions(
        out_dir=tmp_path / "out", nvf_split="sample", nvf_images=32, test_split="sample",
        test_images=20, faults=10, tops=(5,), thresholds=(), **options))  # fmt: skip


def test_auto_takes_the_exhaustive_nvf_when_it_fits(tmp_path: Path) -> None:
    study = _study(tmp_path)
    assert study.result.method is NvfMethod.EXHAUSTIVE
    assert study.meta["nvf_choice"] == "auto"
    assert "exhaustive, the ground truth (estimated" in study.meta["nvf_why"]
    assert study.meta["nvf_why"] in study.header


def test_auto_falls_back_to_the_workloads_settings_over_the_budget(tmp_path: Path) -> None:
    study = _study(tmp_path, nvf_budget_seconds=0)
    assert study.result.method is NvfMethod.LINEAR  # workloads/lenet5.yaml's analysis.method
    assert "over the 0 s NVF budget" in study.meta["nvf_why"]


def test_paper_and_workload_settings_on_request(tmp_path: Path) -> None:
    paper = _study(tmp_path, nvf="paper").result
    assert (paper.method, paper.mapping, paper.has_gradient_check) == (
        NvfMethod.EXACT, BitMapping.PAPER, True)  # fmt: skip
    assert _study(tmp_path, nvf="workload").result.method is NvfMethod.LINEAR


@pytest.mark.parametrize(("options", "parameter"),
                         [({"nvf": "best"}, "nvf"), ({"nvf_budget_seconds": -1},
                                                     "nvf_budget_seconds")])  # fmt: skip
def test_bad_choices_name_the_parameter(options, parameter) -> None:
    with pytest.raises(ParameterError) as err:
        StudyOptions(**options)
    assert err.value.parameter == parameter
