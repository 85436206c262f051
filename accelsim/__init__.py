"""accelsim: a cycle-level simulator of an int8 DNN accelerator for fault-resilience research.

Public API (the CLI and ``experiments/`` use only these names).
"""

from __future__ import annotations

__version__ = "0.1.0"

from accelsim.config.arch import ArchSpec, load_arch
from accelsim.config.workload import WorkloadSpec, load_workload
from accelsim.datasets import Dataset, load_dataset, resolve_data_dir
from accelsim.errors import AccelsimError, ConfigError, DatasetError, ModelFormatError, ShapeError
from accelsim.functional.modelio import load_network, network_hash, save_network
from accelsim.functional.network import (
    Network,
    classify,
    forward,
    forward_all,
    predict,
    quantize_images,
    replace_neurons,
    resume,
)
from accelsim.functional.quantize import quantize_network
from accelsim.report.tables import PAPER_TABLE_I, PAPER_THRESHOLDS, critical_table
from accelsim.timing.accelerator import TimingReport
from accelsim.timing.pe_faults import PeFault, PeSite
from accelsim.timing.simulate import plan_schedule, simulate, timing_overhead
from accelsim.timing.values import accelerator_logits

__all__ = [
    "PAPER_TABLE_I",
    "PAPER_THRESHOLDS",
    "AccelsimError",
    "ArchSpec",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "ModelFormatError",
    "Network",
    "PeFault",
    "PeSite",
    "ShapeError",
    "Study",
    "StudyOptions",
    "StudyResult",
    "TimingReport",
    "WorkloadNvf",
    "WorkloadSpec",
    "__version__",
    "accelerator_logits",
    "classify",
    "critical_table",
    "forward",
    "forward_all",
    "load_arch",
    "load_dataset",
    "load_network",
    "load_workload",
    "network_hash",
    "plan_schedule",
    "predict",
    "prepare_study",
    "quantize_images",
    "quantize_network",
    "replace_neurons",
    "resolve_data_dir",
    "resume",
    "run_study",
    "save_network",
    "simulate",
    "timing_overhead",
    "workload_nvf",
]

# The study (and through it matplotlib) loads on first use, not with ``import accelsim``:
# campaign workers and scripts that only run the engine do not pay for the figures.
_STUDY_NAMES = frozenset(
    ("Study", "StudyOptions", "StudyResult", "WorkloadNvf", "prepare_study", "run_study",
     "workload_nvf")
)  # fmt: skip


def __getattr__(name: str) -> object:
    if name in _STUDY_NAMES:
        import accelsim.study

        return getattr(accelsim.study, name)
    raise AttributeError(f"module 'accelsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
