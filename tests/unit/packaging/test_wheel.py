"""A wheel built from the source tree carries every module and data file of ``accelsim/``
(a folder without ``__init__.py`` was once left out of every non-editable install)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

SKIP_PARTS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".nbi", ".nbc"}  # bytecode and numba's caches


def _source_files() -> set[str]:
    """What the package folder holds: git's list where the tree is a clone, else a walk."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "accelsim"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [str(p.relative_to(REPO)) for p in (REPO / "accelsim").rglob("*") if p.is_file()]
    return {
        f for f in out
        if not SKIP_PARTS & set(Path(f).parts) and Path(f).suffix not in SKIP_SUFFIXES
    }  # fmt: skip


def test_every_package_folder_is_a_real_package() -> None:
    for folder in {Path(f).parent for f in _source_files() if f.endswith(".py")}:
        assert (REPO / folder / "__init__.py").is_file(), f"{folder} has no __init__.py"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Built from a copy of the project's files (setuptools would reuse a stale ``build/``)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "accelsim", src / "accelsim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("accelsim-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_carries_every_source_and_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = sorted(_source_files() - names)
    assert not missing, f"missing from the wheel: {missing}"
    for needed in ("accelsim/zoo/lenet5.npz", "accelsim/presets/arch/pe16x16.yaml",
                   "accelsim/presets/workloads/lenet5.yaml",
                   "accelsim/datasets/sample/t10k-images-idx3-ubyte.gz"):  # fmt: skip
        assert needed in names


def test_the_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    (entry,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "accelsim = accelsim.cli.main:main" in wheel.read(entry).decode()
