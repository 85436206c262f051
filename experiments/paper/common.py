"""Shared by the paper-reproduction scripts: run the study through accelsim's library as the
JSON document ``run --json`` prints, and the paper's reference numbers (DESIGN.md section 7,
the paper's Table I)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from accelsim import PAPER_TABLE_I, PAPER_THRESHOLDS, StudyOptions, files, prepare_study

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "experiments" / "out"
NETWORKS = ("mlp7", "lenet5", "alexnet")
NAMES = {"mlp7": "MLP-7", "lenet5": "LeNet-5", "alexnet": "AlexNet"}
# the zoo's paper-regime variants (experiments/undertrain.py): compared with the same paper rows
NAMES |= {f"{k}-paper": f"{v} (paper regime)" for k, v in NAMES.items()}
PAPER = {  # DESIGN.md section 7
    "mlp7": {"neurons": 2816, "int8_accuracy": 70.1, "fi_sample": 6750, "critical_20": 503,
             "critical_20_share": 17.86, "split_loss_20": 4.86, "loss_ratio": 2.14,
             "critical_ratio": 1.85, "tmr_neurons_20": 3822, "split_neurons_20": 3319},
    "lenet5": {"neurons": 4684, "int8_accuracy": 89.1, "fi_sample": 7650, "critical_20": 187,
               "critical_20_share": 3.99, "split_loss_20": 3.88, "loss_ratio": 3.38,
               "critical_ratio": 2.78, "tmr_neurons_20": 5058, "split_neurons_20": 4871},
    "alexnet": {"neurons": 103168, "int8_accuracy": 62.9, "fi_sample": 9500, "critical_20": 622,
                "critical_20_share": 0.6, "split_loss_20": 1.56, "loss_ratio": 3.36,
                "critical_ratio": 1.97, "tmr_neurons_20": 104412, "split_neurons_20": 103790},
}  # fmt: skip


def paper_key(network: str) -> str:
    """The paper's network a zoo network stands for (``lenet5-paper`` -> ``lenet5``)."""
    return network.removesuffix("-paper")


def paper_shares(network: str) -> list[float]:
    """The shares (percent of neurons) the paper's NVF grid protects, largest first, > 0."""
    table = PAPER_TABLE_I[paper_key(network)]
    return [100 * c / table[0] for c in table if c > 0]


def study_json(arch: str, workload: str, **options: Any) -> dict[str, Any]:
    """The headline study through the library (``accelsim.run_study``), as the JSON document
    ``run --json`` prints; a progress bar on a terminal."""
    from tqdm import tqdm

    study = prepare_study(arch, workload, StudyOptions(**options))
    print(study.header, flush=True)
    with tqdm(total=study.n_faults, unit="fault", disable=None) as bar:
        result = study.run(on_progress=bar.update)
    return json.loads(json.dumps(result.document()))


def git_hash() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=REPO, check=False)  # fmt: skip
    return out.stdout.strip() or "unknown"


def save(name: str, doc: dict[str, Any], markdown: list[str]) -> Path:
    """Print the markdown and write it with the JSON under experiments/out/NAME/, one file pair
    per set of networks (a run of one network does not overwrite another's)."""
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"result-{'-'.join(doc)}"
    files.write_text(stem.with_suffix(".json"), json.dumps({**doc, "git": git_hash()}, indent=1))
    files.write_text(stem.with_suffix(".md"), "\n".join(markdown) + "\n")
    print("\n".join(markdown))
    print(f"wrote {stem}.md and .json")
    return out


__all__ = ["NAMES", "NETWORKS", "OUT", "PAPER", "PAPER_TABLE_I", "PAPER_THRESHOLDS", "REPO",
           "paper_key", "paper_shares", "save", "study_json"]  # fmt: skip
