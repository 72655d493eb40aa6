"""The pools' journal (real.journal): tasks written before submit returns, their
attempts and outcomes, a pool opened on a journal resuming what the process left
unfinished (after real SIGKILLs of a driver process), futures by key, the command
line, and bad input that writes nothing.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from journal_tasks import Holder, fail, nap, pair, square

import real
from pool import Recovery
from real.journal import JournaledTaskError, JournalError, NotJournalableError
from real.journal.__main__ import main as journal_cli
from real.journal.store import Store

pytestmark = pytest.mark.timeout(120)
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
POOLS = {"threads": real.ThreadedPool, "processes": real.ProcessPool}


@pytest.fixture(autouse=True)
def _threads_checked(no_thread_left: None) -> None:
    """The journal's writer thread must end with its pool too."""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def pools() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for pool in made:
        pool.shutdown(wait=True, cancel_futures=True)


def rows(path: Path) -> list[tuple[Any, ...]]:
    """(key, fn, state, attempts, error) of every task, read with plain sqlite3."""
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT key, fn, state, attempts, error FROM tasks ORDER BY id"
        ).fetchall()


# -- what is written ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(POOLS))
def test_every_task_is_written_with_its_attempts_and_outcome(path: Path, kind: str) -> None:
    pool = POOLS[kind]("fifo", 2, journal=path, journal_results=True)
    done = [pool.submit_with(square, (n,), key=f"sq{n}") for n in range(4)]
    failed = pool.submit(fail, 7)
    assert [f.result(timeout=30) for f in done] == [0, 1, 4, 9]
    assert isinstance(failed.exception(timeout=30), KeyError)
    pool.shutdown()
    written = rows(path)
    assert [(key, fn, state, attempts) for key, fn, state, attempts, _ in written] == [
        *[(f"sq{n}", "journal_tasks:square", "done", 1) for n in range(4)],
        (None, "journal_tasks:fail", "failed", 1),
    ]
    assert written[-1][4] == "KeyError: 7"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_task_is_committed_before_submit_returns(path: Path, pools: list[Any]) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path)
    pools.append(pool)
    pool.submit_with(nap, (1, 0.5), key="first")
    pool.submit_with(nap, (2, 0.0), key="second")  # queued behind the first
    # Another connection (another process would do the same) sees both already.
    written = rows(path)
    assert [key for key, *_ in written] == ["first", "second"]
    assert written[1][2] == "pending"


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Return once ``condition()`` holds (a test's sleep would guess how long it takes)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def test_a_submit_refused_after_it_was_written_is_removed_again(
    path: Path, pools: list[Any]
) -> None:
    pool = real.ThreadedPool("fifo", 1, max_pending=1, submit_timeout=0.05, journal=path)
    pools.append(pool)
    running = pool.submit_with(nap, (1, 0.5), key="running")
    wait_for(running.running)  # taken by the worker: the queue is empty
    pool.submit_with(nap, (2, 0.0), key="queued")
    with pytest.raises(TimeoutError):
        pool.submit_with(nap, (3, 0.0), key="refused")
    assert [key for key, *_ in rows(path)] == ["running", "queued"]
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit_with(nap, (4, 0.0), key="after")
    assert [key for key, *_ in rows(path)] == ["running", "queued"]


def test_the_tasks_frame_has_one_row_per_task(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 2, journal=path)
    for n in range(3):
        pool.submit_with(square, (n,), key=f"k{n}").result(timeout=10)
    frame = pool.journal.tasks() if pool.journal is not None else None
    pool.shutdown()
    assert frame is not None
    assert list(frame.columns) == [
        "id",
        "key",
        "fn",
        "state",
        "attempts",
        "worker",
        "submitted",
        "started",
        "ended",
        "error",
    ]
    assert frame["key"].tolist() == ["k0", "k1", "k2"]
    assert (frame["state"] == "done").all()
    assert (frame["ended"] >= frame["started"]).all()
    assert (frame["started"] >= frame["submitted"]).all()


# -- keys and restarts -----------------------------------------------------------------------


def test_a_known_key_returns_its_task_not_a_new_one(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 2, journal=path, journal_results=True)
    first = pool.submit_with(nap, (5, 0.2), key="job")
    assert pool.submit_with(nap, (6, 0.0), key="job") is first  # live: the same future
    assert first.result(timeout=10) == 5
    pool.submit_with(fail, (1,), key="bad").exception(timeout=10)
    pool.shutdown()
    again = real.ThreadedPool("fifo", 2, journal=path, journal_results=True)
    try:
        assert again.submit_with(nap, (6, 0.0), key="job").result(timeout=1) == 5
        with pytest.raises(JournaledTaskError, match="KeyError: 1"):
            again.submit_with(fail, (1,), key="bad").result(timeout=1)
    finally:
        again.shutdown()
    assert len(rows(path)) == 2  # nothing ran twice


def test_cancelled_tasks_stay_pending_and_the_next_pool_runs_them(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path, journal_results=True)
    pool.submit_with(nap, (0, 0.3), key="busy")
    waiting = [pool.submit_with(square, (n,), key=f"w{n}") for n in range(3)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in waiting)
    assert [state for key, _, state, _, _ in rows(path) if key != "busy"] == ["pending"] * 3
    again = real.ThreadedPool("fifo", 1, journal=path, journal_results=True)
    try:
        assert [
            again.submit_with(square, (n,), key=f"w{n}").result(timeout=10) for n in range(3)
        ] == [0, 1, 4]
    finally:
        again.shutdown()
    assert {state for _, _, state, _, _ in rows(path)} == {"done"}


def test_attempts_count_across_restarts(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path)
    pool.submit_with(square, (3,), key="spent").result(timeout=10)
    pool.submit_with(square, (4,), key="one-left").result(timeout=10)
    pool.submit_with(fail, (5,), key="retried").exception(timeout=10)
    pool.shutdown()
    with sqlite3.connect(path) as db:  # as if all died running, after 3, 2 and 2 attempts
        db.execute("UPDATE tasks SET state='running', attempts=3 WHERE key='spent'")
        db.execute("UPDATE tasks SET state='running', attempts=2 WHERE key!='spent'")
    again = real.ThreadedPool(
        "fifo",
        1,
        Recovery(max_attempts=3, retry_backoff=0.0),
        retry_exceptions=(KeyError,),
        journal=path,
        journal_results=True,  # "one-left" may be done before it is looked up
    )
    try:
        with pytest.raises(JournaledTaskError, match="3 attempts were begun"):
            again.submit_with(square, (3,), key="spent").result(timeout=10)
        assert again.submit_with(square, (4,), key="one-left").result(timeout=10) == 16
        # Retried on KeyError, but its one attempt left is all it gets. (Its future: the
        # live one, or once settled the journal's, which holds the recorded text.)
        with pytest.raises((KeyError, JournaledTaskError), match="5"):
            again.submit_with(fail, (5,), key="retried").result(timeout=10)
    finally:
        again.shutdown()
    assert [(key, state, attempts) for key, _, state, attempts, _ in rows(path)] == [
        ("spent", "failed", 3),
        ("one-left", "done", 3),
        ("retried", "failed", 3),
    ]


DRIVER = textwrap.dedent(
    """
    import sys, time
    import real
    from journal_tasks import nap
    pool = real.{pool}("fifo", 2, journal=sys.argv[1], journal_results=True)
    futures = [pool.submit_with(nap, (n, 0.02), key=f"t{{n}}") for n in range({tasks})]
    print("submitted", flush=True)
    for future in futures:
        future.result()
    pool.shutdown()
    print("finished", flush=True)
    """
)


def drive(path: Path, pool: str, tasks: int, kill_after: float | None) -> str:
    """Run the driver on ``path``; SIGKILL it ``kill_after`` s after it has submitted."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(pool=pool, tasks=tasks), str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a kill takes its worker processes too
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if kill_after is None:
        out, _ = process.communicate(timeout=60)
        return first + "\n" + out
    time.sleep(kill_after)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    return first


@pytest.mark.parametrize("pool", ["ThreadedPool", "ProcessPool"])
def test_a_killed_driver_loses_no_task_and_the_next_one_finishes_them(
    path: Path, pool: str
) -> None:
    tasks = 60
    for kill_after in (0.15, 0.25, 0.1):
        assert drive(path, pool, tasks, kill_after) == "submitted"
        states = [state for _, _, state, _, _ in rows(path)]
        assert len(states) == tasks  # every task written, none twice
        assert states.count("running") <= 2  # two workers
    assert drive(path, pool, tasks, None).split() == ["submitted", "finished"]
    final = rows(path)
    assert [key for key, *_ in final] == [f"t{n}" for n in range(tasks)]
    assert {state for _, _, state, _, _ in final} == {"done"}
    extra_runs = sum(attempts for *_, attempts, _ in final) - tasks
    assert 0 <= extra_runs <= 3 * 2  # at most the running tasks of each kill ran again
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- what the journal refuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "args", "reason"),
    [
        (lambda value: value, (1,), "lambda or a function defined inside"),
        (Holder().method, (), "does not import back"),
        (square, ((1, 2),), "tuple"),
        (square, (float("nan"),), "JSON cannot hold"),
        (square, ({1: 2},), "JSON keys are strings"),
        (square, (object(),), "object, which JSON cannot hold"),
    ],
    ids=["lambda", "bound-method", "tuple", "nan", "int-key", "object"],
)
def test_what_cannot_be_journaled_is_refused_and_nothing_is_written(
    path: Path, pools: list[Any], fn: Any, args: tuple[Any, ...], reason: str
) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path)
    pools.append(pool)
    with pytest.raises(NotJournalableError, match=reason):
        pool.submit_with(fn, args, key="refused")
    assert rows(path) == []
    assert pool.submit_with(square, (2,), key="refused").result(timeout=10) == 4  # goes on


def test_a_closure_is_refused(path: Path, pools: list[Any]) -> None:
    offset = 3

    def closure(value: int) -> int:
        return value + offset

    pool = real.ThreadedPool("fifo", 1, journal=path)
    pools.append(pool)
    with pytest.raises(NotJournalableError, match="defined inside another"):
        pool.submit(closure, 1)
    with pytest.raises(TypeError, match="key must be a str"):
        pool.submit_with(square, (1,), key=7)
    assert rows(path) == []


def test_pickles_are_an_opt_in_that_keeps_any_picklable_value(path: Path) -> None:
    pool = real.ThreadedPool(
        "fifo", 1, journal=path, journal_encoding="pickle", journal_results=True
    )
    assert pool.submit_with(pair, ((1, 2),), key="p").result(timeout=10) == ((1, 2), (1, 2))
    pool.shutdown()
    again = real.ThreadedPool("fifo", 1, journal=path)  # the journal keeps its encoding
    try:
        assert again.submit_with(pair, (0,), key="p").result(timeout=1) == ((1, 2), (1, 2))
    finally:
        again.shutdown()


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda tmp: {"journal": tmp / "missing" / "tasks.db"}, "does not exist"),
        (lambda tmp: {"journal": 42}, "journal must be a file path"),
        (lambda tmp: {"journal": tmp / "j.db", "journal_encoding": "xml"}, "journal_encoding"),
        (lambda tmp: {"journal": tmp / "j.db", "journal_results": "yes"}, "journal_results"),
    ],
    ids=["missing-directory", "not-a-path", "encoding", "results"],
)
def test_bad_journal_options_name_the_parameter(tmp_path: Path, make: Any, named: str) -> None:
    with pytest.raises((ValueError, TypeError), match=named):
        real.ThreadedPool("fifo", 1, **make(tmp_path))
    assert not (tmp_path / "missing").exists()


def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    with pytest.raises(JournalError, match="not a poolbench journal"):
        real.ThreadedPool("fifo", 1, journal=text)
    assert text.read_text() == "not a database\n" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE things (x)")
    with pytest.raises(JournalError, match="something else"):
        real.ThreadedPool("fifo", 1, journal=other)


def test_one_pool_at_a_time_owns_a_journal(path: Path) -> None:
    first = real.ThreadedPool("fifo", 1, journal=path)
    try:
        with pytest.raises(
            JournalError, match=f"in use by another pool \\(process {os.getpid()}\\)"
        ):
            real.ThreadedPool("fifo", 1, journal=path)
        assert first.submit(square, 3).result(timeout=10) == 9  # the owner goes on
    finally:
        first.shutdown()
    real.ThreadedPool("fifo", 1, journal=path).shutdown()  # free again once it is closed


def test_a_newer_schema_is_refused(path: Path) -> None:
    real.ThreadedPool("fifo", 1, journal=path).shutdown()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(JournalError, match="newer poolbench"):
        real.ThreadedPool("fifo", 1, journal=path)


def test_a_truncated_journal_is_reported_not_emptied(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path)
    for n in range(300):
        pool.submit_with(square, (n,), key=f"k{n:04d}" + "x" * 200)
    pool.shutdown()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(JournalError, match="damaged"):
        real.ThreadedPool("fifo", 1, journal=path)
    assert path.stat().st_size == size // 2


# -- the command line ------------------------------------------------------------------------


def test_the_command_line_inspects_retries_and_compacts(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = real.ThreadedPool("fifo", 2, journal=path)
    for n in range(3):
        pool.submit_with(square, (n,), key=f"ok{n}")
    pool.submit_with(fail, (5,), key="bad")
    pool.shutdown()
    assert journal_cli(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 tasks" in out and "done     3" in out and "failed   1" in out
    assert "failed bad (journal_tasks:fail, 1 attempts): KeyError: 5" in out
    assert journal_cli(["retry-failed", str(path)]) == 0
    assert "1 failed tasks are pending again" in capsys.readouterr().out
    assert ("bad", "journal_tasks:fail", "pending", 0, None) in rows(path)
    assert journal_cli(["compact", str(path)]) == 0
    assert "removed 3 done tasks" in capsys.readouterr().out
    assert [key for key, *_ in rows(path)] == ["bad"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "{missing}"], "does not exist"),
        (["inspect", "{text}"], "not a poolbench journal"),
        (["explode", "{text}"], "invalid choice"),
    ],
)
def test_the_command_line_refuses_bad_input_in_one_line(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    names = {"missing": str(tmp_path / "nope.db"), "text": str(text)}
    result = subprocess.run(
        [sys.executable, "-m", "real.journal", *(arg.format(**names) for arg in argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "nope.db").exists()
    assert text.read_text() == "hello"


# -- races and edges (each failed before its fix) ---------------------------------------------


def test_a_key_taken_by_a_submit_that_then_fails_gives_its_error(
    path: Path, pools: list[Any]
) -> None:
    # The first submit of K waits for room (1.5 s) and times out before the running task
    # makes room (3 s); the second comes while it waits.
    pool = real.ThreadedPool("fifo", 1, max_pending=1, submit_timeout=1.5, journal=path)
    pools.append(pool)
    running = pool.submit_with(nap, (1, 3.0), key="running")
    wait_for(running.running)
    pool.submit_with(nap, (2, 0.0), key="queued")
    errors: list[BaseException] = []

    def first() -> None:
        try:
            pool.submit_with(nap, (3, 0.0), key="K")  # waits for room, then times out
        except TimeoutError as error:
            errors.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    wait_for(lambda: "K" in [key for key, *_ in rows(path)])  # written, waiting for room
    assert thread.is_alive()
    second = pool.submit_with(nap, (3, 0.0), key="K")  # the first submit's future
    thread.join()
    assert len(errors) == 1
    assert isinstance(second.exception(timeout=5), TimeoutError)  # resolved, not hanging
    assert "K" not in [key for key, *_ in rows(path)]


def test_queued_updates_survive_a_refused_key(path: Path) -> None:
    store = Store(path, "json")
    try:
        ids = [store.add(f"k{n}", "journal_tasks:square", b"[[1],{}]", 0, -1) for n in range(70)]
        queue = store._changes
        with queue.wake:  # queue the updates without the writer taking them meanwhile
            for task_id in ids:
                queue._starts[task_id] = (1, 0, time.time())
                queue._outcomes.append((task_id, "done", 1, time.time(), None, None))
        with pytest.raises(sqlite3.IntegrityError):
            store.add("k0", "journal_tasks:square", b"[[1],{}]", 0, -1)  # carries them
    finally:
        store.close()
    assert {state for _, _, state, _, _ in rows(path)} == {"done"}


def test_a_task_that_ends_the_process_stops_after_max_attempts(path: Path) -> None:
    driver = textwrap.dedent(
        """
        import sys
        import real
        from pool import Recovery
        from journal_tasks import end_process
        pool = real.ThreadedPool("fifo", 1, Recovery(max_attempts=2), journal=sys.argv[1])
        pool.submit_with(end_process, (1,), key="poison").result()
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    codes = []
    for _ in range(5):
        run = subprocess.run(
            [sys.executable, "-c", driver, str(path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
        )
        codes.append(run.returncode)
        if run.returncode == 1:  # the task failed for good: the driver's result() raised
            break
    # Its first run is not counted (its start was still queued when it killed the
    # process); from the second on each start is committed before the task runs.
    assert codes == [-signal.SIGKILL] * 3 + [1]
    assert [(key, state, attempts) for key, _, state, attempts, _ in rows(path)] == [
        ("poison", "failed", 2)
    ]


def test_a_cancelled_task_has_no_attempt_and_its_key_runs_it_again(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path, journal_results=True)
    pool.submit_with(nap, (0, 0.3), key="busy")
    cancelled = pool.submit_with(square, (3,), key="c")
    assert cancelled.cancel()
    time.sleep(0.5)  # the worker has met the cancelled task
    assert ("c", "journal_tasks:square", "pending", 0, None) in rows(path)
    again = pool.submit_with(square, (3,), key="c")
    assert again is not cancelled
    assert again.result(timeout=10) == 9
    pool.shutdown()
    assert ("c", "journal_tasks:square", "done", 1, None) in rows(path)


def test_a_backlog_beyond_max_pending_is_taken_back_without_waiting(path: Path) -> None:
    pool = real.ThreadedPool("fifo", 1, journal=path)
    pool.submit_with(nap, (0, 0.3), key="busy")
    for n in range(5):
        pool.submit_with(square, (n,), key=f"w{n}")
    pool.shutdown(cancel_futures=True)
    # Five unfinished tasks, room for two: the constructor neither waits nor times out.
    again = real.ThreadedPool("fifo", 1, max_pending=2, submit_timeout=0.05, journal=path)
    again.shutdown()
    assert {state for _, _, state, _, _ in rows(path)} == {"done"}


def test_a_retry_cancelled_at_shutdown_stays_unfinished(path: Path) -> None:
    pool = real.ThreadedPool(
        "fifo",
        1,
        Recovery(max_attempts=5, retry_backoff=0.05),
        retry_exceptions=(KeyError,),
        journal=path,
    )
    retried = pool.submit_with(fail, (1,), key="r")
    pool.submit_with(nap, (0, 0.5), key="busy")
    time.sleep(0.2)  # the first attempt failed; its retry waits behind "busy"
    pool.shutdown(wait=True, cancel_futures=True)
    assert retried.exception() is not None
    assert ("r", "running", 1) in [
        (key, state, attempts) for key, _, state, attempts, _ in rows(path)
    ]


def test_an_sqlite_file_that_looks_like_a_journal_is_refused_unchanged(tmp_path: Path) -> None:
    for name, table in (("app.db", "things (x)"), ("app2.db", "settings (name, value)")):
        other = tmp_path / name
        with sqlite3.connect(other) as db:
            db.execute(f"CREATE TABLE {table}")
            db.execute("PRAGMA user_version=1")
        before = other.read_bytes()
        with pytest.raises(JournalError, match="something else"):
            real.ThreadedPool("fifo", 1, journal=other)
        assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "app2.db"]
