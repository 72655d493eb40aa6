"""The state of one simulated worker, as the simulated pool tracks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pool.core import WorkerState


class Crashed(Exception):  # noqa: N818 - a worker event, not an error of the caller
    """Raised inside a worker process when it crashes: the process ends without reporting."""


@dataclass(eq=False, slots=True)
class SimWorker(WorkerState):
    """A worker of the model (see :class:`pool.core.WorkerState`).

    ``process`` is its SimPy process and ``wake`` the event it waits on while idle;
    ``attempt_end`` is when its running attempt ends if nothing interrupts it.
    ``silent_since`` is when it stopped heartbeating (a crash or a hang), None while
    healthy. ``starting``: a worker process placed in its slot whose process is not
    ready yet (the process backend's restarts and scale-ups).
    """

    attempt_end: float = 0.0
    process: Any = None
    wake: Any = None
    silent_since: float | None = None
    starting: bool = False
