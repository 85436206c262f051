"""Saving and reloading NVF results (``.npz`` without pickles, plus a CSV), keyed by a hash of
the network, the analysis images and the settings, so later runs reuse them."""

from __future__ import annotations

import csv
import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from accelsim import files
from accelsim.analysis.vulnerability import LayerNvf, Mapping, Method, NvfResult
from accelsim.errors import ModelFormatError
from accelsim.functional.models import AnyNetwork, layer_name, layer_shape, model_hash

FORMAT_VERSION = 1
_FIELDS = ("nvf", "bit_map", "n_skipped", "half_width")


def analysis_key(
    net: AnyNetwork, x: npt.NDArray[np.int8], method: Method, mapping: Mapping, gradient_check: bool
) -> str:
    """Hash of everything the result depends on."""
    h = hashlib.sha256()
    h.update(f"v{FORMAT_VERSION}|{model_hash(net)}|{method.value}|{mapping.value}|".encode())
    checked = gradient_check and method not in (Method.EXACT_BITS, Method.EXHAUSTIVE)
    h.update(f"{checked}|{x.shape}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:20]


def save_nvf(result: NvfResult, path: Path, key: str) -> None:
    """Write ``path`` (.npz) atomically."""
    arrays: dict[str, np.ndarray] = {
        "key": np.array(key),
        "method": np.array(result.method.value),
        "mapping": np.array(result.mapping.value if result.mapping else ""),
        "gradient_check": np.array(result.has_gradient_check),
        "n_inputs": np.array(result.n_inputs),
        "layers": np.array([lay.layer for lay in result.layers]),
        "names": np.array([lay.name for lay in result.layers]),
    }
    for lay in result.layers:
        for f in _FIELDS:
            arrays[f"{lay.name}.{f}"] = getattr(lay, f)
    with files.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_nvf(path: Path, key: str | None = None, net: AnyNetwork | None = None) -> NvfResult:
    """Read a saved result; with ``key``, refuse one computed for something else; with ``net``,
    one whose layers and sizes are not that network's. Anything unreadable (truncated, not an
    npz, missing or malformed arrays) is a :class:`ModelFormatError`, never another error."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise ModelFormatError(path, f"not a readable NVF file ({exc})") from exc
    if key is not None and str(data.get("key")) != key:
        raise ModelFormatError(
            path, "NVF file was computed for another network, images or settings"
        )
    try:
        result = _result(data)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ModelFormatError(path, f"not a readable NVF file (bad content: {exc})") from exc
    if net is not None:
        _check_against(result, net, path)
    return result


def _result(data: dict[str, np.ndarray]) -> NvfResult:
    layers = []
    for i, name in zip(data["layers"].tolist(), data["names"].tolist(), strict=True):
        nvf, bit_map, n_skipped, half = (data[f"{name}.{f}"] for f in _FIELDS)
        n = nvf.shape[0] if nvf.ndim == 1 else -1
        ok = (
            n >= 0 and bit_map.shape == (8, n) and n_skipped.shape == (n,)
            and half.shape == (n,) and all(a.dtype.kind == "f" for a in (nvf, bit_map, half))
            and n_skipped.dtype.kind in "iu"
        )  # fmt: skip
        if not ok:
            raise ValueError(f"layer {name}: arrays of inconsistent shapes or dtypes")
        layers.append(
            LayerNvf(int(i), str(name), nvf.astype(np.float64), bit_map.astype(np.float64),
                     n_skipped.astype(np.int64), half.astype(np.float64))
        )  # fmt: skip
    mapping = str(data["mapping"])
    return NvfResult(
        Method(str(data["method"])),
        Mapping(mapping) if mapping else None,
        bool(data["gradient_check"]),
        int(data["n_inputs"]),
        tuple(layers),
    )


def _check_against(result: NvfResult, net: AnyNetwork, path: Path) -> None:
    for lay in result.layers:
        count = len(net.layers) if hasattr(net, "layers") else len(net.nodes)
        ok = 0 <= lay.layer < count and layer_name(net, lay.layer) == lay.name
        if not ok or int(np.prod(layer_shape(net, lay.layer))) != lay.nvf.size:
            raise ModelFormatError(path, f"NVF file's layer {lay.name} is not {net.name}'s")


def write_csv(result: NvfResult, net: AnyNetwork, path: Path) -> None:
    """One row per neuron: layer, flat index, (c, y, x) or feature, NVF %, half-width, bits."""
    with files.atomic_text(path, newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "layer",
                "neuron",
                "channel",
                "y",
                "x",
                "nvf_percent",
                "half_width_percent",
                *(f"bit{b}_percent" for b in range(8)),
            ]
        )
        for lay in result.layers:
            shape = layer_shape(net, lay.layer)
            coords = np.unravel_index(np.arange(lay.nvf.size), shape)
            for n in range(lay.nvf.size):
                c = int(coords[0][n])
                y, x = (int(coords[1][n]), int(coords[2][n])) if len(shape) == 3 else ("", "")
                out.writerow(
                    [
                        lay.name,
                        n,
                        c,
                        y,
                        x,
                        f"{100 * lay.nvf[n]:.4f}",
                        f"{100 * lay.half_width[n]:.4f}",
                        *(f"{100 * v:.4f}" for v in lay.bit_map[:, n]),
                    ]
                )
