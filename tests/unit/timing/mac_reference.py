"""A MAC-by-MAC, cycle-by-cycle emulation of one layer on the systolic array: the independent
reference the fold-level fault model of ``accelsim.timing.values`` is checked against.

It walks every fold, every PE and every cycle of the fold in the documented timing (output
stationary: PE (r, c) does MAC k at fold start + r + c + k; weight/input stationary: the MAC of
streamed element e at fold start + R + r + c + e), keeps the registers' values and corrupts
them when and where the fault says. Slow: only for tiny layers.
"""

from __future__ import annotations

import numpy as np

from accelsim.config.arch import Dataflow, PEArraySpec
from accelsim.timing.pe_faults import PeFault, PeSite


def _wrap(v: int) -> int:
    return ((int(v) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _hit(fault: PeFault | None, site: PeSite, r: int, c: int, cycle: int | None) -> bool:
    """Whether the fault corrupts register ``site`` of PE (r, c) at absolute ``cycle``."""
    if fault is None or fault.site is not site or (fault.row, fault.col) != (r, c):
        return False
    return fault.is_permanent or (cycle is not None and fault.cycle == cycle)


def _f(fault: PeFault, v: int, width: int) -> int:
    return int(fault.apply(np.array([v]), width)[0])


def emulate_layer(a, w, tiles, pe: PEArraySpec, n_copies: int, fault, fold_cycles: int):
    """Accumulators (copies, M, N) of one image and output-register edits {(copy, m, n)}.

    ``a`` (M, K) int8, ``w`` (K, N) int8, ``tiles``: (row_fold, col_fold, copy, stack,
    stack_offset, start) tuples. A re-run copy k is rotated by k rows and columns; a stacked
    fold computes copy e in rows (output stationary) or columns e * offset .. (e + 1) * offset.
    """
    m_total, _k_total = a.shape
    n_total = w.shape[1]
    big_r, big_c = pe.rows, pe.cols
    acc = np.zeros((n_copies, m_total, n_total), np.int64)
    edits = set()
    for rf, cf, copy, stack, offset, s in tiles:
        if pe.dataflow is not Dataflow.OUTPUT_STATIONARY:
            _stationary_fold(a, w, acc, edits, rf, cf, copy, stack, offset, s, fault, pe)
            continue
        for r in range(big_r):
            for c in range(big_c):
                rp, cp, e = (r - copy) % big_r, (c - copy) % big_c, copy
                if stack > 1:
                    e, rp, cp = r // offset, r % offset, c
                    if e >= stack:
                        continue
                i, j = rf * big_r + rp, cf * big_c + cp
                _os_pe(a, w, acc[e], edits, e, r, c, i, j, s, fault, fold_cycles, pe)
    return acc, edits


def _os_pe(a, w, acc, edits, copy, r, c, m, n, s, fault, fold_cycles, pe):
    m_total, k_total = a.shape
    if m >= m_total or n >= w.shape[1]:
        return
    p = 0
    for tau in range(fold_cycles):
        kappa = tau - r - c
        if 0 <= kappa < k_total:
            wv = int(w[kappa, n])
            for rho in range(r + 1):  # the weight passed through PEs (0..r, c) on its way down
                if _hit(fault, PeSite.OPERAND_REGISTER, rho, c, s + rho + c + kappa):
                    wv = _f(fault, wv, 8)
            p = _wrap(p + int(a[m, kappa]) * wv)
        if kappa >= 0 and _hit(fault, PeSite.ACCUMULATOR, r, c, s + tau):
            p = _f(fault, p, 32)  # after the MAC of this cycle, or on the finished sum
        if kappa >= k_total and _hit(fault, PeSite.OUTPUT_REGISTER, r, c, s + tau):
            edits.add((copy, m, n))
    if fault is not None and fault.is_permanent and _hit(fault, PeSite.OUTPUT_REGISTER, r, c, None):
        edits.add((copy, m, n))  # a stuck output register corrupts every output it holds
    acc[m, n] = p


def _stationary_fold(a, w, accs, edits, rf, cf, copy, stack, offset, s, fault, pe):
    ws = pe.dataflow is Dataflow.WEIGHT_STATIONARY
    m_total, k_total = a.shape
    n_total = w.shape[1]
    big_r, big_c = pe.rows, pe.cols
    streamed = m_total if ws else n_total
    last_k = (rf + 1) * big_r >= k_total
    for c in range(big_c):
        j, e = cf * big_c + (c - copy) % big_c, copy
        if stack > 1:
            e, j = c // offset, cf * big_c + c % offset
            if e >= stack:
                continue
        if j >= (n_total if ws else m_total):
            continue
        acc = accs[e]
        for el in range(streamed):
            m, n = (el, j) if ws else (j, el)
            psum = int(acc[m, n])
            for rho in range(big_r):
                tau = big_r + rho + c + el
                k = rf * big_r + (rho - copy) % big_r
                if k < k_total:
                    av, wv = int(a[m, k]), int(w[k, n])
                    if (
                        fault is not None
                        and fault.site is PeSite.OPERAND_REGISTER
                        and (fault.row, fault.col) == (rho, c)
                        and (fault.is_permanent or big_r <= fault.cycle - s <= tau)
                    ):
                        if ws:
                            wv = _f(fault, wv, 8)
                        else:
                            av = _f(fault, av, 8)
                    psum = _wrap(psum + av * wv)
                if _hit(fault, PeSite.ACCUMULATOR, rho, c, s + tau):
                    psum = _f(fault, psum, 32)
            acc[m, n] = psum
            out_cycle = s + big_r + big_r - 1 + c + el
            if last_k and _hit(fault, PeSite.OUTPUT_REGISTER, big_r - 1, c, out_cycle):
                edits.add((e, m, n))
