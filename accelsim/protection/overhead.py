"""What a protection plan costs: neurons (the paper's metric), bytes and correction work.

Two views of memory. The accelerator view (the default metric, ``accelerator_bytes_extra``):
in int8 a split copy is the same int8 weights and int32 bias requantised with half the
multiplier, and a TMR copy is identical, so on the array the copies re-read the same weights;
what is extra is each split copy's multiplier and shift, ranger's ranges, and the copies'
outputs in the output buffer (the correction stage's registers are added by the sweep, which
knows the architecture). The network-transform view of the paper's Fig. 2
(``param_bytes_extra``) counts, for Dense neurons: each extra copy is a neuron with its own
(halved, for split) int8 weight row and int32 bias, and for split the next layer also holds an
int8 weight column for the second copy. A Conv2D neuron is one output element; its copy re-runs
the same shared filter (halving lives in the requantisation shift), so it adds no parameter
bytes. ``param_bytes_shared`` (0) is the accelerator's view of the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.config.workload import ProtectionMode
from accelsim.functional.layers import Conv2D, Dense
from accelsim.functional.network import Network
from accelsim.protection.plan import EXTRA_COPIES, SPLITS, ProtectionPlan


@dataclass(frozen=True)
class NetworkOverhead:
    mode: ProtectionMode
    protected: int
    neurons: int  # total neurons of the protected network (N + extra copies)
    neurons_overhead_percent: float
    param_bytes: int  # of the unprotected network (int8 weights + int32 biases)
    param_bytes_extra: int  # network-transform view (see module docstring)
    param_bytes_shared: int  # accelerator view: copies re-read the same weights
    activation_bytes: int  # neuron outputs per inference (int8), unprotected
    activation_bytes_extra: int  # extra copies written to the output buffer per inference
    correction_ops: int  # LCU / voter / compare / clamp operations per inference
    requant_bytes_extra: int = 0  # accelerator view: split copies' multiplier + shift, ranges

    @property
    def accelerator_bytes_extra(self) -> int:
        """What the accelerator holds beyond the unprotected network (without the correction
        stage's registers, which depend on the architecture): the copies' own requantisation
        parameters and their outputs in the output buffer. Copies re-read the same weights."""
        return self.requant_bytes_extra + self.activation_bytes_extra


def _next_weighted(net: Network, layer: int) -> Conv2D | Dense | None:
    for rec in net.layers[layer + 1 :]:
        if isinstance(rec, Conv2D | Dense):
            return rec
    return None


def _graph_overhead(g, plan: ProtectionPlan) -> tuple[int, int, int, int]:
    """(param bytes extra in the transform view, base param bytes, activation bytes, neurons)
    of a graph: a FULLY_CONNECTED neuron's copy has its own weight row and bias (and, for
    split, a weight column in each FULLY_CONNECTED reader); convolution copies share filters."""
    from accelsim.functional.models import layer_sizes

    extra = EXTRA_COPIES[plan.mode]
    param_extra = 0
    for node, idx in zip(plan.layers, plan.neurons, strict=True):
        nd = g.nodes[node]
        if nd.op == "FULLY_CONNECTED" and extra:
            per_copy = nd.weight.shape[1] + 4
            if plan.mode in SPLITS:
                per_copy += sum(c.weight.shape[0] for c in g.consumers(nd.output)
                                if c.op == "FULLY_CONNECTED")  # fmt: skip
            param_extra += extra * per_copy * idx.size
    base = sum(int(n.weight.size + 4 * n.bias.size) for n in g.nodes if n.weight is not None)
    sizes = layer_sizes(g)
    return param_extra, base, sum(sizes.values()), sum(sizes.values())


def network_overhead(net, plan: ProtectionPlan) -> NetworkOverhead:
    """What ``plan`` costs on ``net`` (a chain ``Network`` or a ``Graph``)."""
    extra = EXTRA_COPIES[plan.mode]
    n_prot = plan.n_protected
    if not isinstance(net, Network):
        param_extra, base_params, activations, neurons = _graph_overhead(net, plan)
        return NetworkOverhead(
            mode=plan.mode, protected=n_prot, neurons=neurons + extra * n_prot,
            neurons_overhead_percent=100 * extra * n_prot / neurons, param_bytes=base_params,
            param_bytes_extra=param_extra, param_bytes_shared=0, activation_bytes=activations,
            activation_bytes_extra=extra * n_prot,
            correction_ops=0 if plan.mode is ProtectionMode.NONE else n_prot,
            requant_bytes_extra=_requant_bytes(plan, n_prot),
        )  # fmt: skip
    n_prot = plan.n_protected
    param_extra = 0
    for layer, idx in zip(plan.layers, plan.neurons, strict=True):
        rec = net.layers[layer]
        if isinstance(rec, Dense) and extra:
            per_copy = rec.weight.shape[1] + 4
            nxt = _next_weighted(net, layer)
            if plan.mode in SPLITS and isinstance(nxt, Dense):
                per_copy += nxt.weight.shape[0]
            param_extra += extra * per_copy * idx.size
    activations = sum(int(np.prod(net.layers[i].out_shape)) for i in net.neuron_layers)
    base_params = sum(
        rec.n_parameters + 3 * rec.bias.size
        for rec in net.layers
        if isinstance(rec, Conv2D | Dense)
    )
    return NetworkOverhead(
        mode=plan.mode,
        protected=n_prot,
        neurons=net.n_neurons + extra * n_prot,
        neurons_overhead_percent=100 * extra * n_prot / net.n_neurons,
        param_bytes=base_params,
        param_bytes_extra=param_extra,
        param_bytes_shared=0,
        activation_bytes=activations,
        activation_bytes_extra=extra * n_prot,
        correction_ops=0 if plan.mode is ProtectionMode.NONE else n_prot,
        requant_bytes_extra=_requant_bytes(plan, n_prot),
    )


SPLIT_REQUANT_BYTES = 5  # a split copy's int32 multiplier and int8 shift (M / 2)
RANGE_BYTES = 2  # ranger / zero: a protected layer's (lo, hi) int8 range


def _requant_bytes(plan: ProtectionPlan, n_prot: int) -> int:
    """Parameters the accelerator holds for the copies: a split copy requantises with half the
    multiplier (its own M0 and shift per protected neuron); TMR and DMR copies are identical
    (none); ranger and zero hold one range per protected layer."""
    if plan.mode in SPLITS:
        return SPLIT_REQUANT_BYTES * n_prot
    if plan.mode in (ProtectionMode.RANGER, ProtectionMode.ZERO):
        return RANGE_BYTES * sum(1 for idx in plan.neurons if idx.size)
    return 0
