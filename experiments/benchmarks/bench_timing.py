"""accelsim's timing model against SCALE-Sim v3 on the same layers and arrays, in one command.

For every network (LeNet-5, AlexNet), array (8x8, 16x16, 32x32) and dataflow (os, ws, is):
per-layer compute cycles of both tools side by side (SCALE-Sim's COMPUTE_REPORT "Total Cycles"
is the index of the last cycle, so it is compared + 1), and the wall time of a whole-network
simulation of each (accelsim: schedule + discrete-event run with the memory model, median of 3
after a warm-up; SCALE-Sim: its own run, measured inside its process, import excluded) and their
ratio. Then the protected case of the issue: AlexNet on 16x16 with split protection at NVF 20 %
(and, since our AlexNet has few neurons that critical, at the top 5 % of NVF): time and peak
memory of a fresh process that loads the network and the plan and simulates once.

SCALE-Sim 3.0.0 needs numpy < 2.3, so it runs in its own environment:

    python3 -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install "numpy<2.3" scalesim==3.0.0
    python experiments/benchmarks/bench_timing.py --scalesim-python /tmp/ssenv/bin/python

Options: --networks, --arrays, --dataflows restrict the grid; --nvf-images sets the analysis
images of the protected case. Output: tables on stdout, JSON under experiments/out/bench_timing/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from accelsim import (
    ArchSpec,
    Conv2D,
    Dataflow,
    Dense,
    PEArraySpec,
    files,
    load_arch,
    load_dataset,
    load_network,
    quantize_images,
    scalesim_config,
    simulate,
)

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("scalesim_runner.py")
FLOWS = {"os": Dataflow.OUTPUT_STATIONARY, "ws": Dataflow.WEIGHT_STATIONARY,
         "is": Dataflow.INPUT_STATIONARY}  # fmt: skip


def topology_csv(net) -> str:
    """SCALE-Sim's topology: padded input sizes (it has no padding field), Dense as 1x1."""
    rows = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
            "Num Filter, Strides,"]  # fmt: skip
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            c, h, w = layer.in_shape
            kh, kw = layer.weight.shape[2:]
            p = layer.padding
            rows.append(f"{layer.name}, {h + 2 * p}, {w + 2 * p}, {kh}, {kw}, {c}, "
                        f"{layer.out_channels}, {layer.stride},")  # fmt: skip
        elif isinstance(layer, Dense):
            rows.append(f"{layer.name}, 1, 1, 1, 1, {layer.weight.shape[1]}, "
                        f"{layer.out_channels}, 1,")  # fmt: skip
    return "\n".join(rows) + "\n"


def with_array(arch: ArchSpec, size: int, flow: Dataflow) -> ArchSpec:
    import dataclasses

    return dataclasses.replace(arch, pe_array=PEArraySpec(size, size, flow))


def accelsim_run(net, arch: ArchSpec) -> tuple[dict[str, int], float]:
    """Per-layer compute cycles (ideal memory) and the median wall time of a full simulation."""
    _, ideal = simulate(net, arch, ideal_memory=True)
    cycles = {t.name: t.compute_cycles for t in ideal.layers if t.tiles}
    times = []
    for _ in range(3):
        start = time.perf_counter()
        simulate(net, arch)
        times.append(time.perf_counter() - start)
    return cycles, statistics.median(times)


def scalesim_run(python: str, net, arch: ArchSpec, work: Path) -> dict:
    """SCALE-Sim on ``net``'s topology with ``arch``'s array (1 MiB SRAMs, no stalls)."""
    topo = work / f"{net.name}.csv"
    files.write_text(topo, topology_csv(net))
    tag = f"{arch.pe_array.rows}{arch.pe_array.dataflow.value}"
    cfg = files.write_text(work / f"{tag}.cfg",
                           scalesim_config(arch, "accelsim_peer", sram_kb=1024))  # fmt: skip
    out = subprocess.run(
        [python, str(RUNNER), str(cfg), str(topo), str(work / tag)],
        capture_output=True, text=True, check=True, cwd=work,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def protected_plans(nvf_images: int, work: Path) -> list[Path]:
    """Split plans for AlexNet at NVF >= 20 % and at the top 5 % (NVF over training images),
    saved for the timed child processes."""
    from accelsim import ProtectionMode, compute_nvf, plan_from_nvf, save_plan, threshold_for_top

    net = load_network("alexnet")
    data = load_dataset("cifar10", "train", n_images=nvf_images)
    nvf = {lay.layer: lay.nvf for lay in compute_nvf(net, quantize_images(net, data.images)).layers}
    paths = []
    for name, t in (("nvf20", 20.0), ("top5", threshold_for_top(nvf, 5.0))):
        path = work / f"plan-{name}.npz"
        save_plan(plan_from_nvf(net, ProtectionMode.SPLIT, nvf, t), path)
        paths.append(path)
    return paths


CHILD = """
import json, sys, time
from accelsim import load_arch, load_network, simulate
from accelsim import load_plan
def hwm_mb():  # this image's peak (ru_maxrss would include the parent's, copied at fork)
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024
net = load_network("alexnet")
plan = load_plan(sys.argv[1], net)
arch = load_arch(sys.argv[2])
start = time.perf_counter()
_, report = simulate(net, arch, plan=plan)
seconds = time.perf_counter() - start
print(json.dumps({"threshold_percent": plan.threshold_percent, "protected": plan.n_protected,
    "seconds": seconds, "peak_rss_mb": hwm_mb(),
    "total_cycles": report.total_cycles, "copy_folds": report.total("copy_tiles")}))
"""


def protected_case(plan: Path) -> dict:
    """One fresh process: load AlexNet and the plan, simulate on 16x16 once (cold: the time
    includes SimPy's first run), report time and the process's peak resident memory."""
    arch = REPO / "arch" / "pe16x16.yaml"
    out = subprocess.run([sys.executable, "-c", CHILD, str(plan), str(arch)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scalesim-python",
        default=os.environ.get("SCALESIM_PYTHON"),
        help="python of an environment with scalesim==3.0.0 and numpy<2.3",
    )
    parser.add_argument("--networks", default="lenet5,alexnet")
    parser.add_argument("--arrays", default="8,16,32")
    parser.add_argument("--dataflows", default="os,ws,is")
    parser.add_argument("--nvf-images", type=int, default=256)
    parser.add_argument("--skip-protected", action="store_true")
    args = parser.parse_args()
    if not args.scalesim_python:
        parser.error("--scalesim-python (or SCALESIM_PYTHON) is required")
    base = load_arch(REPO / "arch" / "pe16x16.yaml")
    out_dir = REPO / "experiments" / "out" / "bench_timing"
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    results, differences = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks.split(","):
            net = load_network(name)
            for size in map(int, args.arrays.split(",")):
                for flow in args.dataflows.split(","):
                    arch = with_array(base, size, FLOWS[flow])
                    ours, our_s = accelsim_run(net, arch)
                    theirs = scalesim_run(args.scalesim_python, net, arch, Path(tmp))
                    rows = []
                    for lay in theirs["layers"]:
                        a, s = ours[lay["name"]], lay["compute_cycles"] + 1
                        rows.append((lay["name"], a, s, a - s))
                        if a != s:
                            differences.append((name, size, flow, lay["name"], a, s))
                    res = {"network": name, "array": size, "dataflow": flow, "layers": rows,
                           "accelsim_s": our_s, "scalesim_s": theirs["wall_s"],
                           "scalesim_peak_mb": theirs["peak_rss_mb"],
                           "speedup": theirs["wall_s"] / our_s}  # fmt: skip
                    results.append(res)
                    print(f"{name:8} {size:>2}x{size:<2} {flow}: layers equal "
                          f"{sum(r[3] == 0 for r in rows)}/{len(rows)}, accelsim {our_s:.4f} s, "
                          f"SCALE-Sim {theirs['wall_s']:.1f} s ({theirs['peak_rss_mb']:.0f} MB), "
                          f"ratio {res['speedup']:,.0f}x", flush=True)  # fmt: skip
    print("\nper-layer compute cycles (accelsim | SCALE-Sim + 1):")
    for res in results:
        cells = " ".join(f"{n}={a}|{s}" for n, a, s, _ in res["layers"])
        print(f"  {res['network']} {res['array']}x{res['array']} {res['dataflow']}: {cells}")
    print(f"differences: {len(differences)}" + "".join(f"\n  {d}" for d in differences))
    for net_name in {r["network"] for r in results}:
        ratios = [r["speedup"] for r in results if r["network"] == net_name]
        print(f"{net_name}: whole-network speed ratio SCALE-Sim / accelsim: min "
              f"{min(ratios):,.0f}x, median {statistics.median(ratios):,.0f}x, max "
              f"{max(ratios):,.0f}x over {len(ratios)} array x dataflow runs")  # fmt: skip
    protected = []
    if not args.skip_protected:
        with tempfile.TemporaryDirectory() as tmp:
            cases = [protected_case(p) for p in protected_plans(args.nvf_images, Path(tmp))]
        for case in cases:
            protected.append(case)
            print(f"AlexNet 16x16 split, NVF >= {case['threshold_percent']:.4g} % "
                  f"({case['protected']:,} neurons protected, {case['copy_folds']:,} copy "
                  f"folds): {case['seconds']:.3f} s, peak RSS {case['peak_rss_mb']:.0f} MB, "
                  f"{case['total_cycles']:,} cycles")  # fmt: skip
    files.write_text(out_dir / "results.json", json.dumps(
        {"grid": results, "differences": differences, "protected": protected},
        indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else o,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
