"""Protection plans of a workload at one NVF threshold, every mode: what each costs (neurons,
bytes, correction operations) and what it does to the fault-free accuracy; the library behind
``protect``. Plans are written as ``OUTPUT/protection/plan-NET-MODE-TTHRESHOLD.npz``::

    result = protect_workload("lenet5", ProtectionOptions(threshold=5))
    for m in result.modes:
        print(m.mode.value, m.overhead.neurons_overhead_percent, m.accuracy)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.config.workload import ProtectionMode, WorkloadSpec, dataset_source
from accelsim.datasets import load_dataset
from accelsim.errors import positive_int
from accelsim.functional.models import input_shape, model_logits, quantize_inputs
from accelsim.functional.network import classify
from accelsim.protection.overhead import NetworkOverhead, network_overhead
from accelsim.protection.plan import ProtectionPlan, save_plan
from accelsim.protection.protected import protected_logits
from accelsim.study.nvf import WorkloadNvf, workload_nvf
from accelsim.study.options import as_workload, check_percent, check_split

PROTECT_MODES = tuple(m for m in ProtectionMode if m is not ProtectionMode.NONE)


@dataclass(frozen=True)
class ProtectionOptions:
    """``threshold``: protect every neuron with NVF >= this percent; ``eval_images``: images
    of the workload's dataset split for the fault-free accuracy (default: the workload's);
    ``images`` / ``split``: the NVF analysis images; ``modes``: default every protecting one."""

    threshold: float = 20.0
    eval_images: int | None = None
    images: int | None = None
    split: str | None = None
    modes: tuple[ProtectionMode, ...] = PROTECT_MODES
    data_dir: Path | str | None = None
    output_dir: Path | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", check_percent("threshold", self.threshold))
        for name in ("eval_images", "images"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))
        check_split("split", self.split)
        object.__setattr__(self, "modes", tuple(ProtectionMode(m) for m in self.modes))


@dataclass(frozen=True, eq=False)
class ModeProtection:
    """One mode's plan, where it is saved, what it costs, its fault-free accuracy and how many
    images it classifies differently from the unprotected network."""

    mode: ProtectionMode
    plan: ProtectionPlan
    path: Path
    overhead: NetworkOverhead
    accuracy: float
    changed_images: int

    def document(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.overhead), "mode": self.mode.value,
                "plan": str(self.path), "accuracy": self.accuracy,
                "changed_images": self.changed_images}  # fmt: skip


@dataclass(frozen=True, eq=False)
class ProtectionResult:
    nvf: WorkloadNvf
    options: ProtectionOptions
    eval_split: str
    eval_images: int
    unprotected_accuracy: float
    modes: tuple[ModeProtection, ...]
    out_dir: Path

    def document(self) -> dict[str, Any]:
        """The result as one JSON-ready document (what ``protect --json`` prints)."""
        return {
            "network": self.nvf.net.name, "threshold_percent": self.options.threshold,
            "nvf_cached": self.nvf.cached, "nvf_method": self.nvf.result.method.value,
            "eval_split": self.eval_split, "eval_images": self.eval_images,
            "unprotected_accuracy": self.unprotected_accuracy,
            "modes": [m.document() for m in self.modes],
        }  # fmt: skip


def protect_workload(
    workload: WorkloadSpec | Path | str = "lenet5",
    options: ProtectionOptions | None = None,
    *,
    on_nvf_progress: Callable[[int], None] | None = None,
    on_mode: Callable[[ProtectionMode], None] | None = None,
) -> ProtectionResult:
    """Every mode's plan at the threshold (from the cached NVF), saved, costed and checked on
    fault-free images."""
    o = options or ProtectionOptions()
    spec = as_workload(workload)
    nvf = workload_nvf(spec, n_images=o.images, split=o.split, data_dir=o.data_dir,
                       output_dir=o.output_dir, on_progress=on_nvf_progress)  # fmt: skip
    net = nvf.net
    out_dir = Path(o.output_dir or spec.output_dir) / "protection"
    data = load_dataset(dataset_source(spec, net.dataset), spec.dataset.split,
                        shape=input_shape(net), data_dir=o.data_dir,
                        n_images=o.eval_images or spec.dataset.n_images)  # fmt: skip
    x = quantize_inputs(net, data.images)
    golden = classify(model_logits(net, x))
    modes = []
    for mode in o.modes:
        if on_mode is not None:
            on_mode(mode)
        pnet = nvf.protected(mode, o.threshold)
        path = out_dir / f"plan-{net.name}-{mode.value}-T{o.threshold:g}.npz"
        save_plan(pnet.plan, path)
        preds = classify(protected_logits(pnet, x))
        modes.append(ModeProtection(mode, pnet.plan, path, network_overhead(net, pnet.plan),
                                    float(np.mean(preds == data.labels)),
                                    int(np.sum(preds != golden))))  # fmt: skip
    return ProtectionResult(nvf, o, data.split, len(x), float(np.mean(golden == data.labels)),
                            tuple(modes), out_dir)  # fmt: skip
