"""How cells are grouped into Dask tasks: untimed cells alone, then groups of about
``task_seconds``, shrinking toward the end; cells to run again first and alone; grid order
otherwise; no cell lost or handed out twice."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.batching import TAIL_SHARE, Batches, PendingCell
from experiments.framework import Context


def _cells(count: int) -> list[PendingCell]:
    return [PendingCell({"i": i}, Context(i, 0, True), Path(f"{i}.parquet")) for i in range(count)]


def _indices(group: list[PendingCell]) -> list[int]:
    return [int(pending.cell["i"]) for pending in group]


def test_cells_go_alone_until_one_is_timed() -> None:
    batches = Batches(_cells(100))
    assert _indices(batches.take(slots=2)) == [0]
    assert _indices(batches.take(slots=2)) == [1]
    batches.record(0.2)
    assert batches.size(slots=2) == 5  # 1 s of 0.2 s cells


def test_group_size_follows_the_mean_cell_time() -> None:
    batches = Batches(_cells(1_000), task_seconds=1.0)
    for seconds in (0.1, 0.3):  # mean 0.2 s
        batches.record(seconds)
    assert batches.size(slots=4) == 5
    batches.record(2.0)  # mean 0.8 s: cells longer than half a task go alone
    assert batches.size(slots=4) == 1


def test_groups_shrink_toward_the_end() -> None:
    batches = Batches(_cells(40))
    batches.record(0.01)  # 100 cells a second: only the tail rule limits the size
    sizes = []
    while batches:
        waiting = len(batches)
        group = batches.take(slots=2)
        assert len(group) == max(1, waiting // (TAIL_SHARE * 2))
        sizes.append(len(group))
    assert sizes[0] == 10 and sizes[-4:] == [1, 1, 1, 1]
    assert sizes == sorted(sizes, reverse=True)


def test_max_cells_caps_a_group() -> None:
    batches = Batches(_cells(100), max_cells=1)
    batches.record(0.001)
    assert batches.size(slots=1) == 1


def test_a_retried_cell_goes_alone_and_first() -> None:
    batches = Batches(_cells(100))
    batches.record(0.1)
    group = batches.take(slots=1)
    assert _indices(group) == list(range(10))
    failed = group[3]
    failed.failures = 1
    batches.requeue([failed])
    assert _indices(batches.take(slots=1)) == [3]
    assert _indices(batches.take(slots=1)) == list(range(10, 20))


def test_the_cells_of_a_failed_task_go_alone_in_their_order() -> None:
    batches = Batches(_cells(100))
    batches.record(0.1)
    group = batches.take(slots=1)
    for pending in group:
        pending.alone = True
    batches.requeue(group)
    assert [_indices(batches.take(slots=1)) for _ in range(10)] == [[i] for i in range(10)]
    assert _indices(batches.take(slots=1)) == list(range(10, 20))


@pytest.mark.parametrize(
    ("options", "name"), [({"max_cells": 0}, "max_cells"), ({"task_seconds": 0.0}, "task_seconds")]
)
def test_bad_options_name_the_parameter(options: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Batches(_cells(1), **options)  # type: ignore[arg-type]


@given(
    count=st.integers(0, 300),
    slots=st.integers(1, 16),
    seconds=st.lists(st.floats(0.0, 5.0), max_size=20),
    max_cells=st.none() | st.integers(1, 50),
    fails=st.lists(st.booleans(), max_size=400),
    whole=st.lists(st.booleans(), max_size=100),
)
def test_every_cell_succeeds_once_and_retries_go_alone(
    count: int,
    slots: int,
    seconds: list[float],
    max_cells: int | None,
    fails: list[bool],
    whole: list[bool],
) -> None:
    """Drive the batches as the Dask grid does: a cell may fail (run again, charged), a
    whole task may fail (its cells run again alone); every cell must succeed exactly once,
    and cells that failed or must run alone never share a task."""
    batches = Batches(_cells(count), max_cells=max_cells)
    succeeded: list[int] = []
    durations, cell_fails, task_fails = iter(seconds), iter(fails), iter(whole)
    while batches:
        group = batches.take(slots)
        assert 1 <= len(group) <= (max_cells or count)
        if len(group) > 1:
            assert not any(pending.failures or pending.alone for pending in group)
            if next(task_fails, False):
                for pending in group:
                    pending.alone = True
                batches.requeue(group)
                continue
        again = []
        for pending in group:
            if pending.failures < 2 and next(cell_fails, False):
                pending.failures += 1
                again.append(pending)
                continue
            succeeded.append(int(pending.cell["i"]))
            duration = next(durations, None)
            if duration is not None:
                batches.record(duration)
        batches.requeue(again)
    assert sorted(succeeded) == list(range(count))
    assert batches.take(slots) == [] and batches.size(slots) == 0


def test_without_failures_cells_go_out_in_grid_order() -> None:
    batches = Batches(_cells(250))
    handed: list[int] = []
    for seconds in itertools.cycle((0.01, 0.3, 0.05)):
        if not batches:
            break
        group = batches.take(slots=3)
        handed += _indices(group)
        batches.record(seconds)
    assert handed == list(range(250))
