"""The journal's side of a pool of real workers (``journal=`` of :class:`real.ThreadedPool`
and :class:`real.ProcessPool`): opening it, taking its unfinished tasks back, journaled
submits, and closing it once no submit is using it.

:class:`JournaledSubmits` is a mixin of :class:`real.pool_executor.PoolExecutor`; the
journal itself is :mod:`real.journal`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from real.journal.codec import check_options
from real.task_future import TaskFuture

if TYPE_CHECKING:
    from pool.faults import Recovery
    from real.journal import Journal
    from real.journal.store import Row
    from real.lifecycle import WorkerThreads


class JournaledSubmits:
    """What a pool does with its journal (see the module)."""

    journal: Journal | None
    recovery: Recovery
    _backend: WorkerThreads

    def _open_journal(
        self, journal: str | os.PathLike[str] | None, encoding: str, keep_results: bool
    ) -> None:
        """Check the journal options and open the file (None: no journal)."""
        check_options(encoding, keep_results)  # also when there is no journal to open
        self.journal = None
        #: Journaled submits under way; the journal closes once none is (see shutdown).
        self._journal_gate = threading.Condition()
        self._journal_users = 0
        self._journal_closing = False
        if journal is None:
            return
        if not isinstance(journal, str | os.PathLike) or not os.fspath(journal):
            raise TypeError(f"journal must be a file path, got {journal!r}")
        from real.journal import Journal  # sqlite3 and the codec only when used

        self.journal = Journal(journal, encoding, keep_results)

    def _resume(self) -> None:
        """Queue the journal's unfinished tasks, with the attempts they had. They are
        queued whatever ``max_pending`` says: they were accepted before."""
        journal = self.journal
        assert journal is not None
        for row in journal.unfinished():
            item = self._revive(row)
            if item is not None:
                self._enqueue(item, resumed=True)

    def _revive(self, row: Row) -> TaskFuture | None:
        """The unfinished task of ``row`` as an item to queue (None: it failed at once)."""
        journal = self.journal
        assert journal is not None

        def make(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> TaskFuture:
            return self._task(fn, args, kwargs, row.priority, row.affinity, row.key)

        return journal.revive(row, self.recovery.max_attempts, make)

    def _journaled(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        affinity: int,
        key: Hashable | None,
    ) -> Future[Any]:
        """Submit a task the journal keeps: written before this returns."""
        with self._journal_gate:
            if self._journal_closing or self._backend.shutting_down:
                raise RuntimeError("cannot submit to a pool that is shut down")
            self._journal_users += 1
        try:
            return self._write_and_queue(fn, args, kwargs, priority, affinity, key)
        finally:
            with self._journal_gate:
                self._journal_users -= 1
                if not self._journal_users:
                    self._journal_gate.notify_all()

    def _write_and_queue(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        affinity: int,
        key: Hashable | None,
    ) -> Future[Any]:
        journal = self.journal
        assert journal is not None
        if key is not None:
            if not isinstance(key, str):
                raise TypeError(f"key must be a str for a journaled task, got {key!r}")
            future, revived = journal.existing(key, self._revive)
            if future is not None:
                return future
            if revived is not None:  # unfinished in the journal, not queued here: run it
                try:
                    return self._enqueue(revived)
                except BaseException as error:
                    journal.release(revived, error)
                    raise
        name, call = journal.prepare(fn, args, kwargs)  # nothing written if it raises
        item = self._task(fn, args, kwargs, priority, affinity, key)
        if not journal.write(item, key, name, call):  # the same key, from another thread
            return self._write_and_queue(fn, args, kwargs, priority, affinity, key)
        try:
            return self._enqueue(item)
        except BaseException as error:
            journal.forget(item, error)
            raise

    def _close_journal(self) -> None:
        """Close the journal once no submit is using it (the pool has shut down)."""
        if self.journal is None:
            return
        with self._journal_gate:
            self._journal_closing = True
            while self._journal_users:
                self._journal_gate.wait()
        self.journal.close()

    if TYPE_CHECKING:  # provided by the pool (PoolExecutor)

        def _task(
            self,
            fn: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            priority: int,
            affinity: int,
            key: Hashable | None,
        ) -> TaskFuture: ...

        def _enqueue(self, item: TaskFuture, resumed: bool = False) -> Future[Any]: ...
