"""Under-training, a candidate cause of the paper's fragile networks: train each network only
until its float accuracy reaches the paper's int8 accuracy, then quantise it as the zoo is.

    python experiments/undertrain.py [--networks mlp7 lenet5 alexnet] [--seed 0]
        [--eval-every 0] [--threads 2] [--ship | --ship-only]

Issue #18, section 1. Each network is built and trained as ``experiments/train/train_zoo.py``
trains the shipped one (same architecture, optimiser, learning rate, batch, weight decay,
BatchNorm / dropout / augmentation), but at a constant learning rate and stopped at the first
evaluation where the float accuracy on a validation set (the last 5,000 training images, never
trained on) reaches the paper's int8 accuracy (70.1 / 89.1 / 62.9 %); the test split plays no
part in stopping. It is then quantised by ``quantize_network`` with the shipped networks'
calibration (2,000 training images; the activation percentile picked on 2,000 others) and
written to ``experiments/out/undertrain/<name>-undertrained.yaml`` with a JSON log (steps,
images seen, validation, float and int8 test accuracy). ``experiments/paper_regime.py
--variants shipped undertrained`` measures it next to the other mechanisms. ``--ship`` also
writes it to the zoo as ``<name>-paper`` (``accelsim/zoo/<name>-paper.yaml``: the paper-regime
networks); ``--ship-only`` does that from the files already under ``experiments/out/undertrain``
without training. Only this script (and train_zoo) imports torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from accelsim import (
    ARCHITECTURES,
    ZOO_DIR,
    files,
    load_dataset,
    load_network,
    save_network,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))
from quantize_zoo import quantize_best
from train_zoo import DEFAULTS, augment, build, evaluate, export, preprocess, train_step

OUT = Path(__file__).resolve().parent / "out" / "undertrain"
PAPER_INT8 = {"mlp7": 0.701, "lenet5": 0.891, "alexnet": 0.629}
EVAL_EVERY = {"mlp7": 10, "lenet5": 10, "alexnet": 50}  # optimiser steps between evaluations
VALIDATION = 5000


def train_until(name: str, seed: int, eval_every: int) -> tuple[nn.Sequential, dict]:
    epochs, lr, batch, wd, bn, dropout, aug = DEFAULTS[name]
    dataset = ARCHITECTURES[name]["dataset"]
    train = load_dataset(dataset, "train")
    x, y = preprocess(train.images, name), torch.from_numpy(train.labels.astype(np.int64))
    xtr, ytr = x[:-VALIDATION], y[:-VALIDATION]
    xval, yval = x[-VALIDATION:], y[-VALIDATION:]
    torch.manual_seed(seed)
    model = build(name, bn, dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    gen = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05 if aug else 0.0)
    target, step, start = PAPER_INT8[name], 0, time.time()
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            train_step(model, opt, loss_fn, augment(xtr[idx], gen) if aug else xtr[idx], ytr[idx])
            step += 1
            if step % eval_every == 0:
                val = evaluate(model, xval, yval)
                print(f"{name} step {step} ({step * batch:,} images) validation {val:.4f} "
                      f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
                if val >= target:
                    log = {"steps": step, "images_seen": step * batch, "validation": val,
                           "target": target, "seconds": time.time() - start}  # fmt: skip
                    return model.eval(), log
    raise SystemExit(f"{name}: validation never reached {target} in {epochs} epochs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["mlp7", "lenet5", "alexnet"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=0, help="steps (0: per network)")
    parser.add_argument("--threads", type=int, default=2)
    ship = parser.add_mutually_exclusive_group()
    ship.add_argument("--ship", action="store_true", help="also write <name>-paper to the zoo")
    ship.add_argument("--ship-only", action="store_true",
                      help="only write <name>-paper to the zoo from existing outputs")  # fmt: skip
    args = parser.parse_args()
    if args.ship_only:
        for name in args.networks:
            ship_paper(name)
        return
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.networks:
        model, log = train_until(name, args.seed, args.eval_every or EVAL_EVERY[name])
        weights = export(model, name)
        arch = ARCHITECTURES[name]
        train = load_dataset(arch["dataset"], "train")
        test = load_dataset(arch["dataset"], "test")
        pick = np.random.default_rng(args.seed).permutation(len(train) - VALIDATION)[:4000]
        net, best, _ = quantize_best(f"{name}-undertrained", arch, weights, train, test, pick)
        float_acc, int8_acc = net.accuracy.float_accuracy, net.accuracy.int8_accuracy
        save_network(net, OUT / f"{name}-undertrained.yaml")
        log.update({"name": name, "seed": args.seed, "percentile": best,
                    "float_test_accuracy": float_acc, "int8_test_accuracy": int8_acc,
                    "paper_int8_accuracy": PAPER_INT8[name]})  # fmt: skip
        files.write_text(OUT / f"{name}-undertrained.json", json.dumps(log, indent=2))
        print(json.dumps(log), flush=True)
        if args.ship:
            ship_paper(name)


def ship_paper(name: str) -> None:
    """The under-trained network as the zoo's ``<name>-paper`` (same weights and scales)."""
    net = load_network(OUT / f"{name}-undertrained.yaml")
    path = save_network(dataclasses.replace(net, name=f"{name}-paper"),
                        ZOO_DIR / f"{name}-paper.yaml")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
