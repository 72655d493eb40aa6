"""The journal's file: one SQLite database, one row per task.

A task's row is written, and committed, before ``submit`` returns; later changes (an
attempt started, the task done or failed) are queued and committed in groups by one
writer thread, so a completion costs the worker no disk write. The file is in WAL mode
with ``synchronous=NORMAL``: a commit survives the death of the process (the kill this
journal is for) without an fsync per task; a power cut may lose the last commits, which
then run again (see ``docs/journal.md``). Completion is recorded once: a row that is done
or failed is never changed by a later update.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from real.journal import changes
from real.journal.changes import Changes

#: The layout this code writes; a file of a later one is refused.
SCHEMA_VERSION = 1
STATES = ("pending", "running", "done", "failed")
_SCHEMA = """
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY,
    key TEXT UNIQUE,
    fn TEXT NOT NULL,
    call BLOB NOT NULL,
    priority INTEGER NOT NULL,
    affinity INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    worker INTEGER,
    submitted REAL NOT NULL,
    started REAL,
    ended REAL,
    error TEXT,
    result BLOB
);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
#: Seconds the writer waits for more changes before it commits what it has.
GROUP_WINDOW = 0.002
#: SQLite's ``synchronous`` for the journal: NORMAL (in WAL mode, no fsync per commit; a
#: commit survives a killed process, a power cut may undo the last ones) or FULL (an
#: fsync per commit). ``benchmarks/journal_soak.py`` measures both.
SYNCHRONOUS = "NORMAL"
#: Bytes per page of a new journal.
PAGE_SIZE = 1024
#: Seconds a statement waits while another connection (the command line) writes.
BUSY_TIMEOUT = 30.0
#: Seconds the writer thread waits before it tries again after a failed commit.
RETRY_AFTER = 0.05
#: A submit's commit carries the queued changes once there are this many (fewer are
#: left to the writer thread: every statement a submit runs lets the workers' threads
#: take the interpreter lock, and each hand-over costs a wake-up).
CARRIED_CHANGES = 64
_INSERT = (
    "INSERT INTO tasks (key, fn, call, priority, affinity, state, submitted)"
    " VALUES (?, ?, ?, ?, ?, 'pending', ?)"
)


class JournalError(ValueError):
    """A journal file that cannot be used (the message names the file and why)."""


class JournalClosedError(RuntimeError):
    """The journal was closed (its pool shut down)."""


class Row(NamedTuple):
    """A task as the journal holds it."""

    id: int
    key: str | None
    fn: str
    call: bytes
    priority: int
    affinity: int
    state: str
    attempts: int
    error: str | None
    result: bytes | None


class Store:
    """The journal file at ``path`` (created 0600 if missing), storing arguments and
    results as ``encoding`` ("json" or "pickle"; an existing journal keeps its own)."""

    def __init__(self, path: str | os.PathLike[str], encoding: str) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise JournalError(
                f"journal {self.path}: the directory {self.path.parent} does not exist"
            )
        _create_private(self.path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as error:
            raise JournalError(f"journal {self.path} cannot be opened: {error}") from None
        #: Held while the connection is used; the queue of changes has a lock of its own,
        #: so queuing one (a worker, under its pool's lock) never waits for the disk.
        self._lock = threading.Lock()
        #: Changes not yet written (attempt starts, outcomes); the pool's threads queue
        #: them with ``started`` and ``settled``.
        self._changes = Changes()
        self.started = self._changes.started
        self.settled = self._changes.settled
        self._closed = False
        try:
            self.encoding = self._prepare(encoding)
        except JournalError:
            self._db.close()
            raise
        except Exception as error:  # sqlite3.DatabaseError and the like
            self._db.close()
            raise JournalError(
                f"journal {self.path} is not a poolbench journal or is damaged: {error}"
            ) from None
        self._writer = threading.Thread(target=self._write, name="poolbench-journal", daemon=True)
        self._writer.start()

    def _prepare(self, encoding: str) -> str:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} was written by a newer poolbench (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION})"
            )
        if version == 0 and tables:
            raise JournalError(f"journal {self.path} is an SQLite file of something else")
        if version == 0:
            # No AUTOINCREMENT (its counter is one more page per commit: 5,800 -> 4,800
            # tasks/s): the id of a refused submit's deleted row may be given again, which
            # is harmless, as its item is cancelled and records nothing.
            # Small pages: a commit writes each page it touches to the log, and a submit
            # touches two (the row, the key's index): 1 KB pages took a commit from 65-96
            # to 47-59 us here. No index on the state: only opening a journal looks for
            # unfinished tasks, and a scan then costs less than an index at every commit.
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO settings VALUES ('encoding', ?)", (encoding,))
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return encoding
        # Everything checked before the first statement that could change the file.
        if not {"tasks", "settings"} <= tables:
            raise JournalError(f"journal {self.path} is an SQLite file of something else")
        kept = db.execute("SELECT value FROM settings WHERE name='encoding'").fetchone()
        if kept is None or kept[0] not in ("json", "pickle"):
            raise JournalError(f"journal {self.path} is an SQLite file of something else")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise JournalError(f"journal {self.path} is damaged: {check}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
        return str(kept[0])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------

    def add(self, key: str | None, fn: str, call: bytes, priority: int, affinity: int) -> int:
        """A new pending task, committed before this returns; its id. Once enough changes
        are queued they go in the same commit (while tasks are submitted, the submitter's
        commits carry them and the writer thread seldom needs one of its own). Raises
        ``sqlite3.IntegrityError`` if ``key`` is taken."""
        values = (key, fn, call, priority, affinity, time.time())
        with self._lock:
            self._check_open()
            carry = self._changes.count() >= CARRIED_CHANGES
            try:
                if not carry:  # one statement, committed by itself
                    return int(self._db.execute(_INSERT, values).lastrowid or 0)
                with self._transaction():
                    task_id = int(self._db.execute(_INSERT, values).lastrowid or 0)
                    self._apply()  # after the insert: a refused key leaves the queue alone
                    return task_id
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as error:
                raise JournalError(f"journal {self.path}: cannot write a task: {error}") from None

    def started_now(self, task_id: int, attempt: int, worker: int) -> None:
        """Commit at once that attempt number ``attempt`` of the task began on ``worker``
        (with whatever else is queued)."""
        self._changes.started(task_id, attempt, worker)
        with self._lock:
            self._check_open()
            self._flush_locked()

    def _write(self) -> None:
        while self._changes.wait_for_group(GROUP_WINDOW):
            with self._lock:
                try:
                    self._flush_locked()
                except sqlite3.Error:  # e.g. another connection holds the file: again later
                    failed = True
                else:
                    failed = False
            if failed:
                if self._changes.closing:
                    return  # close() tries once more and reports the error
                time.sleep(RETRY_AFTER)

    def _check_open(self) -> None:
        if self._closed:
            raise JournalClosedError(f"journal {self.path} is closed")

    def _flush_locked(self) -> None:
        """Write the queued changes (the connection's lock held)."""
        if self._changes.count() and not self._closed:
            with self._transaction():
                self._apply()

    def _apply(self) -> None:
        """Write the queued changes inside the current transaction (queued again if it
        fails, as it then rolls back)."""
        with self._changes.taken() as (starts, outcomes):
            changes.write(self._db, starts, outcomes)

    def close(self) -> None:
        """Commit what is queued and close the file. Idempotent."""
        with self._lock:
            if self._closed:
                return
        self._changes.close()
        self._writer.join()
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                self._db.close()

    # -- reads ------------------------------------------------------------------------------

    def rows(self, where: str = "", values: tuple[Any, ...] = ()) -> list[Row]:
        """The tasks matching ``where`` (SQL), oldest first, after the queued changes."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            cursor = self._db.execute(
                "SELECT id, key, fn, call, priority, affinity, state, attempts, error, result"
                f" FROM tasks {where} ORDER BY id",
                values,
            )
            return [Row(*row) for row in cursor.fetchall()]

    def find(self, key: str) -> Row | None:
        """The task of ``key``, if the journal holds one."""
        found = self.rows("WHERE key=?", (key,))
        return found[0] if found else None

    def frame(self) -> pd.DataFrame:
        """One row per task: ``id``, ``key``, ``fn``, ``state``, ``attempts``, ``worker``,
        ``submitted``, ``started``, ``ended`` (Unix seconds), ``error``."""
        with self._lock:
            if not self._closed:
                self._flush_locked()
                return pd.read_sql_query(_FRAME, self._db)
        return read_tasks(self.path)  # closed (its pool shut down): the file as it is

    def execute(self, statement: str, values: tuple[Any, ...] = ()) -> int:
        """Run one changing statement at once (the CLI's commands); rows changed."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            with self._transaction():
                return self._db.execute(statement, values).rowcount

    def vacuum(self) -> None:
        """Give the file's free pages back to the disk."""
        with self._lock:
            self._flush_locked()
            self._db.execute("VACUUM")


_FRAME = (
    "SELECT id, key, fn, state, attempts, worker, submitted, started, ended, error"
    " FROM tasks ORDER BY id"
)


def read_tasks(path: Path) -> pd.DataFrame:
    """:meth:`Store.frame` of the journal at ``path``, read without changing the file
    (one no pool holds, or whose pool's process is gone)."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        return pd.read_sql_query(_FRAME, db)


def _create_private(path: Path) -> None:
    """Create ``path`` readable and writable by its owner only, unless it exists."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)
