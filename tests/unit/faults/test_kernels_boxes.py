"""The changed-box kernels of graph campaigns equal their numpy references bit for bit, on
random geometries: strides 1 and 2, 1x1 and 3x3 windows, output boxes at the map's edges (the
zero-point padding), entry boxes inside, across and outside the region, images with and
without changed values."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.faults import kernels_boxes as kb
from accelsim.faults import kernels_boxes_ref as ref
from accelsim.faults.code_check import NO_THRESHOLDS
from accelsim.faults.kernels_pool import pool_box_kernel, pool_cl_kernel
from accelsim.functional import graph_ref


def _case(rng, c: int, h: int, w: int):
    n_all, n = 9, 6
    golden = rng.integers(-128, 128, size=(n_all, c, h, w)).astype(np.int8)
    img = np.sort(rng.choice(n_all, n, replace=False)).astype(np.int64)
    y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
    box = (y0, int(rng.integers(y0, h)), x0, int(rng.integers(x0, w)))
    n_vals = 3
    vals = rng.integers(-128, 128, size=(n_vals, c, box[1] - box[0] + 1, box[3] - box[2] + 1))
    slot = np.full(n, -1, np.int64)
    slot[rng.choice(n, n_vals, replace=False)] = np.arange(n_vals)
    return golden, img, slot, vals.astype(np.int8), box


@pytest.mark.parametrize("seed", range(12))
def test_read_overlay_equals_its_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    golden, img, slot, vals, box = _case(rng, 3, 7, 6)
    ry0, rx0 = int(rng.integers(0, 7)), int(rng.integers(0, 6))
    region = (ry0, int(rng.integers(ry0, 7)), rx0, int(rng.integers(rx0, 6)))
    where = np.array([*box, *region], np.int64)
    out = np.empty((img.size, 3, region[1] - region[0] + 1, region[3] - region[2] + 1), np.int8)
    kb.read_overlay_kernel(golden, img, slot, vals, where, out)
    want = ref.read_overlay_ref(golden, img, slot, vals, where)
    np.testing.assert_array_equal(out, want)
    # by hand: an image without values reads the fault-free region
    plain = int(np.flatnonzero(slot < 0)[0])
    np.testing.assert_array_equal(
        out[plain], golden[img[plain], :, region[0] : region[1] + 1, region[2] : region[3] + 1]
    )


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize(("k", "stride", "pad"), [(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0),
                                                  (3, 2, 0)])  # fmt: skip
def test_gather_columns_equals_its_reference(seed: int, k: int, stride: int, pad: int) -> None:
    rng = np.random.default_rng(seed)
    c, h, w = 5, 9, 8
    golden, img, slot, vals, box = _case(rng, c, h, w)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    oy0, ox0 = int(rng.integers(0, oh)), int(rng.integers(0, ow))
    out_box = (oy0, int(rng.integers(oy0, oh)), ox0, int(rng.integers(ox0, ow)))
    where = np.array([*box, *out_box], np.int64)
    zp = int(rng.integers(-128, 128))
    conv = np.array([k, k, stride, pad, pad, zp], np.int64)
    rows = img.size * (out_box[1] - oy0 + 1) * (out_box[3] - ox0 + 1)
    cols = np.empty((rows, k * k * c), np.float32)
    kb.gather_columns_kernel(
        np.ascontiguousarray(golden.transpose(0, 2, 3, 1)), img, slot,
        np.ascontiguousarray(vals.transpose(0, 2, 3, 1)), where, conv, cols,
    )  # fmt: skip
    np.testing.assert_array_equal(
        cols, ref.gather_columns_ref(golden, img, slot, vals, where, conv)
    )


def test_gather_columns_pads_with_the_zero_point_by_hand() -> None:
    """A 3x3 window at the top-left corner of a 2x2 one-channel map, padding 1: five padded
    taps hold the zero point, the rest the map (row (i, j) order)."""
    golden = np.array([[[[1, 2], [3, 4]]]], np.int8)
    cols = np.empty((1, 9), np.float32)
    kb.gather_columns_kernel(
        np.ascontiguousarray(golden.transpose(0, 2, 3, 1)), np.array([0]), np.array([-1]),
        np.zeros((1, 1, 1, 1), np.int8), np.array([1, 0, 1, 0, 0, 0, 0, 0]),
        np.array([3, 3, 1, 1, 1, -7]), cols,
    )  # fmt: skip
    np.testing.assert_array_equal(cols[0], [-7, -7, -7, -7, 1, 2, -7, 3, 4])


@pytest.mark.parametrize("seed", range(12))
def test_compare_box_equals_its_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    golden = rng.integers(-3, 3, size=(8, 4, 6, 7)).astype(np.int8)
    img = np.array([1, 2, 5, 7], np.int64)
    box = (1, 4, 2, 6)
    out = golden[img][:, :, 1:5, 2:7].copy()
    flips = rng.integers(0, 3)
    for _ in range(flips):  # a few changed values in some images
        out[rng.integers(4), rng.integers(4), rng.integers(4), rng.integers(5)] += 1
    where = np.array([1, 0, 1, 0, *box], np.int64)
    counts, bbox = np.empty((4, 2), np.int64), np.empty(4, np.int64)
    kb.compare_box_kernel(out, golden, img, where, counts, bbox)
    want_c, want_b = ref.compare_box_ref(out, golden, img, where)
    np.testing.assert_array_equal(counts, want_c)
    np.testing.assert_array_equal(bbox, want_b)
    assert (bbox[0] > bbox[1]) == (counts.sum() == 0)


def test_compare_box_by_hand() -> None:
    golden = np.zeros((3, 1, 4, 4), np.int8)
    out = np.zeros((2, 1, 3, 3), np.int8)  # the box rows 1..3, columns 0..2 of images 0 and 2
    out[1, 0, 0, 2] = 5  # image 2, map position (1, 2)
    out[1, 0, 2, 1] = -1  # image 2, map position (3, 1)
    counts, bbox = np.empty((2, 2), np.int64), np.empty(4, np.int64)
    kb.compare_box_kernel(out, golden, np.array([0, 2]), np.array([1, 0, 1, 0, 1, 3, 0, 2]),
                          counts, bbox)  # fmt: skip
    np.testing.assert_array_equal(counts, [[0, 0], [2, 6]])
    np.testing.assert_array_equal(bbox, [1, 3, 1, 2])


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize(("k", "stride", "pad"), [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_pool_box_equals_its_reference(seed: int, average: bool, k: int, stride: int,
                                       pad: int) -> None:  # fmt: skip
    """Read, pool and compare in one pass equal the specification's pool of the overlaid map,
    cropped to the output box, and its comparison with the fault-free pool."""
    rng = np.random.default_rng(seed)
    c, h, w = 3, 8, 7
    golden, img, slot, vals, box = _case(rng, c, h, w)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    lo, hi = (-128, 127) if seed % 2 else (int(rng.integers(-128, 0)), int(rng.integers(0, 128)))
    pool = np.array([k, k, stride, pad, pad, average, lo, hi], np.int64)
    spec = graph_ref.average_pool2d if average else graph_ref.max_pool2d
    bottom = (oh - 1) * stride + k - h - pad
    right = (ow - 1) * stride + k - w - pad
    golden_out = spec(golden, size=(k, k), stride=stride, padding=(pad, bottom, pad, right),
                      act_range=(lo, hi))  # fmt: skip
    oy0, ox0 = int(rng.integers(0, oh)), int(rng.integers(0, ow))
    out_box = (oy0, int(rng.integers(oy0, oh)), ox0, int(rng.integers(ox0, ow)))
    where = np.array([*box, *out_box], np.int64)
    out = np.empty((img.size, c, out_box[1] - oy0 + 1, out_box[3] - ox0 + 1), np.int8)
    counts, bbox = np.empty((img.size, 2), np.int64), np.empty(4, np.int64)
    pool_box_kernel(golden, golden_out, img, slot, vals, where, pool, out, counts, bbox)
    want = ref.pool_box_ref(golden, golden_out, img, slot, vals, where, pool)
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(counts, want[1])
    np.testing.assert_array_equal(bbox, want[2])
    # by hand: images without values pool the fault-free map, unchanged
    assert not counts[slot < 0].any()


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize(("k", "stride", "pad"), [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_pool_of_channels_last_codes_equals_its_reference(seed: int, average: bool, k: int,
                                                          stride: int, pad: int) -> None:  # fmt: skip
    """A pool that reads a convolution's channels-last codes over its output box (every row
    has them) and the fault-free map elsewhere equals the specification's pool of the
    overlaid map, cropped to the pool's output box, and its comparison."""
    rng = np.random.default_rng(seed)
    c, h, w = 5, 8, 7
    golden, img, slot, vals, box = _case(rng, c, h, w)
    slot = np.arange(img.size)
    vals = rng.integers(-128, 128, size=(img.size, *vals.shape[1:])).astype(np.int8)
    vals[0] = golden[img[0]][:, box[0] : box[1] + 1, box[2] : box[3] + 1]  # one row unchanged
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    lo, hi = (-128, 127) if seed % 2 else (int(rng.integers(-128, 0)), int(rng.integers(0, 128)))
    pool = np.array([k, k, stride, pad, pad, average, lo, hi], np.int64)
    spec = graph_ref.average_pool2d if average else graph_ref.max_pool2d
    padding = (pad, (oh - 1) * stride + k - h - pad, pad, (ow - 1) * stride + k - w - pad)
    golden_out = spec(golden, size=(k, k), stride=stride, padding=padding, act_range=(lo, hi))
    oy0, ox0 = int(rng.integers(0, oh)), int(rng.integers(0, ow))
    out_box = (oy0, int(rng.integers(oy0, oh)), ox0, int(rng.integers(ox0, ow)))
    where = np.array([*box, *out_box], np.int64)
    out = np.empty((img.size, c, out_box[1] - oy0 + 1, out_box[3] - ox0 + 1), np.int8)
    counts, bbox = np.empty((img.size, 2), np.int64), np.empty(4, np.int64)
    codes = np.ascontiguousarray(vals.transpose(0, 2, 3, 1))
    golden_cl = np.ascontiguousarray(golden.transpose(0, 2, 3, 1))
    pool_cl_kernel(codes, golden_cl, golden_out, img, where, pool, out, counts, bbox)
    want = ref.pool_box_ref(golden, golden_out, img, slot, vals, where, pool)
    np.testing.assert_array_equal(out, want[0])
    np.testing.assert_array_equal(counts, want[1])
    np.testing.assert_array_equal(bbox, want[2])
    assert counts[0, 0] == 0  # the unchanged row pools to the fault-free output
    # written channels last (a convolution reads the pool next), compared with the fault-free
    # output channels last
    out_cl = np.empty(np.array(out.shape)[[0, 2, 3, 1]], np.int8)
    pool_cl_kernel(codes, golden_cl, np.ascontiguousarray(golden_out.transpose(0, 2, 3, 1)),
                   img, where, np.array([*pool, 1], np.int64), out_cl, counts, bbox)  # fmt: skip
    np.testing.assert_array_equal(out_cl, want[0].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(counts, want[1])
    np.testing.assert_array_equal(bbox, want[2])


def test_pool_box_by_hand() -> None:
    """A 2x2 max pool, stride 2, of a 4x4 map whose entry raises (1, 1) from 4 to 9 and lowers
    (2, 2) from 5 to -3: two window maxima move, by +5 and -4 (to 1, the window's next
    largest); the other two windows keep theirs."""
    golden = np.array([[[[1, 2, 0, 0], [3, 4, 0, 0], [0, 0, 5, 1], [0, 0, 1, 1]]]], np.int8)
    golden_out = np.array([[[[4, 0], [0, 5]]]], np.int8)
    vals = np.array([[[[9, 0], [0, -3]]]], np.int8)  # entry box rows 1..2, columns 1..2
    out = np.empty((1, 1, 2, 2), np.int8)
    counts, bbox = np.empty((1, 2), np.int64), np.empty(4, np.int64)
    pool_box_kernel(golden, golden_out, np.array([0]), np.array([0]), vals,
                       np.array([1, 2, 1, 2, 0, 1, 0, 1]),
                       np.array([2, 2, 2, 0, 0, 0, -128, 127]), out, counts, bbox)  # fmt: skip
    np.testing.assert_array_equal(out[0, 0], [[9, 0], [0, 1]])
    np.testing.assert_array_equal(counts, [[2, 9]])
    np.testing.assert_array_equal(bbox, [0, 1, 0, 1])


@pytest.mark.parametrize("seed", range(8))
def test_count_changes_equals_its_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    golden, img, slot, vals, box = _case(rng, 3, 6, 7)
    vals[0] = golden[img[np.flatnonzero(slot == 0)[0]]][:, box[0] : box[1] + 1,
                                                          box[2] : box[3] + 1]  # fmt: skip
    where = np.array([*box, 0, 0, 0, 0], np.int64)
    counts = np.empty((img.size, 2), np.int64)
    kb.count_changes_kernel(golden, img, slot, vals, where, counts)
    want = ref.count_changes_ref(golden, img, slot, vals, where)
    np.testing.assert_array_equal(counts, want)
    assert counts[slot == 0].sum() == 0
    assert counts[slot < 0].sum() == 0


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("requantization", ["tflm", "xnnpack"])
@pytest.mark.parametrize(("k", "stride", "pad"), [(3, 1, 1), (3, 2, 1), (1, 2, 0), (3, 1, 0)])
@pytest.mark.parametrize("check", [0, 1])
def test_sparse_conv_equals_its_reference(seed, requantization, k, stride, pad, check) -> None:
    """The kernel's int8 outputs equal the brute-force accumulators requantised by the graph
    engine's own ``requantize``, with float32 and with int32 sums, each from taps of its own
    type and from int8 taps; requantising every output, and (``check``) only those whose
    accumulator leaves its fault-free code's thresholds."""
    from accelsim.faults.code_check import code_thresholds
    from accelsim.functional.graph_kernels import requantize
    from accelsim.functional.graph_ref import xnnpack_scale

    rng = np.random.default_rng(seed)
    c, h, w, o = 4, 9, 8, 5
    golden, img, slot, vals, box = _case(rng, c, h, w)
    weight = rng.integers(-127, 128, size=(o, c, k, k)).astype(np.int8)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    golden_acc = rng.integers(-50_000, 50_000, size=(golden.shape[0], o, oh, ow)).astype(np.int32)
    oy0, ox0 = int(rng.integers(0, oh)), int(rng.integers(0, ow))
    out_box = (oy0, int(rng.integers(oy0, oh)), ox0, int(rng.integers(ox0, ow)))
    where = np.array([*box, *out_box], np.int64)
    conv = np.array([k, k, stride, pad, pad, 0], np.int64)
    bias = rng.integers(-5000, 5000, o)
    lo, hi, zp = -128, int(rng.integers(0, 128)), int(rng.integers(-128, 0))
    if requantization == "tflm":
        mult, shift = rng.integers(2**30, 2**31, o), rng.integers(-12, 2, o)
        rq = (bias, mult, np.maximum(shift, 0), np.maximum(-shift, 0), np.zeros(o, np.float32))
        fp32 = 0
    else:
        scale = xnnpack_scale(0.05, rng.uniform(0.001, 0.01, o), 0.2)
        mult, shift = scale, None
        rq = (bias, np.zeros(o, np.int64), np.zeros(o, np.int64), np.zeros(o, np.int64), scale)
        fp32 = 1
    q = np.array([fp32, zp, lo, hi, check])
    rq = (*rq, code_thresholds(rq, q))
    acc = ref.sparse_conv_ref(golden, golden_acc, img, slot, vals, where, conv, weight)
    want = requantize(acc, bias, mult, shift, zp, (lo, hi))
    bh, bw = out_box[1] - oy0 + 1, out_box[3] - ox0 + 1
    want = want.reshape(img.size, o, bh, bw)
    # the fault-free outputs: those of the fault-free accumulators, so that many outputs keep
    # their code (the check's shortcut); random ones in odd seeds (the kernel's outputs do not
    # depend on them, only the comparison does)
    ff_acc = np.ascontiguousarray(golden_acc.transpose(1, 0, 2, 3)).reshape(o, len(golden), -1)
    golden_out = requantize(ff_acc, bias, mult, shift, zp, (lo, hi)).reshape(-1, o, oh, ow)
    if seed % 2:
        golden_out = rng.integers(-128, 128, size=(golden.shape[0], o, oh, ow)).astype(np.int8)
    golden_out[img[0], :, oy0 : out_box[1] + 1, ox0 : out_box[3] + 1] = want[0]  # unchanged
    want_counts, want_bbox = ref.compare_box_ref(want, golden_out, img, where)
    for dtype, w_dtype in [(s, w) for s in (np.float32, np.int32) for w in (s, np.int8)]:
        out = np.empty((img.size, o, bh, bw), np.int8)
        counts, bbox = np.empty((img.size, 2), np.int64), np.empty(4, np.int64)
        kept = np.empty((img.size, bh, bw, o), np.int32)  # the raw accumulators, kept
        fault_free = (golden, np.ascontiguousarray(golden_acc.transpose(0, 2, 3, 1)),
                      np.ascontiguousarray(golden_out.transpose(0, 2, 3, 1)))  # fmt: skip
        kb.sparse_conv_kernel(
            fault_free, img, slot, vals, where, conv,
            np.ascontiguousarray(weight.transpose(2, 3, 1, 0), w_dtype),
            np.empty((bh, bw, o), dtype), rq, q, (out, counts, bbox, kept),
        )  # fmt: skip
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(kept.reshape(img.size, -1, o).transpose(2, 0, 1), acc)
        np.testing.assert_array_equal(counts, want_counts)
        np.testing.assert_array_equal(bbox, want_bbox)
        # channels last (a pool reads it next): the same codes, (n, bh, bw, O)
        out_cl = np.empty((img.size, bh, bw, o), np.int8)
        kb.sparse_conv_kernel(
            fault_free, img, slot, vals, where, np.array([*conv[:5], 1], np.int64),
            np.ascontiguousarray(weight.transpose(2, 3, 1, 0), w_dtype),
            np.empty((bh, bw, o), dtype), rq, q, (out_cl, counts, bbox, kb.NO_ACC),
        )  # fmt: skip
        np.testing.assert_array_equal(out_cl, want.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(counts, want_counts)
        # the input channels last too (a convolution's entry read by the next one)
        golden_cl = np.ascontiguousarray(golden.transpose(0, 2, 3, 1))
        kb.sparse_conv_kernel(
            (golden_cl, *fault_free[1:]), img, slot,
            np.ascontiguousarray(vals.transpose(0, 2, 3, 1)), where,
            np.array([*conv[:5], 1, 1], np.int64),
            np.ascontiguousarray(weight.transpose(2, 3, 1, 0), w_dtype),
            np.empty((bh, bw, o), dtype), rq, q, (out_cl, counts, bbox, kept),
        )  # fmt: skip
        np.testing.assert_array_equal(out_cl, want.transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(kept.reshape(img.size, -1, o).transpose(2, 0, 1), acc)
        np.testing.assert_array_equal(counts, want_counts)
        np.testing.assert_array_equal(bbox, want_bbox)
    assert want_counts[0, 0] == 0


def test_sparse_conv_by_hand() -> None:
    """One changed input (+3 at map (1, 1)) of a 1-in 1-out 3x3 convolution, padding 1, on a
    3x3 map: each output's accumulator moves by 3 times the tap that reaches it (output (0, 0)
    sees the input through tap (2, 2)); identity requantisation (multiplier 2^30, shift 1)."""
    golden = np.zeros((1, 1, 3, 3), np.int8)
    vals = np.full((1, 1, 1, 1), 3, np.int8)
    weight = np.arange(9, dtype=np.float32).reshape(3, 3, 1, 1)  # (kh, kw, C, O)
    golden_acc = np.full((1, 3, 3, 1), 10, np.int32)
    golden_out = np.full((1, 3, 3, 1), 10, np.int8)
    out = np.empty((1, 1, 3, 3), np.int8)
    counts, bbox = np.empty((1, 2), np.int64), np.empty(4, np.int64)
    one = np.ones(1, np.int64)
    kb.sparse_conv_kernel(
        (golden, golden_acc, golden_out), np.array([0]), np.array([0]), vals,
        np.array([1, 1, 1, 1, 0, 2, 0, 2]), np.array([3, 3, 1, 1, 1, 0]), weight,
        np.empty((3, 3, 1), np.float32),
        (np.zeros(1, np.int64), one << 30, one, np.zeros(1, np.int64), np.zeros(1, np.float32),
         NO_THRESHOLDS),
        np.array([0, 0, -128, 127]), (out, counts, bbox, kb.NO_ACC),
    )  # fmt: skip
    np.testing.assert_array_equal(out[0, 0], 10 + 3 * np.arange(9)[::-1].reshape(3, 3))
    # tap (2, 2) reaches output (0, 0) with weight 8, ...: 8 outputs move, by 3 * (0 + ... + 8)
    np.testing.assert_array_equal(counts, [[8, 3 * 36]])
    np.testing.assert_array_equal(bbox, [0, 2, 0, 2])


@pytest.mark.parametrize("seed", range(6))
def test_whole_row_boxes_equal_the_references(seed: int) -> None:
    """Regions and output boxes spanning whole rows (the kernels' one-run copies), with entry
    boxes of the same columns and of others."""
    rng = np.random.default_rng(seed)
    golden, img, slot, vals, box = _case(rng, 3, 6, 5)
    region = (int(rng.integers(0, 3)), int(rng.integers(3, 6)), 0, 4)
    for entry_box, entry_vals in ((box, vals), ((1, 4, 0, 4), rng.integers(
            -128, 128, size=(3, 3, 4, 5)).astype(np.int8))):  # fmt: skip
        where = np.array([*entry_box, *region], np.int64)
        out = np.empty((img.size, 3, region[1] - region[0] + 1, 5), np.int8)
        kb.read_overlay_kernel(golden, img, slot, entry_vals, where, out)
        np.testing.assert_array_equal(out, ref.read_overlay_ref(golden, img, slot, entry_vals,
                                                                where))  # fmt: skip
        moved = out.copy()
        moved[rng.integers(img.size), rng.integers(3), 0, rng.integers(5)] += 1
        counts, bbox = np.empty((img.size, 2), np.int64), np.empty(4, np.int64)
        kb.compare_box_kernel(moved, golden, img, where, counts, bbox)
        want = ref.compare_box_ref(moved, golden, img, where)
        np.testing.assert_array_equal(counts, want[0])
        np.testing.assert_array_equal(bbox, want[1])


def _cl(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("seed", range(16))
def test_add_box_equals_its_reference(seed: int) -> None:
    """The one-pass ADD (channels last) against reading both inputs, the table and the
    comparison of the references (channels first): entry boxes inside, across and outside
    the region, one input without an entry, images with and without values; the fault-free
    output is the table of the fault-free inputs, as in a campaign."""
    from accelsim.faults.kernels_add import add_box_kernel
    from accelsim.functional.graph_kernels import add_table, lookup_add_ref

    rng = np.random.default_rng(seed)
    c, h, w = int(rng.integers(1, 6)), 7, 6
    golden_a, img, slot_a, vals_a, box_a = _case(rng, c, h, w)
    golden_b, _, slot_b, vals_b, box_b = _case(rng, c, h, w)
    if seed % 4 == 0:  # b unchanged: no entry
        slot_b, vals_b, box_b = np.full(img.size, -1, np.int64), vals_b[:1, :, :1, :1], (1, 0, 1, 0)
    table = add_table("tflm" if seed % 2 else "xnnpack", (0.05, 0.08, 0.1), (-3, 7, -128),
                      (-128, 127))  # fmt: skip
    golden_out = lookup_add_ref(golden_a, golden_b, table).astype(np.int8)
    ry0, rx0 = int(rng.integers(0, h)), int(rng.integers(0, w))
    region = (ry0, int(rng.integers(ry0, h)), rx0, int(rng.integers(rx0, w)))
    where = np.array([*box_a, *box_b, *region], np.int64)
    out = np.empty((img.size, region[1] - ry0 + 1, region[3] - rx0 + 1, c), np.int8)
    counts, plane = np.empty((img.size, 2), np.int64), np.zeros(out.shape[1:3], np.uint8)
    add_box_kernel((_cl(golden_a), _cl(golden_b), _cl(golden_out)), img,
                   (slot_a, _cl(vals_a), slot_b, _cl(vals_b)), where, table,
                   (out, counts, plane))  # fmt: skip
    want, want_counts, want_bbox = ref.add_box_ref(
        (golden_a, golden_b, golden_out), img, (slot_a, vals_a, slot_b, vals_b), where, table
    )
    np.testing.assert_array_equal(out, _cl(want))
    np.testing.assert_array_equal(counts, want_counts)
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if ys.size:
        got = [ry0 + ys[0], ry0 + ys[-1], rx0 + xs[0], rx0 + xs[-1]]
        np.testing.assert_array_equal(got, want_bbox)
    else:
        assert want_bbox[0] > want_bbox[1]
    # by hand: an image with neither input's values is the fault-free output, unchanged
    plain = np.flatnonzero((slot_a < 0) & (slot_b < 0))
    for p in plain:
        assert counts[p].tolist() == [0, 0]


def test_add_box_by_hand() -> None:
    """A 1x1 map of one channel, out = a + b clamped to int8 through a table made by hand: the
    fault-free 3 + 4 = 7; a's entry holds 120, so 124 (one value moved by 117); b's entry lies
    outside the region and is not read."""
    from accelsim.faults.kernels_add import add_box_kernel

    codes = np.arange(-128, 128)
    table = np.clip(codes[:, None] + codes[None, :], -128, 127).astype(np.int8).reshape(-1)
    one = lambda v: np.full((1, 1, 1, 1), v, np.int8)  # noqa: E731
    out = np.empty((1, 1, 1, 1), np.int8)
    counts, plane = np.empty((1, 2), np.int64), np.zeros((1, 1), np.uint8)
    where = np.array([0, 0, 0, 0, 5, 5, 5, 5, 0, 0, 0, 0], np.int64)
    add_box_kernel((one(3), one(4), one(7)), np.array([0]),
                   (np.array([0]), one(120), np.array([0]), one(-100)), where, table,
                   (out, counts, plane))  # fmt: skip
    assert out.item() == 124
    assert counts.tolist() == [[1, 117]]
    assert plane.item() == 1
