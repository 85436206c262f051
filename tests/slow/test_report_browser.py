"""The HTML report renders in a real browser (``pytest -m slow``): Debian's headless Chromium
loads report.html from disk, every figure decodes and every table is there."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from accelsim.cli.main import main
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_report_renders_in_headless_chromium(tmp_path, capsys):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("needs Debian's chromium package: apt-get install chromium")
    argv = ["run", str(REPO / "arch" / "pe8x8.yaml"), str(REPO / "workloads" / "lenet5.yaml"),
            "--out", str(tmp_path), "--faults", "30", "--test-images", "50",
            "--nvf-split", "sample", "--nvf-images", "64"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    report = tmp_path / "report.html"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert 'data-loaded="yes"' in dom
    widths = dict(re.findall(r'<figure id="(figure-[a-z0-9]+)"><img[^>]*data-width="(\d+)"', dom))
    assert set(widths) == {"figure-fig4", "figure-overhead", "figure-nvf"}
    assert all(int(w) > 500 for w in widths.values()), widths
    for table in ("results", "table-i", "thresholds"):
        assert re.search(rf'<table id="{table}">.*?<tbody><tr>', dom), table
