"""The NVF of a workload's network, computed once and cached under its output folder.

The cache key hashes the network, the analysis images and the settings (``analysis.store``);
a cached result that fails to load is recomputed with a note, never trusted.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from accelsim import files
from accelsim.analysis.store import analysis_key, load_nvf, save_nvf
from accelsim.analysis.vulnerability import NvfResult, compute_nvf
from accelsim.config.workload import (
    BitMapping,
    NvfMethod,
    ProtectionMode,
    WorkloadSpec,
    dataset_source,
)
from accelsim.datasets import Dataset, load_dataset
from accelsim.errors import ModelFormatError, positive_int
from accelsim.functional.models import AnyNetwork, input_shape, load_model, quantize_inputs
from accelsim.protection.plan import ProtectionPlan, plan_from_nvf, threshold_for_top
from accelsim.protection.protected import ProtectedNetwork, profile_ranges, unprotected
from accelsim.study.options import as_enum


@dataclass(frozen=True, eq=False)
class WorkloadNvf:
    """A workload's NVF: the network, the analysis images, the result, where it is cached
    (``stem``.npz), whether it came from the cache, and the seconds it took; and what the
    protection recipe derives from it (the one place it is written): plans at an NVF
    threshold, the value ranges profiled on the analysis images, the protected network."""

    net: AnyNetwork
    data: Dataset
    result: NvfResult
    stem: Path
    cached: bool
    seconds: float

    @functools.cached_property
    def ranges(self) -> dict[int, tuple[int, int]]:
        """Per neuron layer, the (lo, hi) int8 output range on the analysis images (what
        Ranger clamps to and zeroing tests against)."""
        return profile_ranges(self.net, quantize_inputs(self.net, self.data.images))

    def threshold_for_top(self, top_percent: float) -> float:
        """The NVF threshold (percent) that protects the ``top_percent`` % most vulnerable
        neurons."""
        return threshold_for_top(self.result.by_layer, top_percent)

    def plan(self, mode: ProtectionMode, threshold_percent: float) -> ProtectionPlan:
        """``mode`` on every neuron with NVF >= ``threshold_percent``."""
        return plan_from_nvf(self.net, ProtectionMode(mode), self.result.by_layer,
                             threshold_percent)  # fmt: skip

    def protected(self, mode: ProtectionMode, threshold_percent: float) -> ProtectedNetwork:
        """The network under test: ``plan(mode, threshold_percent)`` with the profiled ranges
        (the unprotected network for mode none)."""
        if ProtectionMode(mode) is ProtectionMode.NONE:
            return unprotected(self.net)
        return ProtectedNetwork(self.net, self.plan(mode, threshold_percent), self.ranges)

    def describe(self) -> dict[str, object]:
        """The NVF run as JSON data: method, images, whether it came from the cache."""
        return {"nvf_method": self.result.method.value, "nvf_images": self.result.n_inputs,
                "nvf_cached": self.cached}  # fmt: skip


def _note(message: str) -> None:
    sys.stderr.write(f"note: {message}\n")


def workload_nvf(
    spec: WorkloadSpec,
    *,
    method: NvfMethod | str | None = None,
    mapping: BitMapping | str | None = None,
    gradient_check: bool | None = None,
    n_images: int | None = None,
    split: str | None = None,
    data_dir: Path | str | None = None,
    output_dir: Path | str | None = None,
    force: bool = False,
    workers: int = 1,
    data: Dataset | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> WorkloadNvf:
    """The NVF of ``spec``'s network; each argument left None takes the workload's
    ``analysis`` setting. Loads a saved result with the same network, images and settings from
    ``output_dir`` (default: the workload's) unless ``force``, else computes and saves it
    (``workers``: processes for the exhaustive method). ``data``: the analysis images when the
    caller has loaded them already (they replace ``n_images``, ``split`` and ``data_dir``)."""
    a = spec.analysis
    method = as_enum("method", NvfMethod, method) if method else a.method
    mapping = as_enum("mapping", BitMapping, mapping) if mapping else a.bit_mapping
    gradient_check = a.has_gradient_check if gradient_check is None else gradient_check
    n_images = a.n_images if n_images is None else positive_int("n_images", n_images)
    net = load_model(spec.network)
    if data is None:
        data = load_dataset(
            dataset_source(spec, net.dataset),
            split or a.split,
            shape=input_shape(net),
            data_dir=data_dir,
            n_images=n_images,
        )
    x = quantize_inputs(net, data.images)
    key = analysis_key(net, x, method, mapping, gradient_check)
    folder = Path(output_dir or spec.output_dir) / "analysis"
    stem = folder / f"nvf-{net.name}-{method.value}-{key}"
    npz = files.beside(stem, ".npz")
    start = time.perf_counter()
    result = None
    if npz.is_file() and not force:
        try:
            result = load_nvf(npz, key, net)
        except ModelFormatError as exc:  # truncated, corrupt, another's: never trusted
            (on_note or _note)(f"{exc}; computing the NVF again")
    cached = result is not None
    if result is None:
        result = compute_nvf(net, x, method=method, mapping=mapping,
                             gradient_check=gradient_check, workers=workers,
                             on_progress=on_progress)  # fmt: skip
        save_nvf(result, npz, key)
    return WorkloadNvf(net, data, result, stem, cached, time.perf_counter() - start)
