"""Errors outside the CLI name the library's parameters; the CLI renders them as its flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from accelsim.cli.main import flag_of
from accelsim.errors import AccelsimError, ConfigError, ParameterError, positive_int
from accelsim.protection.plan import threshold_for_top

PKG = Path(__file__).resolve().parents[2] / "accelsim"
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _raised_strings(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    out.append((sub.lineno, sub.value))
    return out


def test_no_library_error_names_a_command_line_flag() -> None:
    found = [
        f"{path.relative_to(PKG)}:{line}: {text!r}"
        for path in PKG.rglob("*.py") if "cli" not in path.parts
        for line, text in _raised_strings(path) if FLAG.search(text)
    ]  # fmt: skip
    assert not found, found


@pytest.mark.parametrize("value", [0, -3, 2.5, "4", None, True])
def test_positive_int_names_the_parameter(value) -> None:
    with pytest.raises(ParameterError) as err:
        positive_int("workers", value)
    assert str(err.value) == f"workers: expected an int >= 1, got {value!r}"
    assert err.value.render("--workers") == f"--workers: expected an int >= 1, got {value!r}"


def test_positive_int_passes_ints_from_one() -> None:
    assert positive_int("workers", 1) == 1
    assert positive_int("workers", 10**12) == 10**12


def test_library_and_cli_spellings() -> None:
    with pytest.raises(ParameterError, match=r"^top_percent: expected a percentage") as err:
        threshold_for_top({0: np.ones(3)}, 0.0)
    assert err.value.render(flag_of(err.value.parameter)).startswith("--top: expected")
    assert flag_of("batch_size") == "--batch-size"
    assert flag_of("dask_address") == "--dask"


def test_messages_are_one_line_whatever_they_quote() -> None:
    err = ConfigError("a\nb.yaml", "x\ny", "an int", "1\n2")
    assert "\n" not in str(err)
    assert "a\\nb.yaml: x\\ny: expected an int" in str(err)
    assert "\n" not in str(AccelsimError("line one\nline two"))


@pytest.mark.parametrize("value", [-1, 2**63, 1.0, "3", None])
def test_seed_int_names_the_parameter(value) -> None:
    from accelsim.errors import seed_int

    with pytest.raises(
        ParameterError, match=r"^seed: expected an int in \[0, 9223372036854775807\]"
    ):
        seed_int("seed", value)
    assert seed_int("seed", 0) == 0


def test_a_negative_seed_is_one_clean_line_on_every_command(capsys, monkeypatch, tmp_path) -> None:
    from accelsim.cli.main import main

    monkeypatch.chdir(tmp_path)  # the workloads' output_dir is relative
    for argv in (["inject", "lenet5", "--seed", "-1"], ["run", "--seed", "-1"],
                 ["simulate", "pe8x8", "lenet5", "--seed", "-1"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert (
            err == "accelsim: error: --seed: expected an int in [0, 9223372036854775807], got -1\n"
        )


def test_study_options_name_the_field_and_what_is_allowed() -> None:
    from accelsim import StudyOptions

    with pytest.raises(
        ParameterError,
        match=r"^modes: expected modes from \{none, split, tmr, "
        r"dmr_and, dmr_recompute, ranger, zero, split_clamped\}, got \['split', 'tripl'\]$",
    ):
        StudyOptions(modes=("split", "tripl"))
    with pytest.raises(ParameterError, match=r"^tops: expected percentages in \[0, 100\], got 120"):
        StudyOptions(tops=(5, 120))
    with pytest.raises(ParameterError, match=r"^scale: expected one of quick, paper, got 'huge'$"):
        StudyOptions(scale="huge")
    with pytest.raises(ParameterError, match=r"^workers: expected an int >= 1, got 0$"):
        StudyOptions(workers=0)
