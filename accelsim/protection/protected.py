"""Inference of a protected network, fault-free or with a bit flip in one copy of one neuron.

The mechanisms live in one small module each: ``lcu.py`` (split), ``vote.py`` (TMR), ``dmr.py``
(dmr_and, dmr_recompute), ``ranger.py`` (ranger, zero); this module computes the copies, injects
the fault and hands the copies to them.

Per protected neuron, the copies the accelerator computes and how they are merged:

- split: two copies, each ``requantise(acc, M / 2)`` (the multiplier's shift minus one, which
  equals halving weights and bias before rounding); ``2 * lcu(a, b)`` goes on. The paper's
  premise that a half's bit 6 is 0 holds only below saturation: a neuron whose pre-clamp value
  v is 127 or more has a half of 64 or more, and the LCU clears its bit 6 with no fault present
  (v = 127 -> 0, 129 -> 2, 150 -> 22, 200 -> 72, v >= 255 -> 126).
- split_clamped: split with each half clamped at 63, so bit 6 is 0 fault-free and the LCU
  never corrupts a value; a saturated neuron reads 126 instead of 127 (one step).
- tmr: three copies of y; the bitwise majority goes on.
- dmr_and: two copies of y; ``a & b`` goes on (0 -> 1 flips corrected, no halving).
- dmr_recompute: two copies of y; on a mismatch the neuron is recomputed (fault-free) once.
- ranger: one copy, clamped to the layer's activation range profiled on training data.
- zero: one copy, replaced by 0 when outside that range ("Just Say Zero" in spirit).

The golden network is never changed: these are evaluated around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accelsim.config.workload import ProtectionMode
from accelsim.functional.kernels import conv2d_acc_int
from accelsim.functional.layers import Conv2D, Dense
from accelsim.functional.network import (
    Network,
    apply_layer,
    classify,
    forward_all,
    quantize_images,
)
from accelsim.functional.reference import requantize_ref
from accelsim.protection import dmr, ranger
from accelsim.protection.lcu import lcu
from accelsim.protection.plan import EXTRA_COPIES, SPLITS, ProtectionPlan, plan_from_neurons
from accelsim.protection.vote import vote

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
HALF_MAX = 63  # split_clamped: the largest half, so that bit 6 is 0 fault-free


@dataclass(frozen=True)
class CopyFault:
    """A bit flip (XOR ``mask``) in copy ``copy`` of neuron ``neuron`` of layer ``layer``.
    Copy 0 is the neuron itself; protected neurons have 1 + EXTRA_COPIES[mode] copies."""

    layer: int
    neuron: int
    copy: int
    mask: int

    def apply(self, values: I8) -> I8:
        return values ^ np.int64(self.mask).astype(np.int8)


@dataclass(frozen=True, eq=False)
class ProtectedNetwork:
    """A network (a chain ``Network`` or a ``Graph``), a plan, and (ranger/zero) per-layer
    int8 activation ranges (lo, hi)."""

    net: Network
    plan: ProtectionPlan
    ranges: dict[int, tuple[int, int]]


def unprotected(net) -> ProtectedNetwork:
    """``net`` with an empty plan (mode none): the baseline every campaign compares against."""
    return ProtectedNetwork(net, plan_from_neurons(net, ProtectionMode.NONE, {}), {})


def neuron_accumulators(layer: Conv2D | Dense, x: I8, index: I64) -> I64:
    """int64 accumulators (bias included) of the neurons ``index`` of ``layer``: (N, n)."""
    if isinstance(layer, Dense):
        return x.astype(np.int64) @ layer.weight[index].T.astype(np.int64) + layer.bias[index]
    _, oh, ow = layer.out_shape
    if index.size * 16 > oh * ow * layer.out_channels:  # many neurons: one full convolution
        full = conv2d_acc_int(
            x,
            layer.weight,
            layer.bias,
            stride=layer.stride,
            padding=layer.padding,
            weight_matrix=layer.weight_matrix,
        )
        return full.reshape(len(x), -1)[:, index]
    per_chunk = max(1, (1 << 24) // max(1, len(x) * int(np.prod(layer.weight.shape[1:]))))
    if index.size > per_chunk:
        return np.concatenate(
            [
                neuron_accumulators(layer, x, index[s : s + per_chunk])
                for s in range(0, index.size, per_chunk)
            ],
            axis=1,
        )
    c, rem = np.divmod(index, oh * ow)
    oy, ox = np.divmod(rem, ow)
    kh, kw = layer.weight.shape[2:]
    p, s = layer.padding, layer.stride
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    rows = (oy * s)[:, None, None] + np.arange(kh)[None, :, None]  # (n, kh, 1)
    cols = (ox * s)[:, None, None] + np.arange(kw)[None, None, :]  # (n, 1, kw)
    patches = xp[:, :, rows, cols].astype(np.int64)  # (N, C, n, kh, kw)
    w = layer.weight[c].astype(np.int64)  # (n, C, kh, kw)
    return np.einsum("bcnij,ncij->bn", patches, w) + layer.bias[c]


def copies_from_accumulators(pnet: ProtectedNetwork, layer: int, acc: I64, index: I64) -> I8:
    """The value each copy of the protected neurons ``index`` holds before the merge, from their
    accumulators (bias included, (N, n)): ``requantise(acc, M / 2)`` for split, else y."""
    rec = pnet.net.layers[layer]
    ch = rec.channel_of(index)
    halve = 1 if pnet.plan.mode in SPLITS else 0
    y = requantize_ref(acc[:, :, None], rec.multiplier[ch], rec.shift[ch] - halve, relu=rec.relu)[
        :, :, 0
    ]
    if pnet.plan.mode is ProtectionMode.SPLIT_CLAMPED:  # the halves' range: bit 6 stays 0
        return np.minimum(y, HALF_MAX)
    return y


def _copies(pnet: ProtectedNetwork, layer: int, x: I8, y: I8, index: I64) -> list[I8]:
    mode = pnet.plan.mode
    if mode in SPLITS:
        acc = neuron_accumulators(pnet.net.layers[layer], x, index)
        half = copies_from_accumulators(pnet, layer, acc, index)
        return [half, half.copy()]
    flat = y.reshape(len(y), -1)[:, index]
    return [flat.copy() for _ in range(1 + EXTRA_COPIES[mode])]


def merge_copies(pnet: ProtectedNetwork, layer: int, copies: list[I8], golden: I8) -> I8:
    """What the next layer sees of the copies (N, n) of protected neurons; ``golden``: the
    fault-free value (dmr_recompute's recomputation)."""
    mode = pnet.plan.mode
    if mode in SPLITS:
        return (2 * lcu(copies[0], copies[1]).astype(np.int16)).astype(np.int8)
    if mode is ProtectionMode.TMR:
        return vote(*copies)
    if mode is ProtectionMode.DMR_AND:
        return dmr.merge_and(copies[0], copies[1])
    if mode is ProtectionMode.DMR_RECOMPUTE:
        return dmr.merge_recompute(copies[0], copies[1], golden)
    lo, hi = pnet.ranges[layer]
    if mode is ProtectionMode.RANGER:
        return ranger.merge_clamp(copies[0], lo, hi)
    return ranger.merge_zero(copies[0], lo, hi)


def protected_layer(
    pnet: ProtectedNetwork,
    layer: int,
    x: I8,
    fault: CopyFault | None = None,
    *,
    plain: I8 | None = None,
) -> I8:
    """Output of layer ``layer`` as the next layer sees it (after correction); ``plain``: the
    unprotected layer's output on x where the caller has it already."""
    y = apply_layer(pnet.net.layers[layer], x) if plain is None else plain
    index = pnet.plan.for_layer(layer)
    hit = fault is not None and fault.layer == layer
    if index is None or pnet.plan.mode is ProtectionMode.NONE:
        if hit:
            flat = y.reshape(len(y), -1)
            flat[:, fault.neuron] = fault.apply(flat[:, fault.neuron])
        return y
    copies = _copies(pnet, layer, x, y, index)
    pos = np.searchsorted(index, fault.neuron) if hit else -1
    protected_hit = hit and pos < index.size and index[pos] == fault.neuron
    if protected_hit:
        copies[fault.copy][:, pos] = fault.apply(copies[fault.copy][:, pos])
    merged = merge_copies(pnet, layer, copies, y.reshape(len(y), -1)[:, index])
    out = y.copy()
    out.reshape(len(y), -1)[:, index] = merged
    if hit and not protected_hit:
        flat = out.reshape(len(y), -1)
        flat[:, fault.neuron] = fault.apply(flat[:, fault.neuron])
    return out


def protected_logits(
    pnet: ProtectedNetwork, x: I8, *, fault: CopyFault | None = None, batch_size: int = 256
) -> I8:
    """Logits of int8 inputs x through the protected network (a chain or a graph)."""
    parts = []
    graph = not isinstance(pnet.net, Network)
    if graph:
        from accelsim.protection.graph_protected import protected_graph_values
    for start in range(0, len(x), batch_size):
        h = x[start : start + batch_size]
        if graph:
            f = None if fault is None else (fault.layer, fault.neuron, fault.copy, fault.apply)
            parts.append(protected_graph_values(pnet, h, fault=f)[0][pnet.net.output])
            continue
        for i in range(len(pnet.net.layers)):
            h = protected_layer(pnet, i, h, fault)
        parts.append(h)
    return np.concatenate(parts)


def protected_predict(
    pnet: ProtectedNetwork, images: npt.NDArray[np.uint8], *, fault: CopyFault | None = None
) -> I64:
    return classify(protected_logits(pnet, quantize_images(pnet.net, images), fault=fault))


def profile_ranges(net, x: I8) -> dict[int, tuple[int, int]]:
    """Per neuron layer (chain) or node (graph), the (min, max) int8 activation over the
    profiling inputs x."""
    if not isinstance(net, Network):
        from accelsim.protection.graph_protected import graph_ranges

        return graph_ranges(net, x)
    outs = forward_all(net, x)
    return {i: (int(outs[i].min()), int(outs[i].max())) for i in net.neuron_layers}
