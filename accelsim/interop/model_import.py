"""``python -m accelsim import``: a user's model file -> accelsim model files and a workload.

    imported = import_model("model.tflite", "imported/mynet", dataset="data/mine.npz")
    imported = import_model("model.onnx", mean=[0.1307], std=[0.3081])   # float: quantised
    imported.model_path, imported.workload_path   # then: run / analyze / inject on the workload

Writes ``OUT/NAME.yaml`` + ``OUT/NAME.npz`` (model files version 2) and ``OUT/NAME-workload.yaml``
(the workload: the model, its dataset, the analysis and campaign settings of the zoo's
workloads), then measures the int8 accuracy (and an ONNX model's float accuracy) on up to
``eval_images`` test images when the dataset is found.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.config.checks import write_yaml
from accelsim.config.workload import DEFAULT_THRESHOLDS
from accelsim.datasets import DATASET_NAMES, load_dataset
from accelsim.errors import DatasetError, ParameterError, positive_int
from accelsim.functional.graph import Graph
from accelsim.functional.graphio import save_graph
from accelsim.functional.models import model_predict
from accelsim.interop.onnx_import import FloatModel, float_logits, quantize_onnx, read_onnx
from accelsim.interop.tflite_import import ImportResult, ModelImportError, import_tflite

FORMATS = (".tflite", ".onnx")
_BUILTIN_INPUTS = {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}


@dataclass(frozen=True)
class ImportedModel:
    """What ``import_model`` wrote and found."""

    result: ImportResult
    model_path: Path
    workload_path: Path
    accuracy: float | None  # int8 accuracy on ``eval_images`` test images, when found
    eval_images: int
    eval_note: str
    float_accuracy: float | None = None  # ONNX: the float model's, on the same images

    @property
    def graph(self) -> Graph:
        return self.result.graph

    def document(self) -> dict[str, Any]:
        g = self.graph
        t = g.input_info
        return {
            "source": self.result.source,
            "name": g.name,
            "ops": self.result.ops,
            "folded": self.result.folded,
            "edges": self.result.edges,
            "neurons": g.n_neurons,
            "parameters": g.n_parameters,
            "macs": g.macs,
            "input": {"shape": list(t.shape), "scale": t.scale, "zero_point": t.zero_point},
            "dataset": g.dataset,
            "int8_accuracy": self.accuracy,
            "float_accuracy": self.float_accuracy,
            "eval_images": self.eval_images,
            "eval_note": self.eval_note,
            "written": [str(self.model_path), str(self.workload_path)],
        }


def _default_dataset(shape: tuple[int, ...], dataset: str | None) -> str:
    if dataset is not None:
        if dataset in DATASET_NAMES:
            return dataset
        path = Path(dataset).expanduser().resolve()
        if not ((path.suffix == ".npz" and path.is_file()) or path.is_dir()):
            raise ParameterError(
                "dataset", f"{{parameter}}: {dataset!r} is neither mnist, cifar10, an existing "
                ".npz file nor an image folder"
            )  # fmt: skip
        return str(path)
    if tuple(shape) in _BUILTIN_INPUTS:
        return _BUILTIN_INPUTS[tuple(shape)]
    raise ParameterError(
        "dataset", f"{{parameter}} is needed: the input {list(shape)} is neither MNIST's "
        "[1, 28, 28] nor CIFAR-10's [3, 32, 32]; name a .npz file or an image folder"
    )  # fmt: skip


def _workload(g: Graph, model_file: str) -> dict[str, Any]:
    return {
        "version": 1,
        "workload": {
            "network": model_file,
            "dataset": {"split": "test", "images": "all"},
            "analysis": {
                "split": "train",
                "images": 1000,
                "method": "linear",
                "bit_mapping": "log2",
                "gradient_check": False,
            },
            "thresholds_percent": list(DEFAULT_THRESHOLDS),
            "protection": {"modes": ["none", "split", "tmr"]},
            "faults": {
                "site": "neuron_output",
                "kind": "single_bit",
                "samples": "leveugle",
                "error_margin": 0.01,
                "confidence": 0.95,
                "p": 0.5,
                "seed": 0,
            },
            "accuracy_loss_budget_percent": 5,
            "output_dir": f"out/{g.name}",
        },
    }


def _accuracies(g: Graph, fm: FloatModel | None, ds: str, eval_images: int,
                data_dir: str | Path | None):  # fmt: skip
    """(int8 accuracy, float accuracy, images, note) on the first test images. A built-in
    dataset that is not on disk only leaves the accuracy unmeasured; the user's own dataset
    (a file or folder) that cannot be read or does not fit the model is an error."""
    if eval_images == 0:
        return None, None, 0, "not measured (eval_images 0)"
    try:
        data = load_dataset(ds, "test", data_dir=data_dir, n_images=eval_images,
                            shape=tuple(g.input_info.shape))  # fmt: skip
    except DatasetError as exc:
        if ds not in DATASET_NAMES:
            raise
        return None, None, 0, f"accuracy not measured: {exc}"
    preds = model_predict(g, data.images)
    accuracy = float(np.mean(preds == data.labels))
    float_acc = None
    if fm is not None:
        float_acc = float(np.mean(float_logits(fm, data.images).argmax(1) == data.labels))
    return (
        accuracy,
        float_acc,
        len(data),
        f"first {len(data):,} {data.split} images of {data.source}",
    )


def import_model(
    source: str | Path,
    out_dir: str | Path | None = None,
    *,
    name: str | None = None,
    dataset: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    requantization: str = "tflm",
    eval_images: int = 1000,
    calibration: str | None = None,
    calibration_images: int = 500,
    data_dir: str | Path | None = None,
) -> ImportedModel:
    """Import ``source`` (an int8 ``.tflite``, or a float ``.onnx`` that accelsim quantises on
    the first ``calibration_images`` training images of ``calibration``, default the dataset)
    and write the model files and a workload to ``out_dir`` (default ``imported/NAME``); see
    the module docstring."""
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ModelImportError(
            str(path), f"supported model formats are {', '.join(FORMATS)} (PyTorch: export "
            "to ONNX first, see docs/own-model.md)"
        )  # fmt: skip
    if requantization not in ("tflm", "xnnpack"):
        raise ParameterError("requantization", "{parameter} must be tflm or xnnpack")
    stem = name or path.stem.replace(" ", "_")
    if not stem.replace("_", "").replace("-", "").isalnum():
        raise ParameterError("name", f"{{parameter}} must be letters, digits, _ and -: {stem!r}")
    fm = None
    if suffix == ".tflite":
        result = import_tflite(path, name=stem, requantization=requantization)
        g = result.graph
        ds = _default_dataset(g.input_info.shape, dataset)
        result.graph = dataclasses.replace(
            g, dataset=ds, mean=tuple(mean) if mean is not None else g.mean,
            std=tuple(std) if std is not None else g.std,
        )  # fmt: skip
    else:
        fm = read_onnx(path, mean=mean, std=std)
        shape = tuple(fm.arch["input_shape"])
        ds = fm.arch["dataset"] = _default_dataset(shape, dataset)
        calib = None
        if not fm.is_quantized:  # a QDQ model carries its own quantisation
            calib_source = _default_dataset(shape, calibration or ds)
            n_calib = positive_int("calibration_images", calibration_images)
            calib = load_dataset(calib_source, "train", data_dir=data_dir, n_images=n_calib,
                                 shape=shape)  # fmt: skip
        result = quantize_onnx(fm, None if calib is None else calib.images, name=stem,
                               source=str(path), requantization=requantization)  # fmt: skip
        if calib is None:
            fm = None  # a QDQ model has no float model to compare with
        else:
            result.edges.append(f"calibration: the first {len(calib):,} train images of "
                                f"{calib.source}")  # fmt: skip
    g = result.graph
    accuracy, float_acc, n, note = _accuracies(g, fm, ds, eval_images, data_dir)
    out = Path(out_dir) if out_dir is not None else Path("imported") / stem
    out.mkdir(parents=True, exist_ok=True)
    model_path = save_graph(g, out / f"{stem}.yaml")
    workload_path = out / f"{stem}-workload.yaml"
    write_yaml(workload_path, _workload(g, os.path.basename(model_path)))
    return ImportedModel(result, model_path, workload_path, accuracy, n, note, float_acc)


__all__ = ["FORMATS", "ImportedModel", "import_model"]
