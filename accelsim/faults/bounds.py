"""Provable bounds that let a pair stop as soon as its change cannot alter the class.

Most faults change some logits without changing the class (LeNet-5: ~0.1 % of the fault x image
pairs change class, ~90 % reach the logits changed). For the layers after L, requantisation
obeys ``|dy| <= M |dacc| + 1 + 2^-r`` (two roundings, TFLite's SRDHM then RDBPOT; the int32
saturation, the ReLU and the clamp only shrink differences), max-pool moves an output by at most
the largest move of its window, and ranger's clamp is 1-Lipschitz. Composing these backwards
from the logits gives, per layer output position j and class k,

    |dlogit_k| <= sum_j |d_j| lin[j, k] + min(sum_j field[j, k], cap[k])

over the changed positions j (moves d_j): ``lin`` is the product of the ``M |W|`` (and pooling)
matrices, ``field`` collects the rounding terms of the outputs that j can reach, ``cap`` those
of every output. A pair whose bound cannot close the gap between the golden class's logit and
any other (ties count as closing it) keeps the golden class: dropping it is exact. Layers
followed by split or zeroing neurons (discontinuous: LCU clears bit 6, zeroing jumps to 0) get
no bound.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.faults.kernels_layers import POST_CLAMP, POST_PLAIN
from accelsim.functional.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D

F64 = npt.NDArray[np.float64]
SLACK = 1e-6  # float64 sums of at most ~1e6 terms of size <= 1e6: error far below this


@dataclass(frozen=True, eq=False)
class LayerBound:
    """For the output of one layer: ``lin`` and ``field`` (size, K), ``cap`` (K,); ``top``
    (size, 2) each position's largest ``lin`` and ``field`` over the classes and ``cap_top``
    the largest ``cap``: a looser bound, the same for every class, that settles most pairs
    with two terms per change instead of 2K."""

    lin: F64
    field: F64
    cap: F64
    top: F64 = dataclasses.field(init=False)
    cap_top: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        top = np.stack([self.lin.max(axis=1), self.field.max(axis=1)], axis=1)
        object.__setattr__(self, "top", np.ascontiguousarray(top))
        object.__setattr__(self, "cap_top", float(self.cap.max()))


def requant_gain(rec: Conv2D | Dense) -> tuple[F64, F64]:
    """Per output channel: real multiplier M and rounding slack 1 + 2^-r."""
    shift = rec.shift.astype(np.float64)
    m = rec.multiplier.astype(np.float64) * np.exp2(shift - 31)
    right = np.maximum(-rec.shift.astype(np.int64), 0)
    return m, 1.0 + np.exp2(-right.astype(np.float64))


def _through_dense(rec: Dense, after: LayerBound) -> LayerBound:
    m, e = requant_gain(rec)
    mw = np.abs(rec.weight.astype(np.float64)) * m[:, None]  # (O, I)
    rounding = (e[:, None] * after.lin).sum(axis=0)  # every output may move
    field = np.minimum(after.field.sum(axis=0), after.cap)
    n_in = rec.weight.shape[1]
    return LayerBound(
        mw.T @ after.lin,
        np.broadcast_to(rounding + field, (n_in, rounding.size)).copy(),
        rounding + after.cap,
    )


def _scatter_conv(rec: Conv2D, per_out: F64, weights: F64) -> F64:
    """sum over (o, i, j) of weights[o, c, i, j] * per_out[o, oy, ox, :] into input (c, y, x)."""
    c, h, w = rec.in_shape
    o, oh, ow = rec.out_shape
    kh, kw = rec.weight.shape[2:]
    s, p = rec.stride, rec.padding
    k = per_out.shape[-1]
    out = np.zeros((c, h + 2 * p + s * kh, w + 2 * p + s * kw, k))
    grid = per_out.reshape(o, oh, ow, k)
    for i in range(kh):
        for j in range(kw):
            contrib = np.einsum("oc,oyxk->cyxk", weights[:, :, i, j], grid)
            out[:, i : i + s * oh : s, j : j + s * ow : s, :] += contrib
    return out[:, p : p + h, p : p + w, :].reshape(c * h * w, k)


def _through_conv(rec: Conv2D, after: LayerBound) -> LayerBound:
    m, e = requant_gain(rec)
    mw = np.abs(rec.weight.astype(np.float64)) * m[:, None, None, None]
    ones = np.ones_like(mw)
    _, oh, ow = rec.out_shape
    e_out = np.repeat(e, oh * ow)[:, None]
    lin = _scatter_conv(rec, after.lin, mw)
    rounding = _scatter_conv(rec, e_out * after.lin, ones)  # every output j can reach
    field = _scatter_conv(rec, after.field, ones)
    cap = (e_out * after.lin).sum(axis=0) + after.cap
    return LayerBound(lin, rounding + np.minimum(field, after.cap), cap)


def _through_pool(rec: MaxPool2D, after: LayerBound) -> LayerBound:
    c, h, w = rec.in_shape
    _, oh, ow = rec.out_shape
    k = after.lin.shape[1]
    s, size = rec.stride, rec.size
    lin = np.zeros((c, h + s * size, w + s * size, k))
    field = np.zeros_like(lin)
    a_lin = after.lin.reshape(c, oh, ow, k)
    a_field = after.field.reshape(c, oh, ow, k)
    for i in range(size):
        for j in range(size):
            lin[:, i : i + s * oh : s, j : j + s * ow : s] += a_lin
            field[:, i : i + s * oh : s, j : j + s * ow : s] += a_field
    crop = (slice(None), slice(0, h), slice(0, w))
    return LayerBound(lin[crop].reshape(c * h * w, k), field[crop].reshape(c * h * w, k), after.cap)


def layer_bounds(
    layers: tuple[Layer, ...], post: tuple[npt.NDArray[np.uint8], ...]
) -> tuple[LayerBound | None, ...]:
    """Bounds for the output of every layer (None where none holds, and for the logits);
    ``post``: each layer's post-requantisation codes (``kernels_layers.POST_*``)."""
    n_cls = int(np.prod(layers[-1].out_shape))
    out: list[LayerBound | None] = [None] * len(layers)
    after = LayerBound(np.eye(n_cls), np.zeros((n_cls, n_cls)), np.zeros(n_cls))
    for i in range(len(layers) - 1, 0, -1):
        rec = layers[i]
        if isinstance(rec, Conv2D | Dense):
            if np.any((post[i] != POST_PLAIN) & (post[i] != POST_CLAMP)):
                break  # split / zero downstream: no Lipschitz bound upstream of here
            after = (_through_conv if isinstance(rec, Conv2D) else _through_dense)(rec, after)
        elif isinstance(rec, MaxPool2D):
            after = _through_pool(rec, after)
        elif not isinstance(rec, Flatten):
            break
        out[i - 1] = after
    return tuple(out)
