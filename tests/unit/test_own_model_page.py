"""docs/own-model.md: every command on the page runs, in order, from a copy of the repository's
example models, offline (the page's dataset is written from the bundled MNIST sample)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from accelsim.cli.main import main
from tests.conftest import DATA, REPO
from tests.unit.interop.test_onnx_import import _needs
from tests.unit.interop.test_tflite_micro import tflm_logits

PAGE = REPO / "docs" / "own-model.md"


def _commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_page_quotes_every_command_it_describes() -> None:
    verbs = [c.split()[3] for c in _commands() if c.startswith("python -m accelsim ")]
    for verb in ("data", "import", "eval", "analyze", "protect", "inject", "simulate", "run",
                 "export"):  # fmt: skip
        assert verb in verbs, verb


def test_every_command_on_the_page_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    _needs("onnx")
    models = tmp_path / "tests" / "data" / "models"
    models.mkdir(parents=True)
    for name in ("lenet5_keras.tflite", "lenet5_bn_torch.onnx", "resdw_torch_qdq.onnx"):
        shutil.copy(DATA / "models" / name, models / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCELSIM_DATA", raising=False)  # the page needs nothing but the sample
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    printed = {}
    for command in _commands():
        argv = shlex.split(command)
        if argv[:3] == ["python", "-m", "accelsim"]:
            assert main(argv[3:]) == 0, command
            printed[command] = capsys.readouterr().out
        else:
            assert argv[:2] == ["python", "-c"], command
            subprocess.run([sys.executable, *argv[1:]], check=True, cwd=tmp_path)
    # the accuracies the page quotes are what its import commands print
    imports = [out for c, out in printed.items() if c.split()[3] == "import"]
    assert "int8 accuracy 90.90 % on the first 1,000 test images" in imports[0]
    assert "int8 accuracy 94.60 %" in imports[1]
    assert "(float model: 94.50 %)" in imports[1]
    # what the page says the commands wrote
    assert (tmp_path / "mymodel" / "run" / "report.html").is_file()
    assert (tmp_path / "mymodel" / "scalesim" / "lenet5_keras.cfg").is_file()
    from accelsim import load_graph

    model = (tmp_path / "mymodel" / "lenet5_keras.yaml").read_text()
    assert "dataset: ../digits.npz" in model
    g = load_graph(tmp_path / "mymodel" / "lenet5_keras.yaml")
    import numpy as np

    from accelsim.functional.graph import graph_forward

    x = np.random.default_rng(0).integers(-128, 128, (20, 1, 28, 28)).astype(np.int8)
    blob = (tmp_path / "mymodel" / "lenet5_keras.tflite").read_bytes()
    np.testing.assert_array_equal(tflm_logits(blob, x), graph_forward(g, x))
    assert main(["eval", "mymodel-onnx/lenet5_bn_torch-workload.yaml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1000
