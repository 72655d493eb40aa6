"""Autoscaling: a policy that wraps another and decides how many workers there should be.

At every decision tick (each ``decision_interval`` seconds) the pool reports how many
workers it has (serving or starting), how many are busy and how many tasks wait. The
load is busy workers, or busy plus queued tasks, and it asks for ``ceil(load / target)``
workers, clamped to [``min_workers``, ``max_workers``].

- Scale up at once when the load of this tick asks for more than the pool has, unless
  a scale event happened less than ``cooldown`` seconds ago.
- Scale down on a smoothed load (an exponential moving average, weight ``smoothing``
  for the newest sample), only after ``scale_down_ticks`` consecutive ticks that all
  want fewer workers (hysteresis), to the largest of their wishes, and never within
  ``cooldown`` of the last event. Fast up, slow down: a load hovering at a threshold
  cannot make the pool flap, and a burst is met without delay.
- A deviation within ``tolerance`` of the current size changes nothing.

A new worker serves only after ``startup_delay`` seconds. Which slots come and go is the
pool's business: it adds the lowest free slot and retires the highest, and a retired
worker finishes its running task and hands back its queue, so no work is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import numpy as np

from pool import _validate
from pool.policies import FIFO, Policy

Metric = Literal["utilization", "queue"]


class Autoscaling(Policy):
    """Scale the pool between ``min_workers`` and ``max_workers``; ``inner`` schedules tasks.

    ``metric="utilization"``: load = busy workers; ``target`` is the wanted utilisation
    (e.g. 0.7). ``metric="queue"``: load = busy + queued tasks; ``target`` is the wanted
    number of tasks in the system per worker (e.g. 1.5). Times are in seconds.
    """

    max_workers: int

    def __init__(
        self,
        inner: Policy | None = None,
        min_workers: int = 1,
        max_workers: int = 8,
        metric: Metric = "utilization",
        target: float = 0.7,
        decision_interval: float = 0.5,
        cooldown: float = 1.0,
        startup_delay: float = 0.1,
        scale_down_ticks: int = 3,
        tolerance: float = 0.1,
        smoothing: float = 1.0,
    ) -> None:
        if isinstance(inner, Autoscaling):
            raise ValueError("inner must not itself be an Autoscaling policy")
        if inner is not None and not isinstance(inner, Policy):
            raise ValueError(f"inner must be a Policy, got {inner!r}")
        self.inner = inner if inner is not None else FIFO()
        self.min_workers = _validate.integer_at_least("min_workers", min_workers, 1)
        self.max_workers = _validate.integer_at_least("max_workers", max_workers, 1)
        if self.max_workers < self.min_workers:
            raise ValueError(f"max_workers ({max_workers}) must be >= min_workers ({min_workers})")
        if metric not in ("utilization", "queue"):
            raise ValueError(f"metric must be one of utilization, queue; got {metric!r}")
        self.metric: Metric = metric
        self.target = _validate.positive("target", target)
        self.decision_interval = _validate.positive("decision_interval", decision_interval)
        self.cooldown = _validate.non_negative("cooldown", cooldown)
        self.startup_delay = _validate.non_negative("startup_delay", startup_delay)
        self.scale_down_ticks = _validate.integer_at_least("scale_down_ticks", scale_down_ticks, 1)
        self.tolerance = _validate.non_negative("tolerance", tolerance)
        self.smoothing = _validate.probability("smoothing", smoothing)
        if self.smoothing == 0:
            raise ValueError("smoothing must be in (0, 1]; 0 would ignore every sample")
        self.steal_latency = self.inner.steal_latency
        self._down_wishes: list[int] = []
        self._last_event = -math.inf
        self._load: float | None = None

    def reset(self, workers: Iterable[int], rng: np.random.Generator) -> None:
        self.inner.reset(workers, rng)
        self._down_wishes, self._last_event, self._load = [], -math.inf, None

    def submit(self, task: int, priority: int, affinity: int, now: float) -> int | None:
        return self.inner.submit(task, priority, affinity, now)

    def next_task(self, worker: int, now: float) -> int | None:
        return self.inner.next_task(worker, now)

    def queued(self) -> int:
        return self.inner.queued()

    def add_worker(self, worker: int) -> None:
        self.inner.add_worker(worker)

    def remove_worker(self, worker: int) -> list[int]:
        return self.inner.remove_worker(worker)

    @property
    def can_steal(self) -> bool:
        return self.inner.can_steal

    def steal(self, thief: int, now: float) -> tuple[int, list[int]] | None:
        return self.inner.steal(thief, now)

    def desired_workers(self, now: float, workers: int, busy: int, queued: int) -> int:
        sample = busy if self.metric == "utilization" else busy + queued
        previous = sample if self._load is None else self._load
        smoothed = self._load = previous + self.smoothing * (sample - previous)
        cooling = now - self._last_event < self.cooldown
        wanted = self._wish(sample)
        if wanted > workers and not self._within_tolerance(sample, workers):
            self._down_wishes = []
            return self._clamp(workers) if cooling else self._scaled(now, wanted)
        wanted = self._wish(smoothed)
        if wanted < workers and not self._within_tolerance(smoothed, workers):
            self._down_wishes.append(wanted)
            if len(self._down_wishes) >= self.scale_down_ticks and not cooling:
                return self._scaled(now, max(self._down_wishes[-self.scale_down_ticks :]))
        else:
            self._down_wishes = []
        # Outside [min, max] (e.g. a pool started too large) moves to the bound at once.
        return self._clamp(workers)

    def _wish(self, load: float) -> int:
        return self._clamp(math.ceil(load / self.target - 1e-9))

    def _clamp(self, workers: int) -> int:
        return min(self.max_workers, max(self.min_workers, workers))

    def _within_tolerance(self, load: float, workers: int) -> bool:
        return abs(load / self.target - workers) <= self.tolerance * workers

    def _scaled(self, now: float, wanted: int) -> int:
        self._last_event = now
        self._down_wishes = []
        return wanted

    def describe(self) -> dict[str, object]:
        return {
            "policy": self.name,
            "inner": self.inner.describe(),
            "min_workers": self.min_workers,
            "max_workers": self.max_workers,
            "metric": self.metric,
            "target": self.target,
            "decision_interval": self.decision_interval,
            "cooldown": self.cooldown,
            "startup_delay": self.startup_delay,
            "scale_down_ticks": self.scale_down_ticks,
            "tolerance": self.tolerance,
            "smoothing": self.smoothing,
        }

    @property
    def name(self) -> str:
        return "autoscaling"


def plan_scaling(slots: Iterable[int], desired: int) -> tuple[list[int], list[int]]:
    """Slots to add and slots to retire to go from ``slots`` to ``desired`` workers.

    New workers take the lowest free slots and the highest slots retire first, so both
    pools number their workers alike. An added slot whose worker is still finishing its
    last task before retiring is not new: the pool cancels that retirement.
    """
    current = sorted(slots)
    if desired < len(current):
        return [], current[desired:][::-1]
    taken, candidate = set(current), 0
    added: list[int] = []
    while len(current) + len(added) < desired:
        if candidate not in taken:
            added.append(candidate)
        candidate += 1
    return added, []
