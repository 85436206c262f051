"""A ResNet-20 campaign two ways in one command: accelsim's graph fault source and PyTorchFI.

    python experiments/benchmarks/bench_graph_campaign.py [--network resnet20] [--faults 40]
        [--pytorchfi-faults 20] [--images 1000] [--workers 1] [--rounds 2] [--torch-threads 2]

Both inject single-bit flips into the neuron outputs (the outputs of the weighted nodes, after
their fused activation) of the same network, present for all ``--images`` CIFAR-10 test images
of each fault. accelsim runs the int8 graph (zoo file if shipped, else the float architecture
with random weights quantised: the cost depends on the geometry) through
``GraphCampaignInputs`` (its golden state, the fault-free run with every convolution's
accumulators, timed apart: a campaign builds it once, and PyTorchFI's fault-free run is not
timed either; the ratio with it included is printed too); PyTorchFI 0.6.0 runs a float
torch model of the same graph with the int8 weights dequantised, in batches of 250, flipping
the bit of the neuron's emulated int8 code (``round(v / s) + zp``, the int8 tensor's scale and
zero point) for the whole batch through a custom neuron hook, as ``bench_campaign.py`` does.
Both draw their faults from the same ``sample_graph_faults`` sample. Printed per round: fault
x image pairs per second of both and their ratio; rounds alternate (these 2-core machines drift
by up to 1.5x within minutes). Needs torch and pytorchfi (the ``peers`` extra).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from accelsim import (
    GRAPH_ARCHITECTURES,
    ZOO_DIR,
    GraphCampaignInputs,
    evaluate_faults,
    golden_state,
    graph_neuron_nodes,
    load_dataset,
    load_graph,
    quantize_graph,
    quantize_graph_images,
    random_graph_weights,
    sample_graph_faults,
)


def network(name: str, model: str | None = None):
    if model is not None:
        return load_graph(model)
    if (ZOO_DIR / f"{name}.yaml").is_file():
        return load_graph(name)
    arch = GRAPH_ARCHITECTURES[name]
    data = load_dataset("cifar10", "train", n_images=64)
    return quantize_graph(
        name, arch, random_graph_weights(arch, np.random.default_rng(0)), data.images
    )


def float_model(g):
    """A torch float model of graph ``g``: weighted nodes as Conv2d / Linear modules with their
    activation inside (PyTorchFI hooks only modules with weights), dequantised weights."""
    import torch
    from torch import nn

    acts = {"none": lambda v: v, "relu": torch.relu, "relu6": lambda v: torch.clamp(v, 0, 6)}

    class ConvAct(nn.Conv2d):
        act = "none"

        def forward(self, x):
            return acts[self.act](super().forward(x))

    class LinearAct(nn.Linear):
        act = "none"

        def forward(self, x):
            return acts[self.act](super().forward(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = nn.ModuleDict()
            for n in g.nodes:
                if n.weight is None:
                    continue
                s_in = float(np.float32(g.tensors[n.inputs[0]].scale))
                ws = n.weight_scale.astype(np.float32)
                b = torch.from_numpy(n.bias.astype(np.float32) * (s_in * ws))
                if n.op == "FULLY_CONNECTED":
                    m = LinearAct(n.weight.shape[1], n.weight.shape[0])
                    w = n.weight.astype(np.float32) * ws[:, None]
                else:
                    t, _, left, _ = n.attr("padding", (0, 0, 0, 0))
                    dw = n.op == "DEPTHWISE_CONV_2D"
                    w = n.weight.astype(np.float32)
                    w = w[:, None] if dw else w
                    w = w * ws.reshape(-1, 1, 1, 1)
                    c_in = g.tensors[n.inputs[0]].shape[0]
                    m = ConvAct(c_in, w.shape[0], w.shape[2], n.attr("stride", 1), (t, left),
                                groups=c_in if dw else 1)  # fmt: skip
                m.weight.data = torch.from_numpy(np.ascontiguousarray(w))
                m.bias.data = b
                m.act = n.attr("activation", "none")
                self.mods[n.name] = m

        def forward(self, x):
            values = {g.input: x}
            for n in g.nodes:
                ins = [values[t] for t in n.inputs]
                if n.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                    y = self.mods[n.name](ins[0])
                elif n.op == "ADD":
                    y = acts[n.attr("activation", "none")](ins[0] + ins[1])
                elif n.op == "MEAN":
                    y = ins[0].mean(dim=(2, 3))
                else:
                    raise NotImplementedError(n.op)
                values[n.output] = y
            return y

    return Net().eval()


def time_accelsim(g, x, faults, workers: int) -> tuple[float, float]:
    """(seconds for the golden state, seconds for the faults after it): the golden state is
    built first, as ``evaluate_faults`` would build it, then the campaign runs on it."""
    inputs = GraphCampaignInputs(g, x, np.zeros(len(x), np.int64))
    start = time.perf_counter()
    golden_state(inputs, rebuild=True)
    golden = time.perf_counter() - start
    evaluate_faults(inputs, faults, workers=workers)
    return golden, time.perf_counter() - start - golden


def time_pytorchfi(g, images, faults, batch: int = 250) -> tuple[float, np.ndarray]:
    import torch
    from pytorchfi.core import fault_injection

    model = float_model(g)
    mean = np.asarray(g.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(g.std, np.float32).reshape(1, -1, 1, 1)
    x = torch.from_numpy(((images.astype(np.float32) / 255 - mean) / std).astype(np.float32))
    weighted = [i for i, n in enumerate(g.nodes) if n.weight is not None]
    layer_of = {node: k for k, node in enumerate(weighted)}  # node index -> PyTorchFI layer
    pfi = fault_injection(model, batch, input_shape=list(x.shape[1:]),
                          layer_types=[torch.nn.Conv2d, torch.nn.Linear])  # fmt: skip
    with torch.no_grad():
        golden = torch.cat([model(x[s : s + batch]).argmax(1) for s in range(0, len(x), batch)])
    changed = np.zeros(len(faults), np.int64)
    start = time.perf_counter()
    for k in range(len(faults)):
        node = int(faults.layer[k])
        t = g.tensors[g.nodes[node].output]
        where = np.unravel_index(int(faults.index[k]), t.shape)
        target, mask = layer_of[node], int(faults.mask[k])

        def flip(module, inp, out, where=where, target=target, t=t, mask=mask):
            if pfi.get_current_layer() == target:
                idx = (slice(None), *where)
                q = torch.clamp(torch.round(out[idx] / t.scale) + t.zero_point, -128, 127)
                q = (q.to(torch.int8) ^ np.int8(np.int64(mask).astype(np.int8))).to(out.dtype)
                out[idx] = (q - t.zero_point) * t.scale
            pfi.updateLayer()
            if pfi.get_current_layer() >= pfi.get_total_layers():
                pfi.reset_current_layer()

        dims = [[int(w)] for w in where] + [[None]] * (3 - len(where))
        faulty = pfi.declare_neuron_fi(batch=[0], layer_num=[target], dim1=dims[0],
                                       dim2=dims[1], dim3=dims[2], function=flip)  # fmt: skip
        with torch.no_grad():
            pred = torch.cat([faulty(x[s : s + batch]).argmax(1) for s in range(0, len(x), batch)])
        changed[k] = int((pred != golden).sum())
    return time.perf_counter() - start, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="resnet20", choices=sorted(GRAPH_ARCHITECTURES))
    parser.add_argument("--model", help="a model file instead of the zoo's network")
    parser.add_argument("--faults", type=int, default=40)
    parser.add_argument("--pytorchfi-faults", type=int, default=20)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="PyTorchFI's threads (default 2: the whole machine, as accelsim's "
                        "two workers have it)")  # fmt: skip
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)
    g = network(args.network, args.model)
    test = load_dataset("cifar10", "test", n_images=args.images)
    x = quantize_graph_images(g, test.images)
    sample = sample_graph_faults(g, None, seed=args.seed)
    print(f"{g.name}: {len(graph_neuron_nodes(g))} neuron nodes, Leveugle sample {len(sample):,}"
          f" faults; {args.images:,} images", flush=True)  # fmt: skip
    ratios, with_golden, rates = [], [], []
    for r in range(args.rounds):
        rng = np.random.default_rng(args.seed + r)
        ours = sample.take(np.sort(rng.choice(len(sample), args.faults, replace=False)))
        theirs = sample.take(np.sort(rng.choice(len(sample), args.pytorchfi_faults, replace=False)))
        golden_s, a_s = time_accelsim(g, x, ours, args.workers)
        p_s, _ = time_pytorchfi(g, test.images, theirs)
        a_rate, p_rate = args.faults * len(x) / a_s, args.pytorchfi_faults * len(x) / p_s
        ratios.append(a_rate / p_rate)
        with_golden.append(args.faults * len(x) / (a_s + golden_s) / p_rate)
        rates.append(a_rate)
        print(f"round {r + 1}: accelsim {a_rate:,.0f} pairs/s ({args.faults} faults, {a_s:.1f} s"
              f" after its golden state, {golden_s:.1f} s), PyTorchFI {p_rate:,.0f} pairs/s"
              f" ({args.pytorchfi_faults} faults, {p_s:.1f} s): {ratios[-1]:.2f}x"
              f" ({with_golden[-1]:.2f}x with accelsim's golden state in its time)",
              flush=True)  # fmt: skip
    print(
        f"accelsim / PyTorchFI per fault x image (neither golden run timed): median "
        f"{statistics.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x over "
        f"{len(ratios)} rounds; with accelsim's golden state timed: "
        f"{min(with_golden):.2f}-{max(with_golden):.2f}x"
    )
    hours = len(sample) * 10_000 / statistics.median(rates) / 3600
    print(
        f"projected full campaign ({len(sample):,} faults x 10,000 images) at accelsim's "
        f"median rate: {hours:,.1f} h"
    )


if __name__ == "__main__":
    main()
