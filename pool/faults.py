"""Faults to inject and the recovery that answers them, shared by both pools.

A :class:`FaultPlan` says what goes wrong: worker crashes and hangs at given instants or
at random (``crash_mtbf``, ``hang_mtbf``), task attempts that raise, and poison tasks
that kill whichever worker runs them. :meth:`FaultPlan.schedule` turns it into one
concrete list of faults, so the simulated and the real pool inject the very same ones.

A :class:`Recovery` says how the pool answers: heartbeats and their timeout, the
restart delay, retries with backoff, and a task timeout. Detection follows one rule in
both pools (:meth:`Recovery.detection_time`): a monitor ticks every
``heartbeat_interval`` seconds from the pool's start and records a heartbeat for every
live worker; a worker whose last heartbeat is ``heartbeat_timeout`` old at a tick is
declared dead at that tick.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from pool import _validate

if TYPE_CHECKING:
    from pool.seeding import RunStreams
    from pool.tasks import Workload

FaultKind = Literal["crash", "hang"]


@dataclass(frozen=True, order=True)
class Fault:
    """One injected worker fault: at ``time`` s, slot ``worker`` crashes or hangs ``duration`` s."""

    time: float
    worker: int
    kind: FaultKind
    duration: float = 0.0


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong in a run. Times in seconds from the run's start.

    ``crashes``: (time, worker) pairs. ``hangs``: (time, worker, duration). A worker
    slot that is not serving at that instant (dead, retired) is left alone.
    ``task_failure_prob``: each attempt raises with this probability.
    ``crash_mtbf`` / ``hang_mtbf``: mean time between random crashes / hangs per worker
    slot (exponential), hangs lasting ``hang_duration`` s. ``poison_tasks``: task ids
    whose every attempt crashes the worker running it.

    ``pool_restarts``: (time, downtime) pairs: at ``time`` the whole process that holds
    the pool dies (a deploy, an OOM kill): every worker, every queued task and every
    pending retry with it, and nothing is submitted until the program runs again,
    ``downtime`` s later (a supervisor's restart delay; the program's own start comes on
    top). The pool keeps its tasks in a journal (``journal=`` of the real pools), so the
    restarted pool runs every unfinished one again, with the attempts it had. A restart
    due before the last one's program is back takes it down the moment it is.
    """

    crashes: Sequence[tuple[float, int]] = ()
    hangs: Sequence[tuple[float, int, float]] = ()
    task_failure_prob: float = 0.0
    crash_mtbf: float | None = None
    hang_mtbf: float | None = None
    hang_duration: float = 0.5
    poison_tasks: Sequence[int] = field(default_factory=tuple)
    pool_restarts: Sequence[tuple[float, float]] = ()

    def __post_init__(self) -> None:
        crashes = tuple(
            (_time("crashes", t), _slot("crashes", w))
            for t, w in _entries("crashes", self.crashes, "(time, worker)", 2)
        )
        hangs = tuple(
            (_time("hangs", t), _slot("hangs", w), _validate.positive("hangs duration", d))
            for t, w, d in _entries("hangs", self.hangs, "(time, worker, duration)", 3)
        )
        object.__setattr__(self, "crashes", crashes)
        object.__setattr__(self, "hangs", hangs)
        _validate.probability("task_failure_prob", self.task_failure_prob)
        if self.crash_mtbf is not None:
            _validate.positive("crash_mtbf", self.crash_mtbf)
        if self.hang_mtbf is not None:
            _validate.positive("hang_mtbf", self.hang_mtbf)
        _validate.positive("hang_duration", self.hang_duration)
        poison = tuple(
            _validate.integer_at_least("poison_tasks", t, 0)
            for t in _entries("poison_tasks", self.poison_tasks, "task id", 0)
        )
        object.__setattr__(self, "poison_tasks", poison)
        restarts = tuple(
            (_time("pool_restarts", t), _validate.non_negative("pool_restarts downtime", d))
            for t, d in _entries("pool_restarts", self.pool_restarts, "(time, downtime)", 2)
        )
        if any(t2 < t1 + d1 for (t1, d1), (t2, _) in itertools.pairwise(sorted(restarts))):
            raise ValueError(
                f"pool_restarts must not overlap (each after the last downtime), got {restarts!r}"
            )
        object.__setattr__(self, "pool_restarts", tuple(sorted(restarts)))

    @property
    def injects_worker_faults(self) -> bool:
        """Whether any crash or hang can happen."""
        return bool(
            self.crashes or self.hangs or self.crash_mtbf or self.hang_mtbf or self.poison_tasks
        )

    def schedule(
        self, slots: Iterable[int], horizon: float, rng: np.random.Generator
    ) -> list[Fault]:
        """Every crash and hang up to ``horizon`` s for worker ``slots``, sorted by time."""
        faults = [Fault(t, w, "crash") for t, w in self.crashes]
        faults += [Fault(t, w, "hang", d) for t, w, d in self.hangs]
        for slot in slots:
            faults += _random_faults(slot, "crash", self.crash_mtbf, 0.0, horizon, rng)
            faults += _random_faults(slot, "hang", self.hang_mtbf, self.hang_duration, horizon, rng)
        return sorted(faults)

    def attempt_failures(
        self, n_tasks: int, max_attempts: int, rng: np.random.Generator
    ) -> npt.NDArray[np.bool_] | None:
        """Which (task, attempt) raise: a boolean array, or None when none can."""
        if self.task_failure_prob <= 0.0:
            return None
        return rng.random((n_tasks, max_attempts)) < self.task_failure_prob


def run_faults(
    plan: FaultPlan,
    workload: Workload,
    workers: int,
    max_workers: int | None,
    max_attempts: int,
    streams: RunStreams,
) -> tuple[list[Fault], list[list[bool]] | None]:
    """What goes wrong in one run of ``workload``, the same for the model and the real
    pool: every crash and hang of the slots a pool of ``workers`` (up to ``max_workers``
    when it scales) can use, and which (task, attempt) raise, or None when none can."""
    slots = range(max(workers, max_workers or workers))
    horizon = fault_horizon(workload.duration, float(workload.service.sum()), workers)
    schedule = plan.schedule(slots, horizon, streams.faults)
    failures = plan.attempt_failures(len(workload), max_attempts, streams.failures)
    return schedule, None if failures is None else failures.tolist()


def fault_horizon(arrival_end: float, total_service: float, workers: int) -> float:
    """How far ahead random faults are drawn: past the last arrival by the backlog's drain
    time and a second, so both pools draw the same faults for a workload."""
    return arrival_end + total_service / max(workers, 1) + 1.0


def _random_faults(
    slot: int,
    kind: FaultKind,
    mtbf: float | None,
    duration: float,
    horizon: float,
    rng: np.random.Generator,
) -> list[Fault]:
    if mtbf is None:
        return []
    faults: list[Fault] = []
    now = 0.0
    while True:
        now += float(rng.exponential(mtbf))
        if now >= horizon:
            return faults
        faults.append(Fault(now, slot, kind, duration))
        now += duration


def _entries(name: str, value: object, shape: str, size: int) -> list[Any]:
    """The entries of ``value`` (a sequence of ``size``-tuples, or of scalars when 0)."""
    try:
        entries: list[Any] = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{name} must be a sequence of {shape}, got {value!r}") from None
    if size:
        for entry in entries:
            if not isinstance(entry, Sequence) or len(entry) != size:
                raise ValueError(f"{name} entries must be {shape}, got {entry!r}")
    return entries


def _time(name: str, value: object) -> float:
    return _validate.non_negative(f"{name} time", value)


def _slot(name: str, value: object) -> int:
    return _validate.integer_at_least(f"{name} worker", value, 0)


@dataclass(frozen=True)
class Recovery:
    """How a pool detects and answers failure. Times in seconds.

    An attempt ends in success, an exception, a timeout or the death of its worker;
    each counts toward ``max_attempts``, after which the task is ``failed`` (so a poison
    task cannot crash-loop the pool). Retry ``k`` (k = 1, 2, ...) waits
    ``retry_backoff * 2**(k-1)`` before the task is queued again. ``task_timeout``: an
    attempt running longer is treated as a hang of its worker.
    """

    heartbeat_interval: float = 0.05
    heartbeat_timeout: float = 0.2
    restart_delay: float = 0.05
    max_attempts: int = 3
    retry_backoff: float = 0.01
    task_timeout: float | None = None

    def __post_init__(self) -> None:
        _validate.positive("heartbeat_interval", self.heartbeat_interval)
        _validate.positive("heartbeat_timeout", self.heartbeat_timeout)
        if self.heartbeat_timeout < self.heartbeat_interval:
            raise ValueError(
                f"heartbeat_timeout ({self.heartbeat_timeout}) must be >= "
                f"heartbeat_interval ({self.heartbeat_interval})"
            )
        _validate.non_negative("restart_delay", self.restart_delay)
        _validate.integer_at_least("max_attempts", self.max_attempts, 1)
        _validate.non_negative("retry_backoff", self.retry_backoff)
        if self.task_timeout is not None:
            _validate.positive("task_timeout", self.task_timeout)

    def retry_delay(self, attempts_made: int) -> float | None:
        """Seconds to wait before attempt ``attempts_made + 1``, or None: no attempts left."""
        if attempts_made >= self.max_attempts:
            return None
        return self.retry_backoff * 2.0 ** (attempts_made - 1)

    def next_tick(self, time: float) -> float:
        """The first monitor tick at or after ``time`` (ticks at multiples of the interval)."""
        ticks = math.ceil(time / self.heartbeat_interval - 1e-9)
        return ticks * self.heartbeat_interval

    def detection_time(self, silent_since: float, serving_since: float) -> float:
        """When a worker serving since ``serving_since`` and silent since ``silent_since`` is
        declared dead: its last heartbeat is the last tick at or before it fell silent (or
        its start), and it is declared at the first tick ``heartbeat_timeout`` after that."""
        interval = self.heartbeat_interval
        # The last heartbeat is the last tick at or before the silence began: a fault on a
        # tick lands just after it, as it does in the real pool, whose injector is late.
        last_tick = math.floor(silent_since / interval + 1e-9) * interval
        last_heartbeat = max(serving_since, last_tick)
        return self.next_tick(last_heartbeat + self.heartbeat_timeout)

    def timeout_time(self, attempt_start: float) -> float | None:
        """When an attempt started at ``attempt_start`` is declared timed out, if ever."""
        if self.task_timeout is None:
            return None
        return self.next_tick(attempt_start + self.task_timeout)
