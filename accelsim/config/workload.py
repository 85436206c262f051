"""Workload files (``workloads/*.yaml``) -> a frozen, validated ``WorkloadSpec``.

    version: 1
    workload:
      network: lenet5              # a zoo name, or a model description path relative to this file
      dataset: {split: sample, images: all}   # split: train | test | sample; images: int or all
                                   # source: mnist | cifar10 | a .npz / image folder (default:
                                   # the model's dataset), relative to this file
      analysis: {split: train, images: 1000, method: linear, bit_mapping: log2,
                 gradient_check: true}           # NVF over the first `images` of `split`
      thresholds_percent: [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
      protection: {modes: [none, split, tmr]}
      faults: {site: neuron_output, kind: single_bit, bits: 1, samples: leveugle,
               error_margin: 0.01, confidence: 0.95, p: 0.5, seed: 0}
      accuracy_loss_budget_percent: 5
      output_dir: out/lenet5       # relative to the current directory

Every section but ``network`` is optional and has the defaults shown.
"""

from __future__ import annotations

import enum
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
    number_list,
    one_of,
    only_keys,
    read_yaml,
    string,
    string_list,
)

# the paper's networks as the zoo ships them, then the paper-regime variants (``<name>-paper``:
# trained only until the float network reached the paper's int8 accuracy,
# experiments/undertrain.py; docs/paper.md)
ZOO_NAMES = ("lenet5", "mlp7", "alexnet", "lenet5-paper", "mlp7-paper", "alexnet-paper")
# Graph networks of the zoo (model files version 2).
GRAPH_ZOO_NAMES = ("resnet20", "mobilenetv2")
SPLITS = ("train", "test", "sample")
DATASET_NAMES = ("mnist", "cifar10")
DEFAULT_THRESHOLDS = tuple(float(t) for t in range(0, 55, 5))


class NvfMethod(enum.Enum):
    LINEAR = "linear"
    EXACT = "exact"
    EXACT_BITS = "exact-bits"
    EXHAUSTIVE = "exhaustive"


class BitMapping(enum.Enum):
    LOG2 = "log2"
    PAPER = "paper"
    VALUE = "value"


class ProtectionMode(enum.Enum):
    NONE = "none"
    SPLIT = "split"
    TMR = "tmr"
    DMR_AND = "dmr_and"
    DMR_RECOMPUTE = "dmr_recompute"
    RANGER = "ranger"
    ZERO = "zero"
    SPLIT_CLAMPED = "split_clamped"  # split whose halves clamp at 63: the LCU's premise holds


class FaultSite(enum.Enum):
    NEURON_OUTPUT = "neuron_output"


class FaultKind(enum.Enum):
    SINGLE_BIT = "single_bit"
    ADJACENT_BITS = "adjacent_bits"
    RANDOM_BITS = "random_bits"
    STUCK_AT_0 = "stuck_at_0"
    STUCK_AT_1 = "stuck_at_1"


@dataclass(frozen=True)
class DatasetSpec:
    split: str
    n_images: int | None  # None: the whole split
    source: str | None = None  # a built-in name or a user's .npz / image folder (absolute)


@dataclass(frozen=True)
class AnalysisSpec:
    split: str
    n_images: int
    method: NvfMethod
    bit_mapping: BitMapping
    has_gradient_check: bool


@dataclass(frozen=True)
class FaultSpec:
    site: FaultSite
    kind: FaultKind
    n_bits: int
    samples: str | int  # "leveugle", "exhaustive" or a count
    error_margin: float
    confidence: float
    p: float
    seed: int


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    network: str  # zoo name or absolute path of a model description
    dataset: DatasetSpec
    analysis: AnalysisSpec
    thresholds_percent: tuple[float, ...]
    protection_modes: tuple[ProtectionMode, ...]
    faults: FaultSpec
    accuracy_loss_budget_percent: float
    output_dir: Path


def _values(enum_cls: type[enum.Enum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum_cls)


def _network(body: Any, ctx: Ctx, base: Path) -> str:
    value = string(body, "network", ctx)
    if value in (*ZOO_NAMES, *GRAPH_ZOO_NAMES):
        return value
    path = (base / value).resolve()
    if not path.is_file():
        names = ", ".join((*ZOO_NAMES, *GRAPH_ZOO_NAMES))
        ctx.at("network").fail(f"a zoo name {{{names}}} or an existing model file", value)
    return str(path)


def _dataset(raw: Any, ctx: Ctx, base: Path) -> DatasetSpec:
    raw = only_keys(raw, ctx, optional=("source", "split", "images"))
    images = raw.get("images", "all")
    n_images = None if images == "all" else int_in(raw, "images", ctx, 1, 10**7)
    source = None
    if "source" in raw:
        source = string(raw, "source", ctx)
        if source not in DATASET_NAMES:
            target = (base / source).resolve()
            if not ((target.suffix == ".npz" and target.is_file()) or target.is_dir()):
                ctx.at("source").fail(
                    f"one of {', '.join(DATASET_NAMES)}, or a .npz file or image folder "
                    f"relative to the workload file ({target} does not exist)",
                    source,
                )
            source = str(target)
    return DatasetSpec(one_of(raw, "split", ctx, SPLITS, "test"), n_images, source)


def dataset_source(spec: WorkloadSpec, model_dataset: str) -> str:
    """The dataset a workload runs on: its ``dataset.source``, else the model's own."""
    return spec.dataset.source or model_dataset


def _analysis(raw: Any, ctx: Ctx) -> AnalysisSpec:
    raw = only_keys(
        raw, ctx, optional=("split", "images", "method", "bit_mapping", "gradient_check")
    )
    return AnalysisSpec(
        one_of(raw, "split", ctx, SPLITS, "train"),
        int_in(raw, "images", ctx, 1, 10**6, 1000),
        NvfMethod(one_of(raw, "method", ctx, _values(NvfMethod), "linear")),
        BitMapping(one_of(raw, "bit_mapping", ctx, _values(BitMapping), "log2")),
        boolean(raw, "gradient_check", ctx, True),
    )


def _faults(raw: Any, ctx: Ctx) -> FaultSpec:
    keys = ("site", "kind", "bits", "samples", "error_margin", "confidence", "p", "seed")
    raw = only_keys(raw, ctx, optional=keys)
    samples = raw.get("samples", "leveugle")
    is_count = isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1
    if samples not in ("leveugle", "exhaustive") and not is_count:
        ctx.at("samples").fail("leveugle, exhaustive or a positive int", samples)
    kind = FaultKind(one_of(raw, "kind", ctx, _values(FaultKind), "single_bit"))
    n_bits = int_in(raw, "bits", ctx, 1, 8, 1)
    if n_bits != 1 and kind not in (FaultKind.ADJACENT_BITS, FaultKind.RANDOM_BITS):
        ctx.at("bits").fail(
            f"1 for kind {kind.value} (only adjacent_bits/random_bits take more)", n_bits
        )
    return FaultSpec(
        FaultSite(one_of(raw, "site", ctx, _values(FaultSite), "neuron_output")),
        kind,
        n_bits,
        samples,
        float_in(raw, "error_margin", ctx, 0.0, 0.5, 0.01, lo_open=True),
        float_in(raw, "confidence", ctx, 0.5, 0.9999, 0.95),
        float_in(raw, "p", ctx, 0.0, 1.0, 0.5, lo_open=True),
        int_in(raw, "seed", ctx, 0, 2**63 - 1, 0),
    )


def parse_workload(raw: Any, ctx: Ctx, name: str) -> WorkloadSpec:
    optional = (
        "dataset",
        "analysis",
        "thresholds_percent",
        "protection",
        "faults",
        "accuracy_loss_budget_percent",
        "output_dir",
    )
    body = only_keys(
        header(raw, ctx, "workload"), ctx.at("workload"), required=("network",), optional=optional
    )
    ctx = ctx.at("workload")
    protection = only_keys(body.get("protection", {}), ctx.at("protection"), optional=("modes",))
    modes = string_list(
        protection, "modes", ctx.at("protection"), _values(ProtectionMode), ["none", "split", "tmr"]
    )
    thresholds = number_list(body, "thresholds_percent", ctx, 0.0, 100.0, list(DEFAULT_THRESHOLDS))
    if list(thresholds) != sorted(set(thresholds)):
        ctx.at("thresholds_percent").fail("strictly increasing thresholds", list(thresholds))
    return WorkloadSpec(
        name=name,
        network=_network(body, ctx, Path(ctx.path).resolve().parent),
        dataset=_dataset(
            body.get("dataset", {}), ctx.at("dataset"), Path(ctx.path).resolve().parent
        ),
        analysis=_analysis(body.get("analysis", {}), ctx.at("analysis")),
        thresholds_percent=tuple(float(t) for t in thresholds),
        protection_modes=tuple(ProtectionMode(m) for m in modes),
        faults=_faults(body.get("faults", {}), ctx.at("faults")),
        accuracy_loss_budget_percent=float_in(
            body, "accuracy_loss_budget_percent", ctx, 0.0, 100.0, 5.0
        ),
        output_dir=Path(string(body, "output_dir", ctx, f"out/{name}")),
    )


def load_workload(path: Path | str) -> WorkloadSpec:
    """Read and validate a workload YAML file, or the built-in one of that name
    (``accelsim/presets/workloads/NAME.yaml``) when ``path`` is a bare name with no such file."""
    path = locate(path, "workloads")
    return parse_workload(read_yaml(path), Ctx(path), path.stem)
