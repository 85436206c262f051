"""Run SCALE-Sim v3 on one topology in its own interpreter (numpy < 2.3) and print JSON.

Usage (from bench_timing.py, with the Python of an environment holding scalesim==3.0.0):
    PYTHON scalesim_runner.py CONFIG.cfg TOPOLOGY.csv WORKDIR

The config comes from ``accelsim.scalesim_config`` (written by the caller, which has accelsim).

Prints one JSON line: {"layers": [{"name", "total_cycles", "stall_cycles"}...], "wall_s",
"peak_rss_mb"}; a depthwise ``DP`` row's layers are named ``<row>Channel_<c>``, as SCALE-Sim
names them. Stalls are off (InterfaceBandwidth = CALC), traces are not written
(save_disk_space). This file never imports accelsim.
"""

import csv
import json
import resource
import sys
import time
from pathlib import Path


def _peak_mb() -> float:
    """This process image's peak resident memory (VmHWM): ru_maxrss would include the parent's,
    which Linux carries over a fork + exec."""
    try:
        with open("/proc/self/status") as fh:
            line = next(x for x in fh if x.startswith("VmHWM"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    cfg, topology, workdir = sys.argv[1:4]
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    layout = work / "layout.csv"
    layout.write_text("Layer name, IFMAP SRAM Bank, FILTER SRAM Bank,\n")
    from scalesim.scale_sim import scalesim

    start = time.perf_counter()
    sim = scalesim(
        save_disk_space=True,
        verbose=False,
        config=str(cfg),
        topology=topology,
        layout=str(layout),
    )
    sim.run_scale(top_path=str(work))
    wall = time.perf_counter() - start
    report = next(work.rglob("COMPUTE_REPORT.csv"))
    names = []
    with open(topology) as fh:
        for r in list(csv.reader(fh))[1:]:
            if not r:
                continue
            name = r[0].strip()
            if "DP" in name:  # SCALE-Sim runs a DP row as one layer per channel
                names += [f"{name}Channel_{c}" for c in range(int(r[5]))]
            else:
                names.append(name)
    layers = []
    with open(report) as fh:
        rows_ = list(csv.reader(fh))
    head = [h.strip() for h in rows_[0]]
    for name, row in zip(names, rows_[1:], strict=False):
        rec = dict(zip(head, (v.strip() for v in row), strict=False))
        layers.append(
            {
                "name": name,
                "total_cycles": int(float(rec["Total Cycles (incl. prefetch)"]))
                if "Total Cycles (incl. prefetch)" in rec
                else None,
                "compute_cycles": int(float(rec.get("Total Cycles", "nan"))),
                "stall_cycles": int(float(rec.get("Stall Cycles", "0"))),
                "raw": rec,
            }
        )
    peak = _peak_mb()
    print(json.dumps({"layers": layers, "wall_s": wall, "peak_rss_mb": peak}))


if __name__ == "__main__":
    main()
