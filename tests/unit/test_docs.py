"""The README and docs/ hold together: every relative link (and anchor) resolves, every
concrete `python -m accelsim ...` command parses, every script they quote exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from accelsim.cli.main import build_parser
from tests.conftest import REPO

PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.S)
PLACEHOLDER = re.compile(r"[\[\]|]|\.\.\.|^[A-Z][A-Z_]*$")


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"(?m)^#+ (.+)$", page.read_text())}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to {target} does not resolve"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def _commands(page: Path) -> list[str]:
    out = []
    for block, span in CODE.findall(page.read_text()):
        for line in (block or span).splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("python -m accelsim", "python experiments/")):
                out.append(line)
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_quoted_commands_parse(page: Path) -> None:
    parser = build_parser()
    for line in _commands(page):
        tokens = shlex.split(line)
        if tokens[1].startswith("experiments/"):
            assert (REPO / tokens[1]).is_file(), f"{page.name}: no script {tokens[1]}"
            continue
        argv = tokens[3:]
        if any(PLACEHOLDER.search(t) for t in argv):
            continue  # a synopsis (ARCH, [--flag], a|b), not a command
        code = 0
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # --help exits 0, a usage error 2
            code = exc.code
        assert code == 0, f"{page.name}: `{line}` does not parse"


def test_the_docs_quote_commands_at_all() -> None:
    assert sum(len(_commands(p)) for p in PAGES) > 20


def test_the_api_pages_engine_example_runs(tmp_path: Path, monkeypatch) -> None:
    """docs/api.md's campaign-engine example, as printed (small enough for the default run)."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)
    engine = [b for b in blocks if "run_stored(" in b]
    assert len(engine) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(engine[0], "docs/api.md", "exec"), {})
    assert (tmp_path / "lenet5.sqlite").is_file()
