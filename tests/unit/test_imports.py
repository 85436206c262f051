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
    "analysis": {"errors", "config", "functional", "protection", "faults", "numba"},
    "protection": {"errors", "config", "functional"},
    "faults": {"errors", "config", "functional", "protection", "numba", "threadpoolctl", "dask"},
    "timing": {"errors", "config", "functional", "protection", "faults", "numba", "simpy"},
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
    "cli": {"*"},  # but only through the public API: test_cli_and_experiments_use_the_public_api
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


# experiments that measure private kernels against their numpy references: no public API can
# hand them over (the kernels are an implementation detail of forward/compute_nvf/campaigns)
PRIVATE_BENCHMARKS = {
    "experiments/benchmarks/bench_kernels.py": {"accelsim.functional"},
    # times the graph campaign's own steps node by node (wraps them in place)
    "experiments/benchmarks/profile_graph_campaign.py": {"accelsim.faults"},
    # the same for the chain engine's steps, layer by layer
    "experiments/benchmarks/profile_chain_campaign.py": {"accelsim.faults"},
}


def _public_only(path: Path, also: set[str]) -> list[str]:
    return [name for name in _imports(path)
            if name.split(".")[0] == "accelsim" and name != "accelsim"
            and not any(name == a or name.startswith(a + ".") for a in also)]  # fmt: skip


def test_cli_and_experiments_use_the_public_api() -> None:
    """The CLI and every script under experiments/ import accelsim's public names only
    (``from accelsim import ...``); the CLI also its own modules (``accelsim.cli``)."""
    for path in (PKG / "cli").glob("*.py"):
        bad = _public_only(path, {"accelsim.cli"})
        assert not bad, f"{path.relative_to(PKG)} imports {bad}"
    root = PKG.parent
    scripts = sorted((root / "experiments").rglob("*.py"))
    assert len(scripts) > 10
    for path in scripts:
        rel = str(path.relative_to(root))
        bad = _public_only(path, PRIVATE_BENCHMARKS.get(rel, set()))
        assert not bad, f"{rel} imports {bad}"


def test_the_public_api_is_what_init_exports() -> None:
    """Every name in ``accelsim.__all__`` resolves (the study's on first use); no subpackage
    leaks into it."""
    import types

    import accelsim

    for name in accelsim.__all__:
        value = getattr(accelsim, name)
        assert name == "files" or not isinstance(value, types.ModuleType), name
    for name in ("run_study", "prepare_campaign", "simulate_workload", "protect_workload",
                 "analyze_workload", "run_campaign", "compute_nvf", "plan_from_nvf"):  # fmt: skip
        assert name in accelsim.__all__, name
