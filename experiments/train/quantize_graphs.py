"""Quantise the trained float graph networks and write the shipped int8 graphs (model files v2).

    python experiments/train/quantize_graphs.py resnet20 [--seed 0] [--weights FILE]

Reads ``experiments/out/train/<name>.npz`` (from ``train_graphs.py``, BatchNorm folded),
calibrates the asymmetric activation ranges on 2,000 random training images, picks the
calibration percentile with the best int8 accuracy on 2,000 other training images (never the
test set), measures float and int8 accuracy on the full test split, checks the int8 graph
against TFLite Micro on 200 test images when ``tflite-micro`` is installed, and writes
``accelsim/zoo/<name>.yaml`` + ``.npz``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from accelsim import (
    GRAPH_ARCHITECTURES,
    ZOO_DIR,
    Accuracy,
    classify,
    float_graph_accuracy,
    graph_forward,
    graph_n_neurons,
    graph_to_tflite,
    load_dataset,
    load_graph,
    quantize_graph,
    quantize_graph_images,
    save_graph,
)

OUT = Path(__file__).resolve().parents[1] / "out" / "train"
PERCENTILES = (99.99, 99.999, 100.0)


def int8_accuracy(g, images: np.ndarray, labels: np.ndarray) -> float:
    preds = classify(graph_forward(g, quantize_graph_images(g, images)))
    return float(np.mean(preds == labels))


def tflm_check(g, images: np.ndarray) -> int | None:
    """Images whose int8 logits differ from TFLite Micro's (None without tflite-micro)."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        return None
    interpreter = runtime.Interpreter.from_bytes(graph_to_tflite(g))
    x = quantize_graph_images(g, images)
    ours = graph_forward(g, x)
    bad = 0
    for i in range(len(x)):
        interpreter.set_input(np.ascontiguousarray(x[i : i + 1].transpose(0, 2, 3, 1)), 0)
        interpreter.invoke()
        bad += int(not np.array_equal(interpreter.get_output(0).reshape(-1), ours[i]))
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(GRAPH_ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="float weights (default experiments/out/train/NAME.npz)")
    parser.add_argument("--out", help="model file to write (default accelsim/zoo/NAME.yaml)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    arch = GRAPH_ARCHITECTURES[args.name]
    with np.load(args.weights or OUT / f"{args.name}.npz", allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    train = load_dataset(arch["dataset"], "train", data_dir=args.data_dir)
    test = load_dataset(arch["dataset"], "test", data_dir=args.data_dir)
    rng = np.random.default_rng(args.seed)
    pick = rng.permutation(len(train))[:4000]
    calib, held = pick[:2000], pick[2000:]
    scores = {}
    for pct in PERCENTILES:
        g = quantize_graph(args.name, arch, weights, train.images[calib], percentile=pct)
        scores[pct] = int8_accuracy(g, train.images[held], train.labels[held])
        print(json.dumps({"percentile": pct, "held_out_int8": scores[pct]}), flush=True)
    best = max(PERCENTILES, key=lambda p: (scores[p], p))
    g = quantize_graph(args.name, arch, weights, train.images[calib], percentile=best)
    int8_acc = int8_accuracy(g, test.images, test.labels)
    float_acc = float_graph_accuracy(arch, weights, test.images, test.labels)
    acc = Accuracy(float_acc, int8_acc, "test", len(test))
    g = quantize_graph(args.name, arch, weights, train.images[calib], percentile=best, accuracy=acc)
    path = save_graph(g, Path(args.out) if args.out else ZOO_DIR / f"{args.name}.yaml")
    reloaded = load_graph(path)
    x = quantize_graph_images(reloaded, test.images[:200])
    assert np.array_equal(graph_forward(reloaded, x), graph_forward(g, x))
    print(
        json.dumps(
            {
                "name": args.name,
                "percentile": best,
                "held_out_int8": scores,
                "float_accuracy": float_acc,
                "int8_accuracy": int8_acc,
                "tflm_differing_images_of_200": tflm_check(g, test.images[:200]),
                "neurons": graph_n_neurons(g),
                "parameters": g.n_parameters,
                "macs": g.macs,
                "written": str(path),
            }
        )
    )


if __name__ == "__main__":
    main()
