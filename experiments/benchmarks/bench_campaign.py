"""The same LeNet-5 campaign two ways in one command: accelsim and PyTorchFI 0.6.0.

    python experiments/benchmarks/bench_campaign.py [--faults 0] [--pytorchfi-faults 20]
        [--images 10000] [--workers 2] [--alexnet-faults 0] [--alexnet-images 1000] [--rounds 1]

Both inject single-bit flips into neuron outputs (after the ReLU, the paper's site), present for
all ``--images`` MNIST test images of each fault. accelsim runs its int8 LeNet-5 with
incremental propagation (``--workers`` processes, golden state included in the time);
PyTorchFI runs a float LeNet-5 of the same architecture (the int8 weights dequantised: PyTorchFI
cannot inject into quantised PyTorch models) in batches of 1,000 with torch on the same cores,
flipping the bit of the neuron's emulated int8 value (the int8 model's output scale) for the
whole batch through a custom PyTorchFI neuron hook (its fastest use; the built-in
``single_bit_flip_func`` flips one element per batch entry in Python and picks a random bit).

accelsim runs the whole paper-size Leveugle sample (7,645 faults; ``--faults N`` draws N of
them at random, but then the workers' one-off start, ~5 s for the golden state, weighs more);
PyTorchFI runs ``--pytorchfi-faults`` of the same faults (its cost per fault is constant).
Printed: faults/s and fault x image evaluations/s of both, their ratio, and the projected
time of the full 7,645 x 10,000 campaign. Targets (issue #5): full LeNet-5 campaign < 10 min,
>= 50x PyTorchFI per fault x image; ``--alexnet-faults N`` also times N AlexNet faults over
``--alexnet-images`` CIFAR-10 test images (1,000; 10,000 is the paper's scale, where the rate
per pair is what the paper-scale projection needs) side by side with
``--alexnet-pytorchfi-faults`` PyTorchFI faults (batch 250) and projects the 9,494-fault
campaign (target < 60 min; ``--faults -1`` skips LeNet-5). An unprotected AlexNet runs on
the graph engine (``fault_source``). These 2-core VMs drift by up to 1.5x within minutes:
``--rounds N`` alternates the two N times and prints every round's ratio
with their median and range.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from accelsim import (
    Conv2D,
    Dense,
    Fault,
    FaultKind,
    FaultSite,
    FaultSpec,
    build_population,
    fault_batch,
    fault_source,
    load_dataset,
    load_network,
    open_store,
    quantize_images,
    run_campaign,
    sample_faults,
    unprotected,
)

SPEC = FaultSpec(FaultSite.NEURON_OUTPUT, FaultKind.SINGLE_BIT, 1, "leveugle", 0.01, 0.95, 0.5, 0)


def paper_sample(net, n: int, seed: int = 1) -> tuple[list[Fault], int]:
    """n faults drawn at random from the paper-size Leveugle sample (0: all of it), and that
    sample's size."""
    plan = unprotected(net).plan
    faults = sample_faults(
        build_population(net, plan, FaultKind.SINGLE_BIT, 1), SPEC, rng=np.random.default_rng(0)
    )
    if n <= 0 or n >= len(faults):
        return list(faults), len(faults)
    pick = np.sort(np.random.default_rng(seed).choice(len(faults), n, replace=False))
    return [faults[i] for i in pick], len(faults)


def time_accelsim(net, x, labels, faults, workers: int) -> tuple[float, np.ndarray]:
    pnet = unprotected(net)
    with tempfile.TemporaryDirectory() as tmp:
        con = open_store(Path(tmp) / "bench.sqlite", {"bench": True}, resume=False)
        start = time.perf_counter()
        rows = run_campaign(
            fault_source(pnet, x, labels), fault_batch(faults), con, workers=workers
        )
        seconds = time.perf_counter() - start
        con.close()
    return seconds, rows.n_changed


def float_model(net):
    """A torch float LeNet-5 with the int8 network's architecture and dequantised weights.
    Convolutions and dense layers carry their ReLU inside (like the int8 layers), so that
    PyTorchFI, which hooks only layers with weights, sees the neuron outputs after the ReLU."""
    import torch
    from torch import nn

    class ConvReLU(nn.Conv2d):
        def forward(self, x):
            return torch.relu(super().forward(x))

    class LinearReLU(nn.Linear):
        def forward(self, x):
            return torch.relu(super().forward(x))

    mods: list[nn.Module] = []
    for rec in net.layers:
        if isinstance(rec, Conv2D | Dense):
            w = rec.weight.astype(np.float32) * rec.weight_scale.astype(np.float32).reshape(
                -1, *([1] * (rec.weight.ndim - 1))
            )
            b = rec.bias.astype(np.float32) * (rec.input_scale * rec.weight_scale).astype(
                np.float32
            )
            if isinstance(rec, Conv2D):
                cls = ConvReLU if rec.relu else nn.Conv2d
                m = cls(w.shape[1], w.shape[0], w.shape[2], rec.stride, rec.padding)
            else:
                m = (LinearReLU if rec.relu else nn.Linear)(w.shape[1], w.shape[0])
            m.weight.data = torch.from_numpy(w)
            m.bias.data = torch.from_numpy(b)
            mods.append(m)
        elif rec.__class__.__name__ == "MaxPool2D":
            mods.append(nn.MaxPool2d(rec.size, rec.stride))
        else:
            mods.append(nn.Flatten())
    return nn.Sequential(*mods).eval()


def time_pytorchfi(net, images, faults, batch: int = 1000) -> tuple[float, np.ndarray]:
    import torch
    from pytorchfi.core import fault_injection

    model = float_model(net)
    mean = np.asarray(net.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(net.std, np.float32).reshape(1, -1, 1, 1)
    x = torch.from_numpy(((images.astype(np.float32) / 255 - mean) / std).astype(np.float32))
    relu_layers = {li: k for k, li in enumerate(net.neuron_layers)}  # layer -> PyTorchFI layer
    scales = [net.layers[li].output_scale for li in net.neuron_layers]
    pfi = fault_injection(
        model, batch, input_shape=list(x.shape[1:]), layer_types=[torch.nn.Conv2d, torch.nn.Linear]
    )
    with torch.no_grad():
        golden = torch.cat([model(x[s : s + batch]).argmax(1) for s in range(0, len(x), batch)])
    changed = np.zeros(len(faults), np.int64)
    start = time.perf_counter()
    for f_i, f in enumerate(faults):
        target = relu_layers[f.layer]
        shape = net.layers[f.layer].out_shape
        where = np.unravel_index(f.index, shape)
        scale, mask = scales[target], f.mask

        def flip(module, inp, out, where=where, target=target, scale=scale, mask=mask):
            if pfi.get_current_layer() == target:
                idx = (slice(None), *where)
                q = torch.clamp(torch.round(out[idx] / scale), -128, 127).to(torch.int8)
                out[idx] = (q ^ np.int8(np.int64(mask).astype(np.int8))).to(out.dtype) * scale
            pfi.updateLayer()
            if pfi.get_current_layer() >= pfi.get_total_layers():
                pfi.reset_current_layer()

        dims = [[int(w)] for w in where] + [[None]] * (3 - len(where))
        faulty = pfi.declare_neuron_fi(
            batch=[0], layer_num=[target], dim1=dims[0], dim2=dims[1], dim3=dims[2], function=flip
        )
        with torch.no_grad():
            pred = torch.cat([faulty(x[s : s + batch]).argmax(1) for s in range(0, len(x), batch)])
        changed[f_i] = int((pred != golden).sum())
    return time.perf_counter() - start, changed


def compare(name: str, net, data, faults, full: int, pfi_faults: int, batch: int, rounds: int,
            workers: int) -> None:  # fmt: skip
    """accelsim on ``faults`` and PyTorchFI on the first ``pfi_faults`` of them, alternating
    ``rounds`` times on the same images; every round's ratio per fault x image."""
    x = quantize_images(net, data.images)
    labels = data.labels.astype(np.int64)
    pairs = len(faults) * len(x)
    print(f"{name}, {len(x):,} test images per fault, single-bit flips in neuron outputs")
    ratios = []
    for r in range(rounds):
        if rounds > 1:
            print(f"round {r + 1} of {rounds}")
        secs, _ = time_accelsim(net, x, labels, faults, workers)
        print(
            f"accelsim  ({workers} workers): {len(faults):5d} faults in {secs:7.1f} s = "
            f"{len(faults) / secs:8.2f} faults/s, {pairs / secs:12,.0f} fault x image/s; "
            f"paper-scale {full:,} x 10,000 projected {full * 10_000 / (pairs / secs) / 60:.1f} min"
        )
        if not pfi_faults:
            continue
        import torch

        torch.set_num_threads(workers)
        pf = faults[:pfi_faults]
        p_secs, p_changed = time_pytorchfi(net, data.images, pf, batch)
        p_pairs = len(pf) * len(x)
        print(
            f"PyTorchFI (torch {torch.get_num_threads()} threads, batch {batch}): {len(pf):5d} "
            f"faults in {p_secs:7.1f} s = {len(pf) / p_secs:8.2f} faults/s, "
            f"{p_pairs / p_secs:12,.0f} fault x image/s; paper-scale projected "
            f"{full * 10_000 / (p_pairs / p_secs) / 60:.1f} min"
        )
        ratios.append((pairs / secs) / (p_pairs / p_secs))
        print(f"ratio accelsim / PyTorchFI per fault x image: {ratios[-1]:.1f}x")
        if r == 0:
            print(
                f"(float vs int8 models differ: PyTorchFI changed {int(p_changed.sum())} fault "
                f"x image classes over its {len(pf)} faults)"
            )
    if len(ratios) > 1:
        print(
            f"{name}: ratio over {len(ratios)} alternating rounds: median "
            f"{np.median(ratios):.1f}x, range {min(ratios):.1f}-{max(ratios):.1f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--faults", type=int, default=0,
                    help="LeNet-5 accelsim faults (0: all 7,645; -1: skip LeNet-5)")  # fmt: skip
    ap.add_argument("--pytorchfi-faults", type=int, default=20, help="PyTorchFI faults (0: skip)")
    ap.add_argument("--images", type=int, default=10_000, help="MNIST test images per fault")
    ap.add_argument("--workers", type=int, default=2, help="accelsim worker processes")
    ap.add_argument("--alexnet-faults", type=int, default=0, help="also time AlexNet (0: skip)")
    ap.add_argument("--alexnet-images", type=int, default=1000, help="CIFAR-10 test images")
    ap.add_argument("--alexnet-pytorchfi-faults", type=int, default=6,
                    help="PyTorchFI faults on AlexNet (batch 250; 0: skip)")  # fmt: skip
    ap.add_argument(
        "--rounds", type=int, default=1, help="alternate accelsim and PyTorchFI this many times"
    )
    args = ap.parse_args()
    if args.faults >= 0:
        net = load_network("lenet5")
        data = load_dataset("mnist", "test", n_images=args.images)
        faults, full = paper_sample(net, args.faults)
        compare("LeNet-5", net, data, faults, full, args.pytorchfi_faults, 1000, args.rounds,
                args.workers)  # fmt: skip
    if args.alexnet_faults:
        anet = load_network("alexnet")
        adata = load_dataset("cifar10", "test", n_images=args.alexnet_images)
        afaults, afull = paper_sample(anet, args.alexnet_faults)
        compare("AlexNet", anet, adata, afaults, afull, args.alexnet_pytorchfi_faults, 250,
                args.rounds, args.workers)  # fmt: skip


if __name__ == "__main__":
    main()
