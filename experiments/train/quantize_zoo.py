"""Quantise the trained float zoo networks and write the shipped int8 models.

    python experiments/train/quantize_zoo.py lenet5 [--seed 0]

Reads ``experiments/out/train/<name>.npz`` (from ``train_zoo.py``), calibrates activation scales
on 2,000 random training images, picks the calibration percentile with the best int8 accuracy on
2,000 other training images (never the test set), measures float and int8 accuracy on the full
test split, and writes ``accelsim/zoo/<name>.yaml`` + ``.npz``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from accelsim import (
    ARCHITECTURES,
    ZOO_DIR,
    Accuracy,
    Dataset,
    Network,
    float_accuracy,
    load_dataset,
    load_network,
    predict,
    quantize_network,
    save_network,
)

OUT = Path(__file__).resolve().parents[1] / "out" / "train"
PERCENTILES = (99.9, 99.99, 99.999, 100.0)


def quantize_best(
    name: str, arch: dict, weights: dict[str, np.ndarray], train: Dataset, test: Dataset,
    pick: np.ndarray,
) -> tuple[Network, float, dict[float, float]]:  # fmt: skip
    """``weights`` quantised with activation scales calibrated on training images
    ``pick[:2000]`` at the percentile (of ``PERCENTILES``) whose int8 network classifies
    ``pick[2000:4000]`` best; the network records its float and int8 accuracy on ``test``.
    Returns it, that percentile and every percentile's held-out accuracy."""
    calib, held = pick[:2000], pick[2000:4000]
    scores = {}
    for pct in PERCENTILES:
        net = quantize_network(name, arch, weights, train.images[calib], percentile=pct)
        scores[pct] = float(np.mean(predict(net, train.images[held]) == train.labels[held]))
    best = max(PERCENTILES, key=lambda p: (scores[p], p))
    net = quantize_network(name, arch, weights, train.images[calib], percentile=best)
    int8_acc = float(np.mean(predict(net, test.images) == test.labels))
    float_acc = float_accuracy(arch, weights, test.images, test.labels)
    acc = Accuracy(float_acc, int8_acc, "test", len(test))
    return dataclasses.replace(net, accuracy=acc), best, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    arch = ARCHITECTURES[args.name]
    with np.load(OUT / f"{args.name}.npz", allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    train = load_dataset(arch["dataset"], "train", data_dir=args.data_dir)
    test = load_dataset(arch["dataset"], "test", data_dir=args.data_dir)
    pick = np.random.default_rng(args.seed).permutation(len(train))[:4000]
    net, best, scores = quantize_best(args.name, arch, weights, train, test, pick)
    float_acc, int8_acc = net.accuracy.float_accuracy, net.accuracy.int8_accuracy
    path = save_network(net, ZOO_DIR / f"{args.name}.yaml")
    reloaded = load_network(path)
    assert np.array_equal(predict(reloaded, test.images[:500]), predict(net, test.images[:500]))
    print(
        json.dumps(
            {
                "name": args.name,
                "percentile": best,
                "held_out_int8": scores,
                "float_accuracy": float_acc,
                "int8_accuracy": int8_acc,
                "neurons": net.n_neurons,
                "parameters": net.n_parameters,
                "macs": net.macs,
            }
        )
    )


if __name__ == "__main__":
    main()
