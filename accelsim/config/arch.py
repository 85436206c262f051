"""Accelerator architecture files (``arch/*.yaml``) -> a frozen, validated ``ArchSpec``.

    version: 1
    arch:
      pe_array: {rows: 16, cols: 16, dataflow: output_stationary}
      clock_mhz: 500
      buffers:                      # one entry each: weights (+bias), inputs, outputs
        weights: {capacity_bytes: 65536, bandwidth_bytes_per_cycle: 16, double_buffered: true}
        inputs:  {capacity_bytes: 65536, bandwidth_bytes_per_cycle: 16, double_buffered: true}
        outputs: {capacity_bytes: 32768, bandwidth_bytes_per_cycle: 16, double_buffered: true}
      offchip: {bandwidth_bytes_per_cycle: 8, latency_cycles: 100}
      correction: {lcu_lanes: 16, lcu_latency_cycles: 1, voter_lanes: 16, voter_latency_cycles: 1}

The architecture's name is the file's stem.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelsim.config.checks import (
    Ctx,
    boolean,
    float_in,
    header,
    int_in,
    locate,
    one_of,
    only_keys,
    read_yaml,
)


class Dataflow(enum.Enum):
    OUTPUT_STATIONARY = "output_stationary"
    WEIGHT_STATIONARY = "weight_stationary"
    INPUT_STATIONARY = "input_stationary"


@dataclass(frozen=True)
class PEArraySpec:
    rows: int
    cols: int
    dataflow: Dataflow


@dataclass(frozen=True)
class BufferSpec:
    capacity_bytes: int
    bandwidth_bytes_per_cycle: int
    is_double_buffered: bool


@dataclass(frozen=True)
class OffchipSpec:
    bandwidth_bytes_per_cycle: int
    latency_cycles: int


@dataclass(frozen=True)
class CorrectionSpec:
    lcu_lanes: int
    lcu_latency_cycles: int
    voter_lanes: int
    voter_latency_cycles: int


@dataclass(frozen=True)
class ArchSpec:
    name: str
    pe_array: PEArraySpec
    clock_mhz: float
    weights: BufferSpec
    inputs: BufferSpec
    outputs: BufferSpec
    offchip: OffchipSpec
    correction: CorrectionSpec


BUFFER_NAMES = ("weights", "inputs", "outputs")
_BIG = 1 << 40


def _buffer(raw: Any, ctx: Ctx) -> BufferSpec:
    raw = only_keys(
        raw,
        ctx,
        required=("capacity_bytes", "bandwidth_bytes_per_cycle"),
        optional=("double_buffered",),
    )
    spec = BufferSpec(
        int_in(raw, "capacity_bytes", ctx, 1, _BIG),
        int_in(raw, "bandwidth_bytes_per_cycle", ctx, 1, 1 << 20),
        boolean(raw, "double_buffered", ctx, True),
    )
    if spec.bandwidth_bytes_per_cycle > spec.capacity_bytes:
        ctx.at("bandwidth_bytes_per_cycle").fail(
            f"at most capacity_bytes ({spec.capacity_bytes})", spec.bandwidth_bytes_per_cycle
        )
    return spec


def _check_consistency(spec: ArchSpec, ctx: Ctx) -> None:
    """A buffer must hold at least one operand vector of the array (one value per PE edge)."""
    edge = {
        "weights": spec.pe_array.cols,
        "inputs": spec.pe_array.rows,
        "outputs": spec.pe_array.cols,
    }
    for name in BUFFER_NAMES:
        buf: BufferSpec = getattr(spec, name)
        usable = buf.capacity_bytes // (2 if buf.is_double_buffered else 1)
        if usable < edge[name]:
            ctx.at("buffers").at(name).at("capacity_bytes").fail(
                f"room for one {edge[name]}-byte operand vector of the "
                f"{spec.pe_array.rows}x{spec.pe_array.cols} array"
                f"{' per half (double buffered)' if buf.is_double_buffered else ''}",
                buf.capacity_bytes,
            )


def parse_arch(raw: Any, ctx: Ctx, name: str) -> ArchSpec:
    body = only_keys(
        header(raw, ctx, "arch"),
        ctx.at("arch"),
        required=("pe_array", "clock_mhz", "buffers", "offchip", "correction"),
    )
    ctx = ctx.at("arch")
    pe: Mapping[str, Any] = only_keys(
        body["pe_array"], ctx.at("pe_array"), required=("rows", "cols", "dataflow")
    )
    pctx = ctx.at("pe_array")
    flows = [d.value for d in Dataflow]
    pe_spec = PEArraySpec(
        int_in(pe, "rows", pctx, 1, 4096),
        int_in(pe, "cols", pctx, 1, 4096),
        Dataflow(one_of(pe, "dataflow", pctx, flows)),
    )
    bufs = only_keys(body["buffers"], ctx.at("buffers"), required=BUFFER_NAMES)
    off = only_keys(
        body["offchip"],
        ctx.at("offchip"),
        required=("bandwidth_bytes_per_cycle",),
        optional=("latency_cycles",),
    )
    octx = ctx.at("offchip")
    corr_keys = ("lcu_lanes", "lcu_latency_cycles", "voter_lanes", "voter_latency_cycles")
    corr = only_keys(body["correction"], ctx.at("correction"), required=corr_keys)
    cctx = ctx.at("correction")
    spec = ArchSpec(
        name=name,
        pe_array=pe_spec,
        clock_mhz=float_in(body, "clock_mhz", ctx, 0.0, 1e5, lo_open=True),
        **{b: _buffer(bufs[b], ctx.at("buffers").at(b)) for b in BUFFER_NAMES},
        offchip=OffchipSpec(
            int_in(off, "bandwidth_bytes_per_cycle", octx, 1, 1 << 20),
            int_in(off, "latency_cycles", octx, 0, 1 << 20, 0),
        ),
        correction=CorrectionSpec(
            *(int_in(corr, k, cctx, 0 if "latency" in k else 1, 1 << 16) for k in corr_keys)
        ),
    )
    _check_consistency(spec, ctx)
    return spec


def load_arch(path: Path | str) -> ArchSpec:
    """Read and validate an architecture YAML file, or the built-in one of that name
    (``accelsim/presets/arch/NAME.yaml``) when ``path`` is a bare name with no such file."""
    path = locate(path, "arch")
    return parse_arch(read_yaml(path), Ctx(path), path.stem)
