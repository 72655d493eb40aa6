"""The simulated pool's autoscaler clock: a process that ticks the pool core's scaling."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

if TYPE_CHECKING:
    from sim.simulated_pool import _Run


def scaler(run: _Run) -> Generator[simpy.Event, Any, None]:
    """Every decision interval, let the pool core apply the policy's decision."""
    env, scale = run.env, run.core.scale
    interval = run.policy.decision_interval
    assert interval is not None
    while True:
        yield env.timeout(interval)
        if not run.down:  # a dead process decides nothing
            scale(env.now)
