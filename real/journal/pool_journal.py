"""A pool's journal (``pool.journal``): what the pool writes of each task, and what it
takes back from the file when it opens on one that holds unfinished tasks.

States: pending (written before ``submit`` returns) → running (each attempt: its number,
worker and start) → done or failed (the error's text; the result when
``journal_results``). A cancelled future leaves its task pending: it never ran, and the
next pool opened on the journal runs it. Delivery is at least once (a task running when
the process died runs again), completion is recorded once.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from real.journal.codec import (
    ENCODINGS,
    callable_name,
    decode_call,
    decode_result,
    encode_call,
    encode_result,
    resolve_callable,
)
from real.journal.store import JournalError, Row, Store

if TYPE_CHECKING:
    from real.task_future import TaskFuture


class JournaledTaskError(Exception):
    """The failure of a settled journaled task, as a key looked up in the journal returns
    it (its message is the error's text as recorded)."""


class Journal:
    """The journal file at ``path`` as a pool uses it (see the module)."""

    def __init__(self, path: str | os.PathLike[str], encoding: str, keep_results: bool) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"journal_encoding must be one of {ENCODINGS}, got {encoding!r}")
        if not isinstance(keep_results, bool):
            raise ValueError(f"journal_results must be True or False, got {keep_results!r}")
        self._owner, created = _own(Path(path))
        try:
            self.store = Store(path, encoding)
        except BaseException:
            os.close(self._owner)
            if created:  # a refused journal leaves nothing behind
                Path(path).with_name(Path(path).name + ".owner").unlink(missing_ok=True)
            raise
        self.encoding = self.store.encoding
        self.keep_results = keep_results
        #: Futures of the keyed tasks this pool has not settled yet, by key.
        self._live: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        # Commit what is queued at exit (after the pools' pending tasks, which the
        # interpreter waits for first), if the pool was not shut down with wait.
        atexit.register(self.close)

    @property
    def path(self) -> os.PathLike[str]:
        """The journal file."""
        return self.store.path

    def tasks(self) -> pd.DataFrame:
        """One row per task: ``id``, ``key``, ``fn``, ``state`` (pending, running, done,
        failed), ``attempts``, ``worker`` (the last attempt's slot), ``submitted``,
        ``started`` (the last attempt), ``ended`` (Unix seconds) and ``error``."""
        return self.store.frame()

    # -- the pool's side -----------------------------------------------------------------------

    def prepare(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, bytes]:
        """The call as the journal keeps it: ``fn``'s importable name and the encoded
        arguments. Raises :class:`NotJournalableError` with the reason."""
        return callable_name(fn), encode_call(args, kwargs, self.encoding)

    def write(self, item: TaskFuture, key: str | None, name: str, call: bytes) -> bool:
        """Write ``item``'s new task (committed before this returns); False if another
        submit wrote a task of ``key`` first."""
        with self._lock:
            try:
                item.journal_id = self.store.add(key, name, call, item.priority, item.affinity)
            except sqlite3.IntegrityError:
                return False
            if key is not None:
                self._live[key] = item
        item.add_done_callback(self._settled)
        return True

    def follow(self, item: TaskFuture, key: str | None) -> None:
        """Record ``item``'s outcome when it has one."""
        if key is not None:
            with self._lock:
                self._live[key] = item
        item.add_done_callback(self._settled)

    def forget(self, item: TaskFuture) -> None:
        """Remove the task of ``item``: its submit was refused after it was written."""
        self.store.execute("DELETE FROM tasks WHERE id=?", (item.journal_id,))
        if item.key is not None:
            with self._lock:
                self._live.pop(str(item.key), None)

    def started(self, item: TaskFuture, worker: int) -> None:
        """An attempt of ``item`` began on ``worker`` (the pool lock is held)."""
        if item.journal_id >= 0:
            self.store.started(item.journal_id, item.resumed + item.attempts, worker)

    def _settled(self, future: Future[Any]) -> None:
        item: TaskFuture = future  # type: ignore[assignment]
        if future.cancelled():
            return  # never ran: it stays pending for the next pool
        attempts = item.resumed + item.attempts
        error = future.exception()
        if error is None:
            result, note = (None, "")
            if self.keep_results:
                result, note = encode_result(future.result(), self.encoding)
            self.store.settled(item.journal_id, "done", attempts, note or None, result)
        else:
            self.store.settled(item.journal_id, "failed", attempts, _text(error), None)
        if item.key is not None:
            with self._lock:
                self._live.pop(str(item.key), None)

    def existing(self, key: str) -> Future[Any] | None:
        """The future of the task ``key`` if the journal holds one: live, or resolved
        from its recorded outcome."""
        with self._lock:
            live = self._live.get(key)
        if live is not None:
            return live
        row = self.store.find(key)
        if row is None:
            return None
        with self._lock:  # settled meanwhile? then the row says so now
            live = self._live.get(key)
        return live if live is not None else self.outcome(row)

    def outcome(self, row: Row) -> Future[Any]:
        """A resolved future holding ``row``'s recorded outcome."""
        future: Future[Any] = Future()
        if row.state == "done":
            future.set_result(decode_result(row.result, self.encoding))
        else:
            future.set_exception(JournaledTaskError(row.error or f"task is {row.state}"))
        return future

    def unfinished(self) -> list[Row]:
        """The tasks neither done nor failed, oldest first."""
        return self.store.rows("WHERE state IN ('pending', 'running')")

    def revive(
        self,
        row: Row,
        max_attempts: int,
        make: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], TaskFuture],
    ) -> TaskFuture | None:
        """The task of unfinished ``row`` as a new item to queue (``make(fn, args,
        kwargs)``), or None if it fails at once (attempts used up, fn not importable)."""
        if row.attempts >= max_attempts:
            reason = f"WorkerLost: {row.attempts} attempts were begun before the restart"
            self.store.settled(row.id, "failed", row.attempts, reason, None)
            return None
        try:
            fn = resolve_callable(row.fn)
            args, kwargs = decode_call(row.call, self.encoding)
        except Exception as error:
            self.store.settled(row.id, "failed", row.attempts, _text(error), None)
            return None
        item = make(fn, args, kwargs)
        item.journal_id, item.resumed = row.id, row.attempts
        self.follow(item, row.key)
        return item

    def close(self) -> None:
        """Commit what is queued and close the file. Idempotent."""
        atexit.unregister(self.close)
        self.store.close()
        if self._owner >= 0:
            os.close(self._owner)  # the lock goes with it
            self._owner = -1


def _own(path: Path) -> tuple[int, bool]:
    """Lock ``path``'s owner file (``<path>.owner``, holding this process's id) for this
    pool: two pools on one journal would both run its unfinished tasks. Its descriptor,
    and whether the file was created."""
    if not path.parent.is_dir():
        raise JournalError(f"journal {path}: the directory {path.parent} does not exist")
    owner = path.with_name(path.name + ".owner")
    created = not owner.exists()
    descriptor = os.open(owner, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "?"
        os.close(descriptor)
        raise JournalError(f"journal {path} is in use by another pool (process {holder})") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor, created


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
