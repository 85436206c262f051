"""Protection plans: which neurons of which layers are protected, and how; saved as ``.npz``."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accelsim import files
from accelsim.config.workload import ProtectionMode
from accelsim.errors import AccelsimError, ModelFormatError, ParameterError
from accelsim.functional.models import AnyNetwork, layer_name, layer_sizes, model_hash
from accelsim.functional.network import Network

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
EXTRA_COPIES = {  # copies beyond the original neuron that each mode adds
    ProtectionMode.NONE: 0,
    ProtectionMode.SPLIT: 1,
    ProtectionMode.SPLIT_CLAMPED: 1,
    ProtectionMode.TMR: 2,
    ProtectionMode.DMR_AND: 1,
    ProtectionMode.DMR_RECOMPUTE: 1,
    ProtectionMode.RANGER: 0,
    ProtectionMode.ZERO: 0,
}
SPLITS = (ProtectionMode.SPLIT, ProtectionMode.SPLIT_CLAMPED)  # modes that halve and use the LCU


@dataclass(frozen=True, eq=False)
class ProtectionPlan:
    """Protected neurons per neuron layer: ``neurons[k]`` are flat indices into the output of
    layer ``layers[k]`` (sorted, unique). ``threshold_percent`` is None for explicit lists."""

    network_hash: str
    mode: ProtectionMode
    layers: tuple[int, ...]
    neurons: tuple[I64, ...]
    threshold_percent: float | None

    def __post_init__(self) -> None:
        for arr in self.neurons:
            arr.setflags(write=False)

    @property
    def n_protected(self) -> int:
        return sum(int(a.size) for a in self.neurons)

    def for_layer(self, layer: int) -> I64 | None:
        return self.neurons[self.layers.index(layer)] if layer in self.layers else None


def plan_hash(plan: ProtectionPlan) -> str:
    """SHA-256 (16 hex digits) of the mode and the protected neurons."""
    h = hashlib.sha256(repr((plan.mode.value, plan.layers)).encode())
    for arr in plan.neurons:
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _check_layers(net: AnyNetwork, mode: ProtectionMode, chosen: dict[int, I64]) -> None:
    if not isinstance(net, Network):
        _check_nodes(net, mode, chosen)
        return
    for layer, idx in chosen.items():
        rec = net.layers[layer]
        if layer not in net.neuron_layers:
            raise AccelsimError(
                f"layer {rec.name} holds no neurons (the classifier and pooling "
                "layers cannot be protected)"
            )
        size = int(np.prod(rec.out_shape))
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise AccelsimError(f"layer {rec.name}: neuron index outside 0..{size - 1}")
        if mode in SPLITS and idx.size and not rec.relu:
            raise AccelsimError(
                f"layer {rec.name}: cannot split its neurons: without a fused ReLU their outputs "
                "can be negative, and the LCU is only valid on non-negative values"
            )


def _check_nodes(g, mode: ProtectionMode, chosen: dict[int, I64]) -> None:
    from accelsim.protection.graph_protected import check_split_nodes

    sizes = layer_sizes(g)
    for node, idx in chosen.items():
        if node not in sizes:
            name = g.nodes[node].name if 0 <= node < len(g.nodes) else f"#{node}"
            raise AccelsimError(
                f"{g.source}: node {name} holds no neurons (only the weighted nodes before the "
                "classifier can be protected)"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= sizes[node]):
            raise AccelsimError(
                f"{g.source}: node {layer_name(g, node)}: neuron index outside 0..{sizes[node] - 1}"
            )
    if mode in SPLITS:
        check_split_nodes(g, chosen)


def splittable(net: AnyNetwork, layer: int) -> bool:
    """Whether the neurons of ``layer`` can be split (a chain: a fused ReLU; a graph: an
    activation clamping at zero point -128 or 0)."""
    if isinstance(net, Network):
        return bool(getattr(net.layers[layer], "relu", False))
    from accelsim.protection.graph_protected import split_refusal

    return split_refusal(net, layer) is None


def plan_from_neurons(
    net: AnyNetwork,
    mode: ProtectionMode,
    neurons: dict[int, npt.ArrayLike],
    *,
    threshold_percent: float | None = None,
) -> ProtectionPlan:
    """A plan protecting the given flat neuron indices per layer index."""
    chosen = {int(k): np.unique(np.asarray(v, np.int64)) for k, v in neurons.items()}
    chosen = {k: v for k, v in sorted(chosen.items()) if v.size}
    _check_layers(net, mode, chosen)
    return ProtectionPlan(
        model_hash(net), mode, tuple(chosen), tuple(chosen.values()), threshold_percent
    )


def plan_from_nvf(
    net: AnyNetwork, mode: ProtectionMode, nvf_by_layer: dict[int, F64], threshold_percent: float
) -> ProtectionPlan:
    """Protect every neuron with NVF >= threshold (NVF as fractions, per neuron layer). A split
    takes only the layers whose neurons can be split (``splittable``: on a ResNet the
    convolutions feeding an ADD without an activation are left out)."""
    chosen = {
        k: np.flatnonzero(v * 100 >= threshold_percent - 1e-12)
        for k, v in nvf_by_layer.items()
        if mode not in SPLITS or splittable(net, k)
    }
    return plan_from_neurons(net, mode, chosen, threshold_percent=threshold_percent)


def save_plan(plan: ProtectionPlan, path: Path) -> None:
    arrays = {
        "network_hash": np.array(plan.network_hash),
        "mode": np.array(plan.mode.value),
        "layers": np.array(plan.layers, np.int64),
        "threshold_percent": np.array(
            np.nan if plan.threshold_percent is None else plan.threshold_percent
        ),
    }
    for layer, idx in zip(plan.layers, plan.neurons, strict=True):
        arrays[f"neurons_{layer}"] = idx
    with files.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_plan(path: Path, net: AnyNetwork) -> ProtectionPlan:
    """Read a plan and check that it was made for ``net``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        mode = ProtectionMode(str(data["mode"]))
        layers = tuple(int(v) for v in data["layers"])
        neurons = {layer: data[f"neurons_{layer}"] for layer in layers}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelFormatError(path, f"not a readable protection plan ({exc})") from exc
    if str(data["network_hash"]) != model_hash(net):
        raise ModelFormatError(
            path, f"protection plan was made for another network than {net.name}"
        )
    t = float(data["threshold_percent"])
    return plan_from_neurons(net, mode, neurons, threshold_percent=None if np.isnan(t) else t)


def threshold_for_top(nvf_by_layer: dict[int, F64], top_percent: float) -> float:
    """The NVF threshold (percent) that protects the ``top_percent`` % most vulnerable neurons
    (ties at the threshold included; never neurons with NVF 0)."""
    if not 0 < top_percent <= 100:
        raise ParameterError(
            "top_percent", f"{{parameter}}: expected a percentage in (0, 100], got {top_percent:g}"
        )
    values = np.sort(np.concatenate([np.ravel(v) for v in nvf_by_layer.values()]))[::-1]
    positive = values[values > 0]
    if positive.size == 0:
        raise AccelsimError("every neuron has NVF 0: there is nothing to protect")
    k = max(1, int(np.ceil(values.size * top_percent / 100)))
    return 100.0 * float(max(values[min(k, values.size) - 1], positive[-1]))
