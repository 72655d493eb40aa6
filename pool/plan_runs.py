"""One chain of a plan: a policy at one load on one draw, run at every pool size.

A top-level function of its own module, so a process pool or a Dask worker can import
and run it. It imports ``sim`` (the model) when called.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pool.autoscaling import Autoscaling
from pool.overhead import Overhead
from pool.policies import Policy, resolve
from pool.tasks import Workload

if TYPE_CHECKING:
    from pool.planning import Chain

#: Policies whose larger pools serve alike once a smaller one never had every worker busy
#: (work stealing too, with the default steal_latency of 0: an idle worker takes at once
#: a task placed at a busy one; JSQ places on an idle worker while there is one). Not
#: power-of-d: its d random slots may all be busy while another is idle.
REUSABLE = ("fifo", "priority", "work-stealing", "autoscaling", "jsq")


def run_chain(chain: Chain) -> list[dict[str, Any]]:
    """The rows of ``chain``: one per pool size, with every metric of :data:`METRICS`."""
    import sim
    from pool.planning import METRICS

    workload = chain.model.workload(chain.n_tasks, chain.load_scale, seed=chain.seed)
    warmup = workload.arrival[0] + 0.1 * workload.duration
    rows, reused = [], None
    for workers in chain.workers:
        row: dict[str, Any] = {
            "policy": chain.policy,
            "load_scale": chain.load_scale,
            "rep": chain.rep,
            "workers": workers,
        }
        if _unstable(workload, workers, chain.overhead):
            row.update(dict.fromkeys(METRICS, math.inf), basis="unstable")
        elif reused is not None:
            row.update(_reuse(reused, workers, chain.policy), basis="reused")
        else:
            start = _start_workers(workload, workers, chain.policy)
            result = sim.run(
                workload,
                _policy(chain, workers),
                start,
                seed=chain.seed,
                overhead=chain.overhead,
            )
            summary = result.summary(warmup)
            metrics = {metric: summary[metric] for metric in METRICS}
            row.update(metrics, basis="simulated")
            if chain.policy in REUSABLE and _never_full(result.timeline, workers, chain.policy):
                reused = (workers, metrics)
        rows.append(row)
    return rows


def _reuse(reused: tuple[int, dict[str, float]], workers: int, policy: str) -> dict[str, float]:
    """The smaller pool's metrics; its busy time now spreads over more idle workers."""
    size, metrics = reused
    if policy == "autoscaling":  # it never scaled to its bound: the same pool served
        return metrics
    return {**metrics, "utilization": metrics["utilization"] * size / workers}


def _policy(chain: Chain, workers: int) -> Policy:
    if chain.policy == "autoscaling":
        return Autoscaling(min_workers=1, max_workers=workers)
    return chain.factory() if chain.factory is not None else resolve(chain.policy)


def _start_workers(workload: Workload, workers: int, policy: str) -> int:
    """An autoscaling pool starts where it would settle; the others at their size."""
    if policy != "autoscaling":
        return workers
    wanted = math.ceil(workload.offered_load(1) / Autoscaling().target)
    return max(1, min(workers, wanted))


def _unstable(workload: Workload, workers: int, machine: Overhead) -> bool:
    """Whether the pool cannot keep up: more work per second than workers, cores or lock."""
    lock_held, lock_free, _ = workload.parts
    rate = workload.arrival_rate
    if rate * workload.mean_service >= workers:
        return True
    computing = float(np.mean(lock_held + lock_free)) * rate
    return float(np.mean(lock_held)) * rate >= 1.0 or computing >= machine.cores


def _never_full(timeline: Any, workers: int, policy: str) -> bool:
    column = "workers" if policy == "autoscaling" else "busy"
    return bool(timeline[column].max() < workers)
