"""Entry points of the timing model: a network (and protection plan) on an architecture."""

from __future__ import annotations

from dataclasses import dataclass

from accelsim.config.arch import ArchSpec
from accelsim.config.workload import ProtectionMode
from accelsim.functional.models import AnyNetwork
from accelsim.functional.network import Network
from accelsim.protection.plan import EXTRA_COPIES, ProtectionPlan
from accelsim.timing.accelerator import EventLog, TimingReport, simulate_schedule
from accelsim.timing.graph_schedule import schedule_graph
from accelsim.timing.schedule import Schedule, schedule_network


def plan_schedule(net: AnyNetwork, arch: ArchSpec, plan: ProtectionPlan | None = None) -> Schedule:
    """The folds of ``net`` (a chain or a graph) on ``arch``, with the copies and corrections
    ``plan`` asks for."""
    schedule = schedule_network if isinstance(net, Network) else schedule_graph
    if plan is None or plan.mode is ProtectionMode.NONE:
        return schedule(net, arch)
    return schedule(
        net,
        arch,
        protected=dict(zip(plan.layers, plan.neurons, strict=True)),
        extra_copies=EXTRA_COPIES[plan.mode],
        mode=plan.mode,
    )


def simulate(
    net: AnyNetwork,
    arch: ArchSpec,
    *,
    plan: ProtectionPlan | None = None,
    ideal_memory: bool = False,
    log: EventLog | None = None,
) -> tuple[Schedule, TimingReport]:
    """Schedule and run one inference of ``net`` on ``arch``."""
    schedule = plan_schedule(net, arch, plan)
    return schedule, simulate_schedule(schedule, ideal_memory=ideal_memory, log=log)


@dataclass(frozen=True)
class TimingOverhead:
    """What a protected run costs relative to the unprotected one (percent)."""

    cycles_percent: float
    compute_percent: float
    offchip_bytes_percent: float
    footprint_percent: float


def _pct(new: float, base: float) -> float:
    return 100.0 * (new - base) / base if base else 0.0


def timing_overhead(report: TimingReport, baseline: TimingReport) -> TimingOverhead:
    traffic = report.total("offchip_read_bytes") + report.total("offchip_write_bytes")
    base_traffic = baseline.total("offchip_read_bytes") + baseline.total("offchip_write_bytes")
    return TimingOverhead(
        _pct(report.total_cycles, baseline.total_cycles),
        _pct(report.total("compute_cycles"), baseline.total("compute_cycles")),
        _pct(traffic, base_traffic),
        _pct(report.footprint_bytes, baseline.footprint_bytes),
    )
