"""What a real pool's machine adds to a task's own service, for a model to include.

The simulator uses these figures; :func:`real.calibrate` measures them on this machine.
Times are seconds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pool import _validate

#: CPython's default switch interval (``sys.getswitchinterval()``), seconds.
DEFAULT_SWITCH_INTERVAL = 0.005


@dataclass(frozen=True)
class Overhead:
    """The per-task costs of a real pool and the CPU it runs on.

    ``dispatch``: per task, the pool's own Python code (taking the task, recording it,
    resolving its future), run holding the interpreter lock.
    ``sleep_overshoot``: how much longer than asked a sleep lasts (added to the I/O part).
    ``thread_start``: time to start a worker (added to restarts and scale-ups): a thread,
    or on the process backend a worker process until it is ready.
    ``cores``: CPU seconds per second the process gets when it computes on many threads
    (infinite: no limit). ``switch_interval``: after how long a thread waiting for the
    interpreter lock asks its holder to drop it. ``gil_handoff``: how long the lock is
    held by nobody each time it passes to a waiting thread while a core is free;
    ``gil_handoff_busy``: the same while every core is busy computing, when the thread
    the lock passes to must first wait for the scheduler to give it a core (defaults to
    ``gil_handoff``). ``submit``: the Python time of one ``submit`` on the submitting
    thread, holding the lock. ``remote_call`` (the process backend only): per task, what
    a call to a worker process adds beyond the parent's ``dispatch``: the round trip
    through the pipe (two wake-ups) and the child's side of it, a wait in the model.
    ``remote_call_curve`` (optional): the same as ``(task seconds, remote call seconds)``
    points, sorted by task seconds, when the round trip depends on how long the task kept
    the parent's thread waiting (a side that waited long wakes slowly: 0.02 ms after a
    no-op task, 0.5 ms after a 5 ms sleep here); a task's remote call is interpolated
    between the points (held at the end points beyond them). Empty: ``remote_call``.
    ``exit_detection`` (the process backend only): from a worker process's exit (a kill)
    until the pool declares it dead, through its process sentinel.

    The journal (``journal=`` of the real pools; :func:`real.calibrate` with
    ``journal=True`` measures these): ``journal_submit``, the Python time a journaled
    ``submit`` adds on the submitting thread, holding the lock (writing the task before
    it returns); ``journal_replay``, per unfinished task, what a pool opened on a journal
    spends reading it and queueing the task again; ``program_start``, from starting a
    program anew (a new interpreter, its imports) until its pool serves: what a pool
    restart (:attr:`pool.FaultPlan.pool_restarts`) costs beyond its downtime.

    The defaults describe an ideal machine: no costs and unlimited cores; the model then
    still serialises lock-holding computing, with CPython's default switch interval.
    """

    dispatch: float = 0.0
    sleep_overshoot: float = 0.0
    thread_start: float = 0.0
    cores: float = math.inf
    switch_interval: float = DEFAULT_SWITCH_INTERVAL
    gil_handoff: float = 0.0
    gil_handoff_busy: float | None = None
    submit: float = 0.0
    remote_call: float = 0.0
    exit_detection: float = 0.0
    remote_call_curve: tuple[tuple[float, float], ...] = ()
    journal_submit: float = 0.0
    journal_replay: float = 0.0
    program_start: float = 0.0

    def __post_init__(self) -> None:
        if self.gil_handoff_busy is None:
            object.__setattr__(self, "gil_handoff_busy", self.gil_handoff)
        costs = ("dispatch", "sleep_overshoot", "thread_start", "gil_handoff", "submit")
        journal = ("journal_submit", "journal_replay", "program_start")
        for name in (*costs, "remote_call", "exit_detection", *journal):
            _validate.non_negative(name, getattr(self, name))
        _validate.non_negative("gil_handoff_busy", self.gil_handoff_busy)
        object.__setattr__(self, "remote_call_curve", _curve(self.remote_call_curve))
        for name in ("cores", "switch_interval"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and value == math.inf):
                _validate.positive(name, value)

    @property
    def models_cpu(self) -> bool:
        """Whether these figures describe a machine (limited cores, lock or submit costs),
        so the model must simulate the CPU even for tasks that only wait."""
        return math.isfinite(self.cores) or self.gil_handoff > 0 or self.submit > 0

    @property
    def busy_handoff(self) -> float:
        """:attr:`gil_handoff_busy`, never None (it defaults to :attr:`gil_handoff`)."""
        return self.gil_handoff if self.gil_handoff_busy is None else self.gil_handoff_busy

    def remote_calls(self, service: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The remote call of each task of ``service`` seconds (see ``remote_call_curve``)."""
        if not self.remote_call_curve:
            return np.full(len(service), self.remote_call)
        task_seconds, remote_seconds = zip(*self.remote_call_curve, strict=True)
        remote: npt.NDArray[np.float64] = np.interp(service, task_seconds, remote_seconds)
        return remote

    def as_dict(self) -> dict[str, Any]:
        """The figures by name, for metadata."""
        return asdict(self)

    @classmethod
    def this_machine(cls) -> Overhead:
        """This machine as the model sees it without a calibration: ``os.cpu_count()``
        cores and this interpreter's switch interval, no measured costs."""
        import os
        import sys

        return cls(cores=float(os.cpu_count() or 1), switch_interval=sys.getswitchinterval())

    @classmethod
    def from_dict(cls, figures: dict[str, Any]) -> Overhead:
        """The inverse of :meth:`as_dict`; figures it does not know are ignored."""
        known: dict[str, Any] = {
            name: figures[name] if name == "remote_call_curve" else float(figures[name])
            for name in cls.__dataclass_fields__
            if name in figures
        }
        return cls(**known)


def _curve(points: Any) -> tuple[tuple[float, float], ...]:
    """``points`` as a sorted tuple of (task seconds, remote call seconds), checked."""
    try:
        curve = tuple((float(task), float(remote)) for task, remote in points)
    except (TypeError, ValueError):
        raise ValueError(
            f"remote_call_curve must be (task seconds, remote call seconds) pairs, got {points!r}"
        ) from None
    for task, remote in curve:
        _validate.non_negative("remote_call_curve", task)
        _validate.non_negative("remote_call_curve", remote)
    if any(later[0] <= earlier[0] for earlier, later in itertools.pairwise(curve)):
        raise ValueError(f"remote_call_curve must rise in task seconds, got {points!r}")
    return curve
