"""What the commands share: option checks, the NVF of a workload with a progress bar, and
printing (tables, or one JSON document with ``--json``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tqdm import tqdm

from accelsim.config.workload import BitMapping, NvfMethod, WorkloadSpec
from accelsim.errors import positive_int
from accelsim.study import WorkloadNvf, workload_nvf


def check_positive(args: argparse.Namespace, *options: str) -> None:
    """Each named option that was given is an int >= 1 (the error names its flag)."""
    for option in options:
        value = getattr(args, option, None)
        if value is not None:
            positive_int(option, value)


def emit(args: argparse.Namespace, doc: Any, lines: list[str]) -> None:
    """One JSON document with ``--json``, else the lines."""
    print(json.dumps(doc, indent=2) if args.json else "\n".join(lines))


def text_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """Right-aligned columns under a header and a rule."""
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return [fmt.format(*headers), fmt.format(*("-" * w for w in widths))] + [
        fmt.format(*r) for r in cells[1:]
    ]


def estimate(e) -> dict[str, float]:
    """An estimate with its interval as JSON data."""
    return {"value": e.value, "lo": e.lo, "hi": e.hi}


def analysis_of(args: argparse.Namespace, spec: WorkloadSpec) -> WorkloadNvf:
    """``workload_nvf`` with the command's overrides and a progress bar."""
    check_positive(args, "images")
    method = getattr(args, "method", None)
    mapping = getattr(args, "mapping", None)
    n_images = getattr(args, "images", None)
    with tqdm(total=n_images or spec.analysis.n_images, unit="img", desc="NVF", disable=None,
              leave=False) as bar:  # fmt: skip
        run = workload_nvf(
            spec, method=NvfMethod(method) if method else None,
            mapping=BitMapping(mapping) if mapping else None,
            gradient_check=getattr(args, "gradient_check", None), n_images=n_images,
            split=getattr(args, "split", None), data_dir=args.data_dir,
            output_dir=args.output_dir, force=getattr(args, "force", False),
            on_progress=bar.update,
        )  # fmt: skip
    return run
