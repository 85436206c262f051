"""Pure scheduling: layers -> GEMMs -> folds (tiles) on the PE array, with SCALE-Sim v3's cycles.

A Conv2D or Dense layer is a GEMM ``out[M, N] = A[M, K] @ W[K, N]`` with M output pixels (1 for
Dense), N output channels and K = Cin * KH * KW. A dataflow maps two GEMM dimensions onto the
R x C array (``spatial_rows`` onto rows, ``spatial_cols`` onto columns) and streams the third:

| dataflow | rows | cols | streamed | cycles per fold |
|---|---|---|---|---|
| output stationary | M | N | K | K + R + C - 2 |
| weight stationary | K | N | M | 2R + C + M - 2 |
| input stationary  | K | M | N | 2R + C + N - 2 |

A fold (a *tile*) is one R x C block of the two spatial dimensions; partial folds cost a full
fold, as in SCALE-Sim. Compute cycles of a layer are ``folds * cycles per fold``; SCALE-Sim's
COMPUTE_REPORT prints the index of the last cycle, one less.

Protected neurons (split: one extra copy, TMR: two) are scheduled at fold granularity, and
always on other PEs than their original:

- *stacked*: when the fold leaves enough of the array idle (output stationary: the rows it uses
  times the number of copies fit in R, e.g. every Dense layer, whose M is 1; weight/input
  stationary: the same with its columns in C), the copies are computed in the same fold in the
  idle rows (columns) right below (beside) the originals, fed the same operands: no extra cycles.
- *re-run*: otherwise the fold runs again once per extra copy, right after the original (its
  operands are still in the buffers), with the array mapping rotated by ``copy`` rows and
  ``copy`` columns: copy k of a neuron sits on PE ((r + k) mod R, (c + k) mod C), never on the
  PE of another copy when R or C exceeds the copy count. In the weight- and input-stationary
  dataflows a fold only produces partial sums, so every reduction (K) fold of a protected
  output strip is re-run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.config.arch import ArchSpec, Dataflow, PEArraySpec
from accelsim.config.workload import ProtectionMode
from accelsim.errors import AccelsimError
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D
from accelsim.functional.network import Network

I64 = npt.NDArray[np.int64]
ACC_BYTES = 4  # partial sums and biases are int32


@dataclass(frozen=True)
class Gemm:
    m: int  # output pixels (1 for Dense)
    n: int  # output channels
    k: int  # reduction length


def layer_gemm(layer: Layer) -> Gemm | None:
    """The GEMM a Conv2D or Dense layer lowers to (None for pooling and flatten)."""
    if isinstance(layer, Conv2D):
        _, oh, ow = layer.out_shape
        return Gemm(oh * ow, layer.out_channels, int(np.prod(layer.weight.shape[1:])))
    if isinstance(layer, Dense):
        return Gemm(1, layer.out_channels, int(layer.weight.shape[1]))
    return None


@dataclass(frozen=True)
class FoldMap:
    """How a GEMM sits on the array: sizes of the dimensions on rows, on columns, streamed."""

    spatial_rows: int
    spatial_cols: int
    temporal: int
    row_folds: int
    col_folds: int
    fold_cycles: int

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def cycles(self) -> int:
        return self.folds * self.fold_cycles


def fold_cycles(pe: PEArraySpec, temporal: int) -> int:
    """Cycles of one fold streaming ``temporal`` operands (SCALE-Sim v3's per-fold count)."""
    r, c = pe.rows, pe.cols
    if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
        return temporal + r + c - 2
    return 2 * r + c + temporal - 2


def fold_map(gemm: Gemm, pe: PEArraySpec) -> FoldMap:
    if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
        sr, sc, t = gemm.m, gemm.n, gemm.k
    elif pe.dataflow is Dataflow.WEIGHT_STATIONARY:
        sr, sc, t = gemm.k, gemm.n, gemm.m
    else:
        sr, sc, t = gemm.k, gemm.m, gemm.n
    return FoldMap(sr, sc, t, -(-sr // pe.rows), -(-sc // pe.cols), fold_cycles(pe, t))


def neuron_position(layer: Conv2D | Dense | Gemm, flat_index: npt.ArrayLike) -> tuple[I64, I64]:
    """GEMM coordinates (m, n) of flat (C-H-W) output indices (of a layer, or of one GEMM
    whose outputs are laid out channel after channel, M pixels each)."""
    flat = np.asarray(flat_index, np.int64)
    per_channel = layer.m if isinstance(layer, Gemm) else layer.out_size // layer.out_channels
    return flat % per_channel, flat // per_channel


@dataclass(frozen=True, eq=False)
class LayerSchedule:
    """The folds of one layer in issue order (arrays of length n_tiles, int64).

    ``row_fold``/``col_fold`` index the fold in the spatial dimensions, ``copy`` is 0 for the
    original computation and k for the k-th extra copy of protected neurons (re-run, rotated),
    ``stack`` is how many copies the fold computes side by side (1, or 1 + extra copies when
    they are stacked in idle rows/columns ``stack_offset`` apart), ``protected`` counts
    the protected neurons a fold finishes (the correction stage's work after it), ``*_bytes`` are
    the bytes each operand slice of the fold occupies.
    """

    layer: int
    name: str
    gemm: Gemm | None
    fold: FoldMap | None
    row_fold: I64
    col_fold: I64
    copy: I64
    protected: I64
    stack: I64
    stack_offset: I64
    input_bytes: I64
    weight_bytes: I64
    output_bytes: I64
    writeback_bytes: I64  # final int8 outputs the fold sends off-chip
    layer_input_bytes: int  # the whole input feature map (int8)
    layer_weight_bytes: int  # int8 weights + int32 biases
    layer_output_bytes: int  # the whole output feature map (int8)
    post_cycles: int  # pooling: cycles of the activation/pooling unit
    held_bytes: int = 0  # graphs: earlier tensors still awaiting a later reader (skip tensors)
    group: I64 | None = None  # graphs: the depthwise channel group of each fold (None: all 0)

    def __post_init__(self) -> None:
        if self.group is None:
            object.__setattr__(self, "group", np.zeros(self.row_fold.size, np.int64))
        self.group.setflags(write=False)
        for arr in (self.row_fold, self.col_fold, self.copy, self.protected, self.stack):
            arr.setflags(write=False)
        for arr in (self.input_bytes, self.weight_bytes, self.output_bytes, self.writeback_bytes):
            arr.setflags(write=False)

    @property
    def n_tiles(self) -> int:
        return int(self.row_fold.size)


@dataclass(frozen=True, eq=False)
class Schedule:
    arch: ArchSpec
    network: str
    mode: ProtectionMode  # of the plan (NONE without one)
    extra_copies: int
    layers: tuple[LayerSchedule, ...]

    @property
    def compute_cycles(self) -> int:
        return sum(int(ls.n_tiles) * ls.fold.fold_cycles for ls in self.layers if ls.fold)


def _used(total: int, per_fold: int, index: I64) -> I64:
    return np.minimum(per_fold, total - index * per_fold)


def _slice_bytes(gemm: Gemm, fm: FoldMap, pe: PEArraySpec, rf: I64, cf: I64, last_k: I64):
    """Bytes of the input, weight (+bias) and output slices of folds (rf, cf)."""
    rows, cols = _used(fm.spatial_rows, pe.rows, rf), _used(fm.spatial_cols, pe.cols, cf)
    flow = pe.dataflow
    if flow is Dataflow.OUTPUT_STATIONARY:  # rows: M, cols: N, stream K
        return rows * gemm.k, cols * (gemm.k + ACC_BYTES), rows * cols
    out_per = np.where(last_k, 1, ACC_BYTES)  # int32 partial sums until the last K fold
    if flow is Dataflow.WEIGHT_STATIONARY:  # rows: K, cols: N, stream M
        return gemm.m * rows, rows * cols + ACC_BYTES * cols, gemm.m * cols * out_per
    return rows * cols, gemm.n * rows + ACC_BYTES * gemm.n, cols * gemm.n * out_per  # is


def _protected_folds(gemm: Gemm, fm: FoldMap, pe: PEArraySpec, index: I64) -> tuple[I64, I64]:
    """Per fold of the original order: whether it must be re-run for copies, and how many
    protected neurons it finishes (0 unless it is the last reduction fold of their strip)."""
    m, n = neuron_position(gemm, index)
    rerun = np.zeros((fm.row_folds, fm.col_folds), bool)
    finish = np.zeros((fm.row_folds, fm.col_folds), np.int64)
    if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
        np.add.at(finish, (m // pe.rows, n // pe.cols), 1)
        rerun = finish > 0
        return rerun, finish
    strip = n // pe.cols if pe.dataflow is Dataflow.WEIGHT_STATIONARY else m // pe.cols
    counts = np.bincount(strip, minlength=fm.col_folds)
    rerun[:, counts > 0] = True
    finish[-1, :] = counts
    return rerun, finish


def _layer_bytes(layer: Layer) -> tuple[int, int, int]:
    weights = 0
    if isinstance(layer, Conv2D | Dense):
        weights = int(layer.weight.size + ACC_BYTES * layer.bias.size)
    return int(np.prod(layer.in_shape)), weights, int(np.prod(layer.out_shape))


def _post_cycles(layer: Layer, pe: PEArraySpec) -> int:
    """Max pooling on the activation/pooling unit: one window element per lane per cycle, one
    lane per array column."""
    if isinstance(layer, MaxPool2D):
        return -(-int(np.prod(layer.out_shape)) * layer.size**2 // pe.cols)
    return 0


def schedule_layer(
    layer: Layer, index: int, pe: PEArraySpec, protected: I64 | None, extra_copies: int
) -> LayerSchedule:
    """The folds of one layer, originals in row-major fold order (reduction folds innermost for
    ws/is, so a strip's partial sums finish together), each followed by its copies."""
    gemm = layer_gemm(layer)
    in_b, w_b, out_b = _layer_bytes(layer)
    if gemm is None:
        return unit_schedule(index, layer.name, in_b, out_b, _post_cycles(layer, pe))
    return gemm_schedule(index, layer.name, gemm, pe, protected, extra_copies, (in_b, w_b, out_b))


def unit_schedule(
    index: int, name: str, in_b: int, out_b: int, post_cycles: int, held_bytes: int = 0
) -> LayerSchedule:
    """A layer on the activation/pooling unit: no folds, ``post_cycles`` of the unit."""
    empty = np.zeros(0, np.int64)
    return LayerSchedule(
        index, name, None, None, *([empty] * 10), in_b, 0, out_b, post_cycles, held_bytes
    )


def gemm_schedule(
    index: int, name: str, gemm: Gemm, pe: PEArraySpec, protected: I64 | None,
    extra_copies: int, sizes: tuple[int, int, int], *, groups: int = 1, held_bytes: int = 0,
) -> LayerSchedule:  # fmt: skip
    """The folds of ``groups`` GEMMs of one shape run one after another (a depthwise layer:
    one per input channel), each group's outputs laid out after the previous group's;
    ``sizes``: the layer's input, weight and output bytes."""
    if groups > 1:
        per = gemm.m * gemm.n
        parts = []
        for grp in range(groups):
            idx = None
            if protected is not None:
                sel = protected[(protected >= grp * per) & (protected < (grp + 1) * per)]
                idx = sel - grp * per
            parts.append(gemm_schedule(index, name, gemm, pe, idx, extra_copies, sizes))
        cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in _FOLD_FIELDS}
        group = np.repeat(np.arange(groups), [p.n_tiles for p in parts])
        return LayerSchedule(index, name, gemm, parts[0].fold, **cat, layer_input_bytes=sizes[0],
                             layer_weight_bytes=sizes[1], layer_output_bytes=sizes[2],
                             post_cycles=0, held_bytes=held_bytes, group=group)  # fmt: skip
    in_b, w_b, out_b = sizes
    fm = fold_map(gemm, pe)
    rf, cf = np.meshgrid(np.arange(fm.row_folds), np.arange(fm.col_folds), indexing="ij")
    if pe.dataflow is not Dataflow.OUTPUT_STATIONARY:  # reduction (row) folds innermost
        rf, cf = rf.T, cf.T
    rf, cf = rf.ravel(), cf.ravel()
    finish = np.zeros(rf.size, np.int64)
    copies = np.ones(rf.size, np.int64)
    stack = np.ones(rf.size, np.int64)
    offset = np.zeros(rf.size, np.int64)
    if protected is not None and protected.size:
        rerun, fin = _protected_folds(gemm, fm, pe, protected)
        finish = fin[rf, cf]
        want = rerun[rf, cf] & (extra_copies > 0)
        if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
            used, room = _used(fm.spatial_rows, pe.rows, rf), pe.rows
        else:
            used, room = _used(fm.spatial_cols, pe.cols, cf), pe.cols
        stacked = want & (used * (1 + extra_copies) <= room)
        stack = np.where(stacked, 1 + extra_copies, 1)
        offset = np.where(stacked, used, 0)
        copies = 1 + extra_copies * (want & ~stacked)
    order = np.repeat(np.arange(rf.size), copies)
    copy = np.arange(order.size) - np.repeat(np.cumsum(copies) - copies, copies)
    is_last_copy = copy == copies[order] - 1
    done = np.where(is_last_copy, finish[order], 0)  # correction work after this fold
    rf, cf = rf[order], cf[order]
    stack, offset = np.where(copy == 0, stack[order], 1), np.where(copy == 0, offset[order], 0)
    is_os = pe.dataflow is Dataflow.OUTPUT_STATIONARY
    last_k = np.full(rf.size, is_os) | (rf == fm.row_folds - 1)
    in_bytes, wt_bytes, out_bytes = _slice_bytes(gemm, fm, pe, rf, cf, last_k)
    # a copy fold keeps only the protected neurons it finishes (partial sums until then)
    out_bytes = np.where(copy > 0, np.where(last_k, finish[order], out_bytes), out_bytes)
    writeback = np.where((copy == 0) & last_k, out_bytes, 0)
    return LayerSchedule(
        index, name, gemm, fm, rf, cf, copy, done, stack, offset,
        in_bytes, wt_bytes, out_bytes, writeback, in_b, w_b, out_b, 0, held_bytes,
    )  # fmt: skip


_FOLD_FIELDS = (
    "row_fold", "col_fold", "copy", "protected", "stack", "stack_offset", "input_bytes",
    "weight_bytes", "output_bytes", "writeback_bytes",
)  # fmt: skip


def check_copies_fit(arch: ArchSpec, extra_copies: int) -> None:
    """Refuse an array too small to hold every copy of a neuron on its own PE."""
    pe = arch.pe_array
    if extra_copies and pe.rows <= extra_copies and pe.cols <= extra_copies:
        raise AccelsimError(
            f"{arch.name}: a {pe.rows}x{pe.cols} array cannot place {1 + extra_copies} copies of "
            "a neuron on different PEs"
        )


def schedule_network(
    net: Network, arch: ArchSpec, *, protected: dict[int, I64] | None = None,
    extra_copies: int = 0, mode: ProtectionMode = ProtectionMode.NONE,
) -> Schedule:  # fmt: skip
    """Every layer's folds on ``arch``; ``protected`` maps layer index -> protected neurons."""
    protected = protected or {}
    pe = arch.pe_array
    check_copies_fit(arch, extra_copies)
    layers = tuple(
        schedule_layer(layer, i, pe, protected.get(i), extra_copies)
        for i, layer in enumerate(net.layers)
        if not isinstance(layer, Flatten)
    )
    return Schedule(arch, net.name, mode, extra_copies, layers)


def neurons_on_pe(
    ls: LayerSchedule, pe: PEArraySpec, row: int, col: int, *, outputs_only: bool = False
) -> tuple[I64, I64]:
    """(copy, flat output index) of every output the PE at physical (row, col) works on in this
    layer. Output stationary: the outputs it computes. Weight/input stationary: the outputs whose
    partial sums pass through it, or with ``outputs_only`` the finished outputs it emits (bottom
    row, last reduction fold)."""
    if ls.fold is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    g, fm = ls.gemm, ls.fold
    rp = (row - ls.copy) % pe.rows
    cp = (col - ls.copy) % pe.cols
    i = ls.row_fold * pe.rows + rp
    j = ls.col_fold * pe.cols + cp
    copy = ls.copy.copy()
    stacked = ls.stack > 1
    if pe.dataflow is Dataflow.OUTPUT_STATIONARY:
        e = np.where(stacked, row // np.maximum(ls.stack_offset, 1), 0)
        i = np.where(stacked, ls.row_fold * pe.rows + row - e * ls.stack_offset, i)
        copy = np.where(stacked, e, copy)
        keep = (i < g.m) & (j < g.n) & (~stacked | (e < ls.stack))
        return copy[keep], j[keep] * g.m + i[keep]
    e = np.where(stacked, col // np.maximum(ls.stack_offset, 1), 0)
    j = np.where(stacked, ls.col_fold * pe.cols + col - e * ls.stack_offset, j)
    copy = np.where(stacked, e, copy)
    keep = (j < fm.spatial_cols) & (~stacked | (e < ls.stack))
    if outputs_only:
        keep &= (ls.row_fold == fm.row_folds - 1) & (row == pe.rows - 1)
    streamed = np.arange(fm.temporal)
    copies = np.repeat(copy[keep], streamed.size)
    jj = np.repeat(j[keep], streamed.size)
    ss = np.tile(streamed, int(keep.sum()))
    m, n = (ss, jj) if pe.dataflow is Dataflow.WEIGHT_STATIONARY else (jj, ss)
    pairs = np.unique(np.stack([copies, n * g.m + m]), axis=1)
    return pairs[0], pairs[1]
