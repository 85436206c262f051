"""Built-in architectures and workloads load by name; the source tree's folders are links."""

from __future__ import annotations

import pytest

from accelsim.config.arch import load_arch
from accelsim.config.workload import load_workload
from accelsim.errors import ConfigError
from tests.conftest import REPO


def test_bare_names_load_the_built_in_files() -> None:
    assert load_arch("pe8x8").pe_array.rows == 8
    assert load_workload("mlp7").network == "mlp7"
    assert load_arch("pe16x16") == load_arch(REPO / "arch" / "pe16x16.yaml")


def test_the_source_tree_links_to_the_installed_folders() -> None:
    for name in ("arch", "workloads"):
        assert (REPO / name).resolve() == (REPO / "accelsim" / "presets" / name).resolve()


def test_an_unknown_name_lists_the_built_ins(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"^pe7x7: <file>: expected a YAML file or a built-in "
        r"name \(eyeriss12x14, pe16x16, pe32x32, pe8x8\), got 'no such file'$",
    ):
        load_arch("pe7x7")
    with pytest.raises(ConfigError, match=r"x\.yaml: <file>: expected a readable YAML file"):
        load_workload("x.yaml")  # a path, not a name


def test_a_file_of_that_name_wins_over_the_built_in(monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pe8x8").write_text((REPO / "arch" / "pe32x32.yaml").read_text())
    assert load_arch("pe8x8").pe_array.rows == 32
