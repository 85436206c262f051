"""Train the float versions of the zoo networks with PyTorch (the `train` extra).

    python experiments/train/train_zoo.py lenet5 --epochs 8 --seed 0

Builds each PyTorch model from ``accelsim.zoo.architectures`` (the same layer descriptions the
int8 engine loads), trains it on the official training files found through ``--data-dir`` /
``ACCELSIM_DATA``, and writes float32 weights to ``experiments/out/train/<name>.npz``
(``<layer>.weight`` in PyTorch layout, ``<layer>.bias``), with BatchNorm (AlexNet only) folded
into the preceding convolution. ``experiments/quantize_zoo.py`` turns them into the shipped
int8 networks. Only this script imports torch; accelsim itself never does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from accelsim import ARCHITECTURES, files, load_dataset

OUT = Path(__file__).resolve().parents[1] / "out" / "train"
DEFAULTS = {  # epochs, lr, batch, weight decay, batchnorm, dropout, augment
    "lenet5": (8, 2e-3, 128, 1e-4, False, 0.0, False),
    "mlp7": (10, 1e-3, 128, 1e-4, False, 0.1, False),
    "alexnet": (18, 2e-3, 128, 5e-4, True, 0.3, True),
}


def build(name: str, batchnorm: bool, dropout: float) -> nn.Sequential:
    mods: list[nn.Module] = []
    for layer in ARCHITECTURES[name]["layers"]:
        kind = layer["type"]
        if kind == "conv2d":
            conv = nn.Conv2d(
                layer["in_channels"],
                layer["out_channels"],
                layer["kernel"],
                layer["stride"],
                layer["padding"],
            )
            mods += [conv] + ([nn.BatchNorm2d(layer["out_channels"])] if batchnorm else [])
        elif kind == "dense":
            if dropout and layer["in_features"] > 64:
                mods.append(nn.Dropout(dropout))
            mods.append(nn.Linear(layer["in_features"], layer["out_features"]))
        elif kind == "maxpool2d":
            mods.append(nn.MaxPool2d(layer["size"], layer["stride"]))
        elif kind == "flatten":
            mods.append(nn.Flatten())
        if layer.get("relu"):
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def preprocess(images: np.ndarray, name: str) -> torch.Tensor:
    arch = ARCHITECTURES[name]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    mean = torch.tensor(arch["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(arch["std"]).view(1, -1, 1, 1)
    return (x - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel-padded crop and horizontal flip, per image."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    rows = (
        (dy.view(n, 1) + torch.arange(h).view(1, h))
        .view(n, 1, h, 1)
        .expand(n, x.shape[1], h, w + 8)
    )
    out = torch.gather(padded, 2, rows)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    out = torch.gather(out, 3, cols)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def train_step(model: nn.Module, opt, loss_fn, xb: torch.Tensor, yb: torch.Tensor) -> float:
    """One optimiser step on a batch; its loss."""
    model.train()
    loss = loss_fn(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum())
    return correct / len(x)


def export(model: nn.Sequential, name: str) -> dict[str, np.ndarray]:
    """Float weights per accelsim layer name, BatchNorm folded into its convolution."""
    arrays: dict[str, np.ndarray] = {}
    mods = list(model)
    weighted = [m for m in ARCHITECTURES[name]["layers"] if m["type"] in ("conv2d", "dense")]
    idx = 0
    for i, mod in enumerate(mods):
        if not isinstance(mod, nn.Conv2d | nn.Linear):
            continue
        w = mod.weight.detach().double()
        b = mod.bias.detach().double()
        nxt = mods[i + 1] if i + 1 < len(mods) else None
        if isinstance(nxt, nn.BatchNorm2d):
            scale = nxt.weight.detach().double() / torch.sqrt(nxt.running_var.double() + nxt.eps)
            w = w * scale.view(-1, 1, 1, 1)
            b = (b - nxt.running_mean.double()) * scale + nxt.bias.detach().double()
        lname = weighted[idx]["name"]
        arrays[f"{lname}.weight"] = w.numpy().astype(np.float32)
        arrays[f"{lname}.bias"] = b.numpy().astype(np.float32)
        idx += 1
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(ARCHITECTURES))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    epochs, lr, batch, wd, bn, dropout, aug = DEFAULTS[args.name]
    epochs = args.epochs or epochs
    dataset = ARCHITECTURES[args.name]["dataset"]
    train = load_dataset(dataset, "train", data_dir=args.data_dir)
    test = load_dataset(dataset, "test", data_dir=args.data_dir)
    xtr, ytr = preprocess(train.images, args.name), torch.from_numpy(train.labels.astype(np.int64))
    xte, yte = preprocess(test.images, args.name), torch.from_numpy(test.labels.astype(np.int64))
    model = build(args.name, bn, dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    steps = epochs * ((len(xtr) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05 if aug else 0.0)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            xb = augment(xtr[idx], gen) if aug else xtr[idx]
            loss = train_step(model, opt, loss_fn, xb, ytr[idx])
            sched.step()
            total += loss * len(idx)
        acc = evaluate(model, xte, yte)
        print(
            f"{args.name} epoch {epoch + 1}/{epochs} loss {total / len(xtr):.4f} "
            f"test acc {acc:.4f} ({time.time() - start:.0f} s)",
            flush=True,
        )
    OUT.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(OUT / f"{args.name}.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **export(model, args.name))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    meta = {
        "name": args.name,
        "seed": args.seed,
        "epochs": epochs,
        "train_images": len(xtr),
        "torch_test_accuracy": acc,
        "git": commit.strip(),
        "seconds": time.time() - start,
    }
    files.write_text(OUT / f"{args.name}.json", json.dumps(meta, indent=2))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
