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
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, CancelledError, Future, InvalidStateError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from real.journal.codec import (
    callable_name,
    check_options,
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
        check_options(encoding, keep_results)
        self._owner, created = _own(Path(path))
        try:
            self.store = Store(path, encoding)
        except BaseException:
            if created:  # a refused journal leaves nothing behind (unlinked while locked)
                _owner_file(Path(path)).unlink(missing_ok=True)
            _OWNED.discard(self._owner)
            os.close(self._owner)
            raise
        self.encoding = self.store.encoding
        self.keep_results = keep_results
        #: Futures of the keyed tasks this pool has not settled yet, by key.
        self._live: dict[str, Future[Any]] = {}
        #: Tasks taken back from the journal by this pool (their starts commit at once).
        self._revived: set[int] = set()
        self._lock = threading.RLock()
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

    def forget(self, item: TaskFuture, error: BaseException) -> None:
        """Remove the task of ``item``: its submit was refused (``error``) after it was
        written. Whoever got its future by key meanwhile gets ``error`` too."""
        if item.key is not None:
            with self._lock:
                self._live.pop(str(item.key), None)
        with contextlib.suppress(InvalidStateError):  # cancelled on the way (interrupted)
            item.set_exception(error)
        self.store.execute("DELETE FROM tasks WHERE id=?", (item.journal_id,))

    def started(self, item: TaskFuture, worker: int) -> None:
        """An attempt of ``item`` begins on ``worker`` (its future is running). A task
        taken back from the journal has its start committed before it runs, so that one
        that takes the whole process down is counted against ``max_attempts``."""
        attempt = item.resumed + item.attempts
        if item.journal_id in self._revived:
            self.store.started_now(item.journal_id, attempt, worker)
        else:
            self.store.started(item.journal_id, attempt, worker)

    def _settled(self, future: Future[Any]) -> None:
        item: TaskFuture = future  # type: ignore[assignment]
        self._record_outcome(item)
        if item.key is not None:  # after the outcome is queued: a lookup then sees it
            with self._lock:
                self._live.pop(str(item.key), None)

    def _record_outcome(self, item: TaskFuture) -> None:
        if item.cancelled():
            return  # never ran: it stays pending for the next pool
        attempts = item.resumed + item.attempts
        error = item.exception()
        if isinstance(error, BrokenExecutor | CancelledError):
            return  # the pool broke or shut down before it ran again: the next pool runs it
        if error is None:
            result, note = (None, "")
            if self.keep_results:
                result, note = encode_result(item.result(), self.encoding)
            self.store.settled(item.journal_id, "done", attempts, note or None, result)
        else:
            self.store.settled(item.journal_id, "failed", attempts, _text(error), None)

    def existing(
        self, key: str, revive: Callable[[Row], TaskFuture | None]
    ) -> tuple[Future[Any] | None, TaskFuture | None]:
        """What the journal has of the task ``key``: (its future, None) if it is live
        here or settled (resolved from the row), (None, a new item to queue) if it is
        unfinished but not queued here (``revive(row)`` makes the item; a future this
        pool cancelled, say), (None, None) if the journal has no such task."""
        with self._lock:
            live = self._live.get(key)
            if live is not None:
                return live, None
            row = self.store.find(key)
            if row is None:
                return None, None
            if row.state in ("done", "failed"):
                return self.outcome(row), None
            item = revive(row)
            return (self.existing(key, revive)[0], None) if item is None else (None, item)

    def release(self, item: TaskFuture, error: BaseException) -> None:
        """``item``, taken back from the journal, could not be queued (``error``): its
        task stays as it is in the journal; its future gets ``error``."""
        if item.key is not None:
            with self._lock:
                self._live.pop(str(item.key), None)
        with contextlib.suppress(InvalidStateError):
            item.set_exception(error)

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
        self._revived.add(row.id)
        self.follow(item, row.key)
        return item

    def close(self) -> None:
        """Commit what is queued and close the file. Idempotent."""
        atexit.unregister(self.close)
        try:
            self.store.close()
        finally:
            if self._owner >= 0:
                _OWNED.discard(self._owner)
                os.close(self._owner)  # the lock goes with it
                self._owner = -1


def _owner_file(path: Path) -> Path:
    return path.with_name(path.name + ".owner")


def _own(path: Path) -> tuple[int, bool]:
    """Lock ``path``'s owner file (``<path>.owner``, holding this process's id) for this
    pool: two pools on one journal would both run its unfinished tasks. Its descriptor,
    and whether the file was created."""
    if not path.parent.is_dir():
        raise JournalError(f"journal {path}: the directory {path.parent} does not exist")
    owner = _owner_file(path)
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
    _OWNED.add(descriptor)
    return descriptor, created


#: Descriptors of the owner files this process holds; a forked child closes its copies
#: (the lock stays with the parent's), so a killed parent's successor is not locked out
#: by children still finishing a task.
_OWNED: set[int] = set()


def _close_owned_in_child() -> None:
    for descriptor in _OWNED:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _OWNED.clear()


os.register_at_fork(after_in_child=_close_owned_in_child)


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
