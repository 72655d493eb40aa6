"""ThreadedPool(record=True): one row per finished task, bounded memory, files.

No test asserts speed: CPU-time checks compare a task that computes with one that
sleeps, with wide margins.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import real
from real.task_trace import COLUMNS

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_thread_left")]


def spin(seconds: float) -> None:
    """Hold the CPU (and the interpreter lock) for ``seconds`` of thread CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def fail() -> None:
    raise KeyError("boom")


@pytest.fixture
def recorded() -> Iterator[real.ThreadedPool]:
    pool = real.ThreadedPool("priority", workers=2, record=True)
    yield pool
    pool.shutdown()


def test_one_row_per_task_with_its_timings(recorded: real.ThreadedPool) -> None:
    futures = [recorded.submit_with(spin, (0.02,), priority=1) for _ in range(3)]
    futures += [recorded.submit(time.sleep, 0.02) for _ in range(3)]
    futures.append(recorded.submit_with(fail, priority=2))
    for future in futures[:-1]:
        future.result(timeout=30)
    with pytest.raises(KeyError):
        futures[-1].result(timeout=30)
    trace = recorded.trace()
    assert list(trace.columns) == list(COLUMNS)
    assert trace["task_id"].tolist() == list(range(7))
    assert trace["status"].tolist() == ["completed"] * 6 + ["failed"]
    assert trace["priority"].tolist() == [1, 1, 1, 0, 0, 0, 2]
    assert (trace["attempts"] == 1).all() and (trace["pool_workers"] == 2).all()
    assert (trace["submitted"] <= trace["started"]).all()
    assert (trace["started"] <= trace["ended"]).all()
    assert set(trace["worker"]) <= {0, 1}
    computing, sleeping = trace["cpu_time"][:3], trace["cpu_time"][3:6]
    assert (computing >= 0.015).all(), computing.tolist()
    assert (sleeping < 0.01).all(), sleeping.tolist()
    assert ((trace["ended"] - trace["started"])[3:6] >= 0.019).all()


def test_retried_and_cancelled_tasks_are_recorded() -> None:
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("first try")
        return "ok"

    gate = threading.Event()
    pool = real.ThreadedPool("fifo", 1, record=True, retry_exceptions=(TimeoutError,))
    try:
        assert pool.submit(flaky).result(timeout=30) == "ok"
        blocker = pool.submit(gate.wait, 30)
        queued = pool.submit(spin, 0.0)
        assert queued.cancel()
        gate.set()
        blocker.result(timeout=30)
    finally:
        gate.set()
        pool.shutdown()
    trace = pool.trace().set_index("task_id")
    assert trace.loc[0, "attempts"] == 2 and trace.loc[0, "status"] == "completed"
    assert trace.loc[2, "status"] == "cancelled"
    assert pd.isna(trace.loc[2, "started"])


def test_memory_is_bounded_oldest_rows_dropped_and_counted() -> None:
    with real.ThreadedPool("fifo", 1, record=True, max_rows=5) as pool:
        for task in range(12):
            pool.submit(int, task).result(timeout=30)
    trace = pool.trace()
    assert trace["task_id"].tolist() == [7, 8, 9, 10, 11]
    assert trace.attrs["dropped"] == 7


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_save_trace_round_trips(tmp_path: Path, suffix: str) -> None:
    with real.ThreadedPool("fifo", 2, record=True) as pool:
        for task in range(4):
            pool.submit(int, task).result(timeout=30)
    path = pool.save_trace(tmp_path / f"trace{suffix}")
    read = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    pd.testing.assert_frame_equal(read, pool.trace(), check_dtype=False)
    assert [p.name for p in tmp_path.iterdir()] == [f"trace{suffix}"]


def test_without_record_there_is_no_trace(tmp_path: Path) -> None:
    with real.ThreadedPool("fifo", 1) as pool:
        pool.submit(int, 1).result(timeout=30)
        with pytest.raises(RuntimeError, match="record=True"):
            pool.trace()


def test_bad_recording_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        real.ThreadedPool("fifo", 1, record=True, max_rows=0)
    with pytest.raises(ValueError, match="record"):
        real.ThreadedPool("fifo", 1, record="yes")  # type: ignore[arg-type]
    with real.ThreadedPool("fifo", 1, record=True) as pool, pytest.raises(ValueError, match="path"):
        pool.save_trace(tmp_path / "trace.txt")
    assert list(tmp_path.iterdir()) == []
