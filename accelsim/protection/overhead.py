"""What a protection plan costs: neurons (the paper's metric), bytes and correction work.

Parameter bytes are counted in the network-transform view of the paper's Fig. 2 for Dense
neurons: each extra copy is a neuron with its own (halved, for split) int8 weight row and int32
bias, and for split the next layer also holds an int8 weight column for the second copy. A Conv2D
neuron is one output element; its copy re-runs the same shared filter (halving lives in the
requantisation shift), so it adds no parameter bytes. On the accelerator the copies of Dense
neurons can re-read the same weights too; ``param_bytes_shared`` is that view (0).
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


def _next_weighted(net: Network, layer: int) -> Conv2D | Dense | None:
    for rec in net.layers[layer + 1 :]:
        if isinstance(rec, Conv2D | Dense):
            return rec
    return None


def network_overhead(net: Network, plan: ProtectionPlan) -> NetworkOverhead:
    extra = EXTRA_COPIES[plan.mode]
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
    )
