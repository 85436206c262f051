"""Architecture and workload files: the shipped ones load, every broken one names its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accelsim.config.arch import Dataflow, load_arch
from accelsim.config.workload import BitMapping, FaultKind, ProtectionMode, load_workload
from accelsim.errors import ConfigError
from tests.conftest import DATA, REPO

BROKEN = sorted((DATA / "broken").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: <message>'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_file_error_names_file_key_and_values(path: Path) -> None:
    loader = load_arch if path.stem.startswith("arch_") else load_workload
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {_expected(path)}")):
        loader(path)


def test_there_are_broken_cases_for_both_schemas() -> None:
    stems = [p.stem for p in BROKEN]
    assert sum(s.startswith("arch_") for s in stems) >= 15
    assert sum(s.startswith("workload_") for s in stems) >= 15


@pytest.mark.parametrize("name", ["pe8x8", "pe16x16", "pe32x32", "eyeriss12x14"])
def test_shipped_architectures_load(name: str) -> None:
    spec = load_arch(REPO / "arch" / f"{name}.yaml")
    assert spec.name == name
    assert spec.pe_array.rows * spec.pe_array.cols in (64, 256, 1024, 168)
    assert isinstance(spec.pe_array.dataflow, Dataflow)
    assert spec.correction.lcu_lanes >= 1


@pytest.mark.parametrize("name", ["lenet5", "mlp7", "alexnet"])
def test_shipped_workloads_load(name: str) -> None:
    spec = load_workload(REPO / "workloads" / f"{name}.yaml")
    assert spec.network == name
    assert spec.thresholds_percent[0] == 0.0
    assert spec.thresholds_percent[-1] == 50.0
    assert ProtectionMode.SPLIT in spec.protection_modes


def test_workload_defaults(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("version: 1\nworkload:\n  network: mlp7\n")
    spec = load_workload(path)
    assert spec.dataset.split == "test"
    assert spec.dataset.n_images is None
    assert spec.analysis.bit_mapping is BitMapping.LOG2
    assert spec.faults.kind is FaultKind.SINGLE_BIT
    assert spec.faults.samples == "leveugle"
    assert spec.protection_modes == (ProtectionMode.NONE, ProtectionMode.SPLIT, ProtectionMode.TMR)
    assert spec.output_dir == Path("out/w")


def test_workload_network_path_is_relative_to_the_file(tmp_path: Path, tiny_net) -> None:
    from accelsim.functional.modelio import save_network

    (tmp_path / "models").mkdir()
    save_network(tiny_net, tmp_path / "models" / "tiny.yaml")
    path = tmp_path / "w.yaml"
    path.write_text(
        "version: 1\nworkload:\n  network: models/tiny.yaml\n  faults: {kind: adjacent_bits, bits: 2}\n"
    )
    spec = load_workload(path)
    assert spec.network == str((tmp_path / "models" / "tiny.yaml").resolve())
    assert spec.faults.n_bits == 2


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.yaml: <file>: expected a readable YAML file"):
        load_arch(tmp_path / "missing.yaml")
