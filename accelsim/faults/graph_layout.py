"""Where a graph campaign's changed boxes take a shortcut, by the graph's shape alone: which
nodes merge fault-free copies on their own path (a protected node), which pool is made in its
convolution's call, and which tensors' entries travel channels last (``graph_campaign``)."""

from __future__ import annotations

from accelsim.config.workload import ProtectionMode
from accelsim.faults.kernels_pool import POOLS
from accelsim.functional.graph import Node
from accelsim.protection.graph_protected import PLAIN_MERGES
from accelsim.protection.protected import ProtectedNetwork


def merges(pnet: ProtectedNetwork, j: int) -> bool:
    """Whether node ``j`` merges fault-free copies on its own path (``merge_fault_free``): a
    protected node, unless its mode's merge of fault-free copies is the plain value."""
    mode = pnet.plan.mode
    return (mode is not ProtectionMode.NONE and pnet.plan.for_layer(j) is not None
            and mode not in PLAIN_MERGES)  # fmt: skip


def sole_reader(pnet: ProtectedNetwork, tensor: str, ops: tuple[str, ...]) -> Node | None:
    """The node of one of ``ops`` that alone reads ``tensor`` (not the graph output) and merges
    no copies; else None."""
    g = pnet.net
    readers = g.consumers(tensor)
    if tensor == g.output or len(readers) != 1 or readers[0].op not in ops:
        return None
    k = next(i for i, n in enumerate(g.nodes) if n is readers[0])
    return None if merges(pnet, k) else readers[0]


def pool_after(pnet: ProtectedNetwork, j: int) -> Node | None:
    """The MAX_POOL_2D or AVERAGE_POOL_2D that alone reads node ``j``'s output and merges no
    copies (``conv_pool_box`` then makes the pool's entry without the node's own); else
    None."""
    return sole_reader(pnet, pnet.net.nodes[j].output, POOLS)


def channels_last_readers(pnet: ProtectedNetwork, tensor: str) -> bool:
    """Whether only CONV_2D and ADD nodes that merge no copies read ``tensor`` (not the graph
    output): its entry is then made channels last, as a convolution's sparse kernel scans its
    changed inputs (a pixel's channels in one run) and its GEMM gathers them, and as
    ``add_box_kernel`` reads them, without a transposed write and read."""
    g = pnet.net
    readers = g.consumers(tensor)
    if tensor == g.output or not readers:
        return False
    index = {id(n): i for i, n in enumerate(g.nodes)}
    return all(n.op in ("CONV_2D", "ADD") and not merges(pnet, index[id(n)]) for n in readers)
