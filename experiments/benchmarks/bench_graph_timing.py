"""Compute cycles of the graph networks (ResNet-20, MobileNetV2-style) against SCALE-Sim v3.

    SCALESIM_PYTHON=/tmp/ssenv/bin/python python experiments/benchmarks/bench_graph_timing.py

For every array size and dataflow, accelsim's per-node compute cycles (``graph_compute_cycles``:
a depthwise node lowered to one convolution per channel, as SCALE-Sim runs a ``DP`` row) are
compared with SCALE-Sim 3.0.0's COMPUTE_REPORT (its last-cycle index + 1, summed over a DP
row's channels) on the same topology (``graph_topology_csv``). Networks come from the zoo when
their model files exist, else from the float architectures with random weights (the cycles
depend on the geometry only). SCALE-Sim runs in its own environment (numpy < 2.3):
    python3 -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install "numpy<2.3" scalesim==3.0.0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from accelsim import (
    GRAPH_ARCHITECTURES,
    ZOO_DIR,
    Dataflow,
    PEArraySpec,
    files,
    graph_compute_cycles,
    graph_topology_csv,
    load_arch,
    load_graph,
    quantize_graph,
    random_graph_weights,
    scalesim_config,
)

RUNNER = Path(__file__).with_name("scalesim_runner.py")
FLOWS = {"os": Dataflow.OUTPUT_STATIONARY, "ws": Dataflow.WEIGHT_STATIONARY,
         "is": Dataflow.INPUT_STATIONARY}  # fmt: skip


def network(name: str):
    if (ZOO_DIR / f"{name}.yaml").is_file():
        return load_graph(name)
    arch = GRAPH_ARCHITECTURES[name]
    rng = np.random.default_rng(0)
    weights = random_graph_weights(arch, rng)
    images = rng.integers(0, 256, size=(4, *arch["input_shape"]), dtype=np.uint8)
    return quantize_graph(name, arch, weights, images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scalesim-python", default=os.environ.get("SCALESIM_PYTHON"))
    parser.add_argument("--networks", default="resnet20,mobilenetv2")
    parser.add_argument("--arrays", default="8,16,32")
    parser.add_argument("--dataflows", default="os,ws,is")
    args = parser.parse_args()
    if not args.scalesim_python:
        parser.error("--scalesim-python (or SCALESIM_PYTHON) is required")
    total_nodes, differences = 0, []
    base = load_arch("pe16x16")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            g = network(name)
            topo = Path(tmp) / f"{name}.csv"
            files.write_text(topo, graph_topology_csv(g))
            for size in map(int, args.arrays.split(",")):
                for flow in args.dataflows.split(","):
                    ours = graph_compute_cycles(g, PEArraySpec(size, size, FLOWS[flow]))
                    arch = dataclasses.replace(base, pe_array=PEArraySpec(size, size, FLOWS[flow]))
                    cfg = files.write_text(Path(tmp) / f"{size}{flow}.cfg", scalesim_config(
                        arch, "accelsim_peer", sram_kb=1024))  # fmt: skip
                    out = subprocess.run(
                        [args.scalesim_python, str(RUNNER), str(cfg), str(topo),
                         str(Path(tmp) / f"{name}{size}{flow}")],
                        capture_output=True, text=True, check=True, cwd=tmp,
                    )  # fmt: skip
                    theirs: dict[str, int] = defaultdict(int)
                    for lay in json.loads(out.stdout.strip().splitlines()[-1])["layers"]:
                        node = lay["name"].split("_DPChannel_")[0]
                        theirs[node] += lay["compute_cycles"] + 1
                    diff = [(n, ours[n], theirs[n]) for n in ours if ours[n] != theirs[n]]
                    total_nodes += len(ours)
                    differences += [(name, size, flow, *d) for d in diff]
                    print(f"{name:12} {size:>2}x{size:<2} {flow}: {len(ours) - len(diff)}/"
                          f"{len(ours)} nodes equal, {sum(ours.values()):,} cycles "
                          f"(SCALE-Sim {sum(theirs.values()):,})", flush=True)  # fmt: skip
    print(f"differences: {len(differences)} of {total_nodes} node cases"
          + "".join(f"\n  {d}" for d in differences))  # fmt: skip


if __name__ == "__main__":
    main()
