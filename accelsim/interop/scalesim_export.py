"""SCALE-Sim v3 input files for a network on an architecture: rerun accelsim's cycle counts in
SCALE-Sim.

    written = export_scalesim(load_graph("lenet5"), load_arch("pe16x16"), "scalesim/")
    # then, in an environment with scalesim==3.0.0 and numpy<2.3:
    #   cd scalesim && python -m scalesim.scale -c lenet5.cfg -t lenet5.csv -l layout.csv -p out

Writes ``NAME.csv`` (the topology: one row per CONV_2D / FULLY_CONNECTED node, a depthwise node
as a ``_DP`` row that SCALE-Sim splits into one layer per channel), ``NAME.cfg`` (the array's
rows, columns and dataflow, the buffers' capacities in kB, the off-chip bandwidth;
``InterfaceBandwidth: CALC``, i.e. no stalls) and ``layout.csv`` (the header-only layout file
SCALE-Sim opens unconditionally).

SCALE-Sim has no padding field and computes a layer's output size as ``ceil((H - K + S) / S)``
on the input it is given, so every convolution row gives the input cropped to ``(O - 1) S + K``
(the padded rows and columns the output actually reads): SCALE-Sim then maps the same GEMM as
accelsim, and its per-layer "Total Cycles" (the index of the last cycle, so one less than the
count) plus one equal ``graph_compute_cycles`` (``tests/slow/test_scalesim_export.py`` runs
SCALE-Sim on the export).
"""

from __future__ import annotations

import math
from pathlib import Path

from accelsim import files
from accelsim.config.arch import ArchSpec, Dataflow
from accelsim.functional.graph import Graph
from accelsim.timing.graph_schedule import graph_topology_csv

_FLOWS = {
    Dataflow.OUTPUT_STATIONARY: "os",
    Dataflow.WEIGHT_STATIONARY: "ws",
    Dataflow.INPUT_STATIONARY: "is",
}

_CFG = """[general]
run_name = {run}

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : {ifmap_kb}
FilterSramSzkB : {filter_kb}
OfmapSramSzkB : {ofmap_kb}
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {flow}
Bandwidth : {bandwidth}
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
FilterCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def scalesim_config(arch: ArchSpec, run_name: str, *, sram_kb: int | None = None) -> str:
    """SCALE-Sim v3's ``.cfg`` for ``arch`` (every section it requires present); ``sram_kb``
    sets all three SRAMs instead of the architecture's buffers."""
    kb = lambda b: sram_kb or max(1, math.ceil(b.capacity_bytes / 1024))  # noqa: E731
    return _CFG.format(
        run=run_name,
        rows=arch.pe_array.rows,
        cols=arch.pe_array.cols,
        ifmap_kb=kb(arch.inputs),
        filter_kb=kb(arch.weights),
        ofmap_kb=kb(arch.outputs),
        flow=_FLOWS[arch.pe_array.dataflow],
        bandwidth=arch.offchip.bandwidth_bytes_per_cycle,
    )


def export_scalesim(g: Graph, arch: ArchSpec, folder: Path | str) -> list[Path]:
    """Write ``NAME.csv``, ``NAME.cfg`` and ``layout.csv`` into ``folder``; returns the paths."""
    folder = Path(folder)
    run = f"{g.name}_{arch.name}"
    return [
        files.write_text(folder / f"{g.name}.csv", graph_topology_csv(g)),
        files.write_text(folder / f"{g.name}.cfg", scalesim_config(arch, run)),
        files.write_text(folder / "layout.csv", "Layer name, IFMAP SRAM Bank, FILTER SRAM Bank,\n"),
    ]


__all__ = ["export_scalesim", "scalesim_config"]
