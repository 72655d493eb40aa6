"""The simulated pool's autoscaler: a process that applies the policy's decisions."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from pool.autoscaling import plan_scaling

if TYPE_CHECKING:
    from sim.simulated_pool import _Run


def scaler(run: _Run) -> Generator[simpy.Event, Any, None]:
    """Every decision interval, ask the policy for a worker count and add or retire slots."""
    env, policy, faults = run.env, run.policy, run.faults
    interval = policy.decision_interval
    assert interval is not None
    while True:
        yield env.timeout(interval)
        serving = [slot for slot, worker in run.slots.items() if not worker.retiring]
        slots = set(serving) | set(faults.pending_starts)
        desired = policy.desired_workers(env.now, len(slots), run.busy, policy.queued())
        added, retired = plan_scaling(slots, desired)
        for slot in added:
            run.rec.event(env.now, "scale_up", slot)
            leaving = run.slots.get(slot)
            if leaving is not None and leaving.retiring:  # still finishing: keep it
                leaving.retiring = False
                policy.add_worker(slot)
            else:
                faults.start_later(slot, policy.startup_delay, "scale_up")
        for slot in retired:
            run.rec.event(env.now, "scale_down", slot)
            if faults.pending_starts.pop(slot, None) is None:
                run.retire(slot)
