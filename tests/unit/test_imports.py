"""Each folder imports only what STYLE.md allows; the core never imports torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "accelsim"
THIRD_PARTY = {
    "numpy",
    "numba",
    "simpy",
    "yaml",
    "matplotlib",
    "tqdm",
    "dask",
    "distributed",
    "torch",
    "threadpoolctl",
}
ALLOWED = {  # folder -> accelsim folders and third-party libraries it may import
    "config": {"errors", "yaml"},
    "functional": {"errors", "config", "numba", "threadpoolctl"},
    "datasets": {"errors"},
    "zoo": set(),
    "analysis": {"errors", "config", "functional", "faults", "numba"},
    "protection": {"errors", "config", "functional"},
    "faults": {"errors", "config", "functional", "protection", "numba", "threadpoolctl", "dask"},
    "timing": {"errors", "config", "functional", "protection", "numba", "simpy"},
    "sweep": {"errors", "config", "functional", "protection", "faults", "timing"},
    "report": {"errors", "analysis", "sweep", "matplotlib"},
    "study": {
        "errors",
        "config",
        "datasets",
        "functional",
        "analysis",
        "protection",
        "faults",
        "timing",
        "sweep",
        "report",
    },  # the library's top: runs a whole study
    "cli": {"*"},
}
COMMON = {"numpy", "files"}  # accelsim.files: atomic writes, folder locks


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _targets(names: set[str]) -> set[str]:
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "accelsim" and len(parts) > 1:
            out.add(parts[1])
        elif parts[0] in THIRD_PARTY:
            out.add(parts[0])
    return out


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_imports_follow_the_rules(folder: str) -> None:
    allowed = ALLOWED[folder] | COMMON | {folder}
    for path in (PKG / folder).rglob("*.py"):
        bad = _targets(_imports(path)) - allowed
        if "*" not in ALLOWED[folder]:
            assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_core_never_imports_torch() -> None:
    for path in PKG.rglob("*.py"):
        assert not any(n.split(".")[0] == "torch" for n in _imports(path)), path


def test_cli_modules_share_only_public_helpers() -> None:
    """What the commands share lives in cli/common.py under public names; no CLI module
    reaches into another's private helpers."""
    for path in (PKG / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("accelsim"):
                private = [
                    a.name for a in node.names if a.name.startswith("_") and a.name[1] != "_"
                ]
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_paper_scripts_use_only_the_public_api() -> None:
    """experiments/paper/ imports accelsim's public names only (``from accelsim import ...``),
    never a module inside it nor the CLI."""
    for path in (PKG.parent / "experiments" / "paper").glob("*.py"):
        for name in _imports(path):
            if name.split(".")[0] == "accelsim":
                assert name == "accelsim", f"{path.name} imports {name}"
