"""The study as a library: the headline sweep (``run_study`` / ``prepare_study``) and the
cached NVF of a workload (``workload_nvf``)."""

from accelsim.study.headline import (
    ROW_HEADERS,
    TABLE_I_HEADERS,
    Scale,
    Study,
    StudyOptions,
    StudyResult,
    prepare_study,
    row_cells,
    run_study,
)
from accelsim.study.nvf import WorkloadNvf, workload_nvf

__all__ = [
    "ROW_HEADERS",
    "TABLE_I_HEADERS",
    "Scale",
    "Study",
    "StudyOptions",
    "StudyResult",
    "WorkloadNvf",
    "prepare_study",
    "row_cells",
    "run_study",
    "workload_nvf",
]
