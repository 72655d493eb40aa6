"""A task as the threaded pool keeps it: the call, its future and its bookkeeping."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass(eq=False, slots=True)
class Item:
    """``fn(*args, **kwargs)``, its ``future``, and what the pool needs to schedule it."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future[Any]
    priority: int
    affinity: int
    #: The caller's id for the task (``submit_with(key=...)``), unique among live tasks.
    key: Hashable | None = None
    attempts: int = 0
    #: Recorded only with ``record=True``: pool seconds, and the last attempt's CPU time.
    submitted: float = math.nan
    started: float = math.nan
    cpu_time: float = math.nan
    worker: int = -1


def call(item: Item) -> tuple[bool, Any]:
    """Call a task: (True, its result) or (False, the Exception it raised)."""
    try:
        return True, item.fn(*item.args, **item.kwargs)
    except Exception as error:
        return False, error


def call_timed(item: Item) -> tuple[bool, Any]:
    """:func:`call`, keeping its thread's CPU time for the pool's trace."""
    begin = time.thread_time()
    try:
        return call(item)
    finally:
        item.cpu_time = time.thread_time() - begin
