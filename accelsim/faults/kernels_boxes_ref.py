"""Plain numpy references of ``kernels_boxes``' numba kernels, held bit-exact with them by
``tests/unit/faults/test_kernels_boxes.py``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accelsim.functional import graph_ref
from accelsim.functional.graph_kernels import lookup_add_ref

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]


def read_overlay_ref(golden: I8, img: I64, slot: I64, vals: I8, where: I64) -> I8:
    by0, by1, bx0, bx1, ry0, ry1, rx0, rx1 = (int(v) for v in where)
    out = golden[img][:, :, ry0 : ry1 + 1, rx0 : rx1 + 1].copy()
    y0, y1, x0, x1 = max(by0, ry0), min(by1, ry1), max(bx0, rx0), min(bx1, rx1)
    hit = np.flatnonzero(slot >= 0)
    if hit.size and y0 <= y1 and x0 <= x1:
        out[hit, :, y0 - ry0 : y1 - ry0 + 1, x0 - rx0 : x1 - rx0 + 1] = vals[slot[hit]][
            :, :, y0 - by0 : y1 - by0 + 1, x0 - bx0 : x1 - bx0 + 1
        ]
    return out


def gather_columns_ref(golden: I8, img: I64, slot: I64, vals: I8, where: I64, conv: I64) -> F32:
    """golden (N, C, H, W) and vals (E, C, bh, bw) channels first, as the campaign holds them;
    the kernel takes both channels last."""
    kh, kw, stride, top, left, zp = (int(v) for v in conv)
    oy0, oy1, ox0, ox1 = (int(v) for v in where[4:])
    _, c, h, w = golden.shape
    padded = np.full((img.size, c, h + 2 * kh + top, w + 2 * kw + left), zp, np.int8)
    full = read_overlay_ref(golden, img, slot, vals, np.array([*where[:4], 0, h - 1, 0, w - 1]))
    padded[:, :, top : top + h, left : left + w] = full
    oh, ow = oy1 - oy0 + 1, ox1 - ox0 + 1
    taps = np.empty((img.size, c, kh, kw, oh, ow), np.int8)
    for i in range(kh):
        for j in range(kw):
            ys = oy0 * stride + i + stride * np.arange(oh)
            xs = ox0 * stride + j + stride * np.arange(ow)
            taps[:, :, i, j] = padded[:, :, ys][:, :, :, xs]
    return taps.transpose(0, 4, 5, 2, 3, 1).reshape(img.size * oh * ow, -1).astype(np.float32)


def compare_box_ref(out: I8, golden: I8, img: I64, where: I64) -> tuple[I64, I64]:
    oy0, oy1, ox0, ox1 = (int(v) for v in where[4:])
    d = out.astype(np.int64) - golden[img][:, :, oy0 : oy1 + 1, ox0 : ox1 + 1]
    diff = d != 0
    counts = np.stack([diff.reshape(img.size, -1).sum(axis=1),
                       np.abs(d).reshape(img.size, -1).sum(axis=1)], axis=1)  # fmt: skip
    plane = diff.any(axis=(0, 1))
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if ys.size == 0:
        return counts, np.array([oy1 + 1, oy0 - 1, ox1 + 1, ox0 - 1], np.int64)
    return counts, np.array([oy0 + ys[0], oy0 + ys[-1], ox0 + xs[0], ox0 + xs[-1]], np.int64)


def count_changes_ref(golden: I8, img: I64, slot: I64, vals: I8, where: I64) -> I64:
    by0, by1, bx0, bx1 = (int(v) for v in where[:4])
    counts = np.zeros((img.size, 2), np.int64)
    hit = np.flatnonzero(slot >= 0)
    old = golden[img[hit]][:, :, by0 : by1 + 1, bx0 : bx1 + 1].astype(np.int64)
    d = (vals[slot[hit]].astype(np.int64) - old).reshape(hit.size, -1)
    counts[hit, 0] = (d != 0).sum(axis=1)
    counts[hit, 1] = np.abs(d).sum(axis=1)
    return counts


def sparse_conv_ref(
    golden: I8, golden_acc: I32, img: I64, slot: I64, vals: I8, where: I64, conv: I64, weight: I8
) -> I32:
    """The same accumulators by brute force: the raw int8 sums of the whole input with the
    entry laid over (zero-point padding), minus those of the fault-free input, plus
    ``golden_acc``. ``weight`` (O, C, kh, kw)."""
    kh, kw, stride, top, left, zp = (int(v) for v in conv)
    oy0, oy1, ox0, ox1 = (int(v) for v in where[4:])
    _, c, h, w = golden.shape
    new = read_overlay_ref(golden, img, slot, vals, np.array([*where[:4], 0, h - 1, 0, w - 1]))
    old = golden[img]
    sums = []
    for x in (new, old):
        padded = np.full((img.size, c, h + 2 * kh + top, w + 2 * kw + left), zp, np.int64)
        padded[:, :, top : top + h, left : left + w] = x
        out = np.zeros((img.size, weight.shape[0], oy1 - oy0 + 1, ox1 - ox0 + 1), np.int64)
        for i in range(kh):
            for j in range(kw):
                ys = oy0 * stride + i + stride * np.arange(oy1 - oy0 + 1)
                xs = ox0 * stride + j + stride * np.arange(ox1 - ox0 + 1)
                tap = padded[:, :, ys][:, :, :, xs]
                out += np.einsum("oc,ncyx->noyx", weight[:, :, i, j].astype(np.int64), tap)
        sums.append(out)
    base = golden_acc[img][:, :, oy0 : oy1 + 1, ox0 : ox1 + 1].astype(np.int64)
    acc = base + sums[0] - sums[1]
    return acc.transpose(1, 0, 2, 3).reshape(weight.shape[0], img.size, -1).astype(np.int32)


def pool_box_ref(golden: I8, golden_out: I8, img: I64, slot: I64, vals: I8, where: I64,
                 pool: I64) -> tuple[I8, I64, I64]:  # fmt: skip
    """The pool of the whole overlaid map by the specification (``graph_ref``), cropped to the
    output box, and ``compare_box_ref`` of it."""
    kh, kw, stride, top, left, average, lo, hi = (int(v) for v in pool)
    _, _, h, w = golden.shape
    oh, ow = golden_out.shape[2:]
    full = read_overlay_ref(golden, img, slot, vals, np.array([*where[:4], 0, h - 1, 0, w - 1]))
    padding = (top, (oh - 1) * stride + kh - h - top, left, (ow - 1) * stride + kw - w - left)
    spec = graph_ref.average_pool2d if average else graph_ref.max_pool2d
    pooled = spec(full, size=(kh, kw), stride=stride, padding=padding, act_range=(lo, hi))
    oy0, oy1, ox0, ox1 = (int(v) for v in where[4:])
    out = np.ascontiguousarray(pooled[:, :, oy0 : oy1 + 1, ox0 : ox1 + 1])
    return (out, *compare_box_ref(out, golden_out, img, where))


def add_box_ref(goldens: tuple[I8, I8, I8], img: I64, ins: tuple, where: I64,
                table: I8) -> tuple[I8, I64, I64]:  # fmt: skip
    """``kernels_add.add_box_kernel`` channels first: each input read as ``read_overlay_ref``
    reads its region, the table looked up (``graph_kernels.lookup_add_ref``), the result
    compared as ``compare_box_ref`` compares it. Returns (out (n, C, rh, rw), counts, bbox);
    goldens (N, C, H, W) and the entries' values (E, C, bh, bw)."""
    golden_a, golden_b, golden_out = goldens
    slot_a, vals_a, slot_b, vals_b = ins
    region = where[8:12]
    a = read_overlay_ref(golden_a, img, slot_a, vals_a, np.concatenate([where[0:4], region]))
    b = read_overlay_ref(golden_b, img, slot_b, vals_b, np.concatenate([where[4:8], region]))
    out = lookup_add_ref(a, b, table).astype(np.int8)
    counts, bbox = compare_box_ref(out, golden_out, img, np.concatenate([region, region]))
    return out, counts, bbox
