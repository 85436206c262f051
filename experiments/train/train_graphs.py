"""Train the float graph networks of the zoo (ResNet-20, MobileNetV2-style) with PyTorch.

    python experiments/train/train_graphs.py resnet20 --epochs 30 --seed 0 [--threads 1]

Builds the PyTorch model from ``accelsim.zoo.graph_architectures`` (the node lists the int8
quantiser reads), trains it on the CIFAR-10 training files found through ``--data-dir`` /
``ACCELSIM_DATA`` (SGD with momentum 0.9, Nesterov, weight decay 5e-4, one-cycle learning rate,
random crops with 4-pixel padding and horizontal flips), and writes float32 weights with every
BatchNorm folded into its convolution to ``experiments/out/train/<name>.npz``
(``<node>.weight`` in PyTorch layout, ``<node>.bias``), plus a JSON log of the epochs. Only
this script imports torch; accelsim itself never does.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from accelsim import GRAPH_ARCHITECTURES, files, load_dataset

OUT = Path(__file__).resolve().parents[1] / "out" / "train"
ACT = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6}


class GraphNet(nn.Module):
    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.nodes = arch["nodes"]
        self.mods = nn.ModuleDict()
        for node in self.nodes:
            if node["op"] in ("conv", "dwconv"):
                groups = node["in_channels"] if node["op"] == "dwconv" else 1
                conv = nn.Conv2d(
                    node["in_channels"], node["out_channels"], node["kernel"], node["stride"],
                    node["padding"], groups=groups, bias=not node["bn"],
                )  # fmt: skip
                layers = [conv] + ([nn.BatchNorm2d(node["out_channels"])] if node["bn"] else [])
                self.mods[node["name"]] = nn.Sequential(*layers, ACT[node["activation"]]())
            elif node["op"] == "fc":
                self.mods[node["name"]] = nn.Linear(node["in_features"], node["out_features"])
            elif node["op"] == "add":
                self.mods[node["name"]] = ACT[node["activation"]]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x}
        for node in self.nodes:
            ins = [values[t] for t in node["inputs"]]
            if node["op"] == "add":
                y = self.mods[node["name"]](ins[0] + ins[1])
            elif node["op"] == "mean":
                y = ins[0].mean(dim=(2, 3))
            else:
                y = self.mods[node["name"]](ins[0])
            values[node["name"]] = y
        return y


def folded_weights(model: GraphNet) -> dict[str, np.ndarray]:
    """Float32 weights with each BatchNorm folded into the convolution before it."""
    out = {}
    for node in model.nodes:
        if node["op"] not in ("conv", "dwconv", "fc"):
            continue
        mod = model.mods[node["name"]]
        if node["op"] == "fc":
            out[f"{node['name']}.weight"] = mod.weight.detach().numpy().astype(np.float32)
            out[f"{node['name']}.bias"] = mod.bias.detach().numpy().astype(np.float32)
            continue
        conv = mod[0]
        w = conv.weight.detach().double()
        b = (
            conv.bias.detach().double()
            if conv.bias is not None
            else torch.zeros(w.shape[0], dtype=torch.float64)
        )
        if node["bn"]:
            bn = mod[1]
            gamma = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = w * gamma.reshape(-1, 1, 1, 1)
            b = (b - bn.running_mean.double()) * gamma + bn.bias.detach().double()
        out[f"{node['name']}.weight"] = w.numpy().astype(np.float32)
        out[f"{node['name']}.bias"] = b.numpy().astype(np.float32)
    return out


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded images and random horizontal flips."""
    n = x.shape[0]
    padded = functional.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen).tolist()
    dx = torch.randint(0, 9, (n,), generator=gen).tolist()
    out = torch.stack([padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32] for i in range(n)])
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(GRAPH_ARCHITECTURES))
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    arch = GRAPH_ARCHITECTURES[args.name]
    mean = torch.tensor(arch["mean"]).reshape(1, 3, 1, 1)
    std = torch.tensor(arch["std"]).reshape(1, 3, 1, 1)
    train = load_dataset("cifar10", "train", data_dir=args.data_dir)
    test = load_dataset("cifar10", "test", data_dir=args.data_dir)
    xs = (torch.from_numpy(train.images).float() / 255 - mean) / std
    ys = torch.from_numpy(train.labels.astype(np.int64))
    xt = (torch.from_numpy(test.images).float() / 255 - mean) / std
    yt = torch.from_numpy(test.labels.astype(np.int64))
    model = GraphNet(arch)
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    steps = args.epochs * ((len(xs) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps, pct_start=0.15
    )
    log = []
    OUT.mkdir(parents=True, exist_ok=True)
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(xs), generator=gen)
        total = 0.0
        for i in range(0, len(xs), args.batch):
            idx = perm[i : i + args.batch]
            loss = functional.cross_entropy(model(augment(xs[idx], gen)), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        model.eval()
        with torch.no_grad():
            correct = sum(
                int((model(xt[i : i + 500]).argmax(1) == yt[i : i + 500]).sum())
                for i in range(0, len(xt), 500)
            )
        log.append(
            {
                "epoch": epoch + 1,
                "loss": total / len(xs),
                "test_accuracy": correct / len(xt),
                "seconds": time.time() - t0,
            }
        )
        print(json.dumps(log[-1]), flush=True)
        files.write_text(OUT / f"{args.name}.log.json", json.dumps(log, indent=1))
    raw = io.BytesIO()
    np.savez(raw, **folded_weights(model))
    files.write_bytes(OUT / f"{args.name}.npz", raw.getvalue())


if __name__ == "__main__":
    main()
