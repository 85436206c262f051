"""What the commands share: option checks, the NVF progress bar and printing (tables, or one
JSON document with ``--json``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tqdm import tqdm

from accelsim import WorkloadSpec, positive_int


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


def nvf_bar(spec: WorkloadSpec, n_images: int | None) -> tqdm:
    """The progress bar of a workload's NVF analysis (it stays empty when the result comes
    from the cache)."""
    return tqdm(total=n_images or spec.analysis.n_images, unit="img", desc="NVF", disable=None,
                leave=False)  # fmt: skip


def parse_floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers (an argparse type)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values
