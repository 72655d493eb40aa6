"""``real.run(..., journal=True)``: a journaled program killed for real at the FaultPlan's
pool restarts and started again, its pool resuming from the journal; the model of it;
and what a journal costs, calibrated (:mod:`real.restart_replay`,
:mod:`real.journal_calibration`). Only behaviour is asserted, never speed."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest

import real
import sim
from pool import FaultPlan, Recovery, RunResult, Workload, dists

pytestmark = pytest.mark.timeout(180)

RECOVERY = Recovery(heartbeat_interval=0.05, heartbeat_timeout=0.2, max_attempts=3)


@pytest.fixture(autouse=True)
def tag(monkeypatch: pytest.MonkeyPatch) -> str:
    """A mark in the environment of every program this test starts (and of their
    children), so that programs of other test runs on the machine are not counted."""
    value = uuid.uuid4().hex
    monkeypatch.setenv("POOLBENCH_TEST_TAG", value)
    return value


def programs_alive(tag: str) -> list[int]:
    """Processes this test started (the journaled program, its workers) still running."""
    mark = f"POOLBENCH_TEST_TAG={tag}".encode()
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environment = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in environment.split(b"\0") and state != "Z":
            alive.append(int(entry.name))
    return alive


def busy_workload(seed: int = 7) -> Workload:
    """About 1.2 s of 10 ms sleeps at load 0.5 on 4 workers."""
    return Workload.poisson(200, dists.Exponential(0.01), 240, seed=seed)


def steady_workload(tasks: int = 150) -> Workload:
    """A 30 ms sleep every 10 ms: about three tasks run at any instant."""
    return Workload(
        arrival=np.arange(tasks) * 0.01,
        service=np.full(tasks, 0.03),
        priority=np.arange(tasks) % 2,
        cpu_fraction=np.zeros(tasks),
        affinity=np.full(tasks, -1),
    )


def assert_consistent(result: RunResult, workers: int) -> None:
    """Every lost attempt ran inside the run's lives, and the timeline never shows more
    busy workers than serving ones, nor a negative queue."""
    lost = result.attempts
    if len(lost):
        assert (lost["ready"] <= lost["start"] + 1e-9).all()
        assert (lost["start"] <= lost["stop"]).all()
    timeline = result.timeline
    assert (timeline["queued"] >= 0).all()
    assert (timeline["busy"] <= timeline["workers"]).all()
    assert timeline["workers"].max() <= workers


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_killed_program_resumes_from_its_journal_and_loses_nothing(
    backend: str, tag: str
) -> None:
    wl = steady_workload()
    plan = FaultPlan(pool_restarts=[(0.6, 0.2)])
    result = real.run(wl, "fifo", 4, faults=plan, recovery=RECOVERY, journal=True, backend=backend)
    tasks = result.tasks
    assert tasks["status"].astype(str).eq("done").all(), tasks["status"].value_counts()
    events = result.events
    assert events["kind"].tolist()[:2] == ["pool_crash", "pool_restart"]
    crash, restart = events["time"].tolist()[:2]
    assert 0.6 - 1e-3 <= crash < 1.0  # as planned, or later by a descheduled moment
    assert restart - crash >= 0.2  # the downtime, then the program's own start
    assert len(result.meta["program_starts"]) == 2
    # Nothing ran while the program was down; what started before ended before, or
    # was lost with the process and ran again after the restart.
    started = tasks["start"]
    assert not ((started > crash) & (started < restart)).any()
    lost = result.attempts
    assert len(lost) >= 1  # tasks ran at the kill
    assert (lost["outcome"] == "lost-worker").all()
    assert lost["stop"].tolist() == pytest.approx([crash] * len(lost))
    again = tasks.set_index("task_id").loc[lost["task_id"]]
    assert (again["start"] >= restart).all() and (again["attempts"] >= 2).all()
    # The arrivals of the downtime waited for the restart, and count their wait.
    waited = tasks[(tasks["arrival"] > crash) & (tasks["arrival"] < restart)]
    assert len(waited) > 0 and (waited["start"] >= restart).all()
    summary = result.summary()
    assert summary["lost"] == 0 and summary["completed"] == len(wl)
    assert summary["recovery_time"] >= restart - crash
    assert_consistent(result, 4)
    assert programs_alive(tag) == []


def test_a_restarted_pool_serves_from_its_first_task_when_that_precedes_its_ready_line(
    tmp_path: Path,
) -> None:
    # A worker process answers ready a few ms before the last of them, and the journal's
    # tasks wait for it when the pool opens: it may start one before the program prints
    # its ready instant. The pool served from then (not while the program was down).
    from real.restart_replay import _Replay

    replay = _Replay(steady_workload(4), 2, tmp_path / "spec", tmp_path / "journal")
    replay.resumed = [(0.6, 2.45), (3.0, 4.0)]
    replay.recorder.start[:3] = [0.1, 2.447, 4.2]
    replay.recorder.attempt_log.append((3, 0, 0.0, 2.449, 3.0, "lost-worker"))
    replay._record_restarts()
    restarts = [time for time, kind, *_ in replay.recorder.events if kind == "pool_restart"]
    assert restarts == [2.447, 4.0]
    assert sorted(replay.recorder.worker_changes)[-2:] == [(2.447, 2), (4.0, 2)]


def test_two_restarts_under_priorities_record_each_lost_attempt_once(tag: str) -> None:
    # Class 0 goes first: a class-1 task taken back at the first restart may wait, and
    # the journal still shows its earlier start at the second kill.
    wl = steady_workload(200)
    plan = FaultPlan(pool_restarts=[(0.4, 0.1), (1.6, 0.1)])
    result = real.run(wl, "priority", 2, faults=plan, recovery=RECOVERY, journal=True)
    assert result.summary()["lost"] == 0
    assert result.events["kind"].tolist()[:4] == [
        "pool_crash", "pool_restart", "pool_crash", "pool_restart"
    ]  # fmt: skip
    assert_consistent(result, 2)
    assert programs_alive(tag) == []


@pytest.mark.timeout(60)
def test_a_restart_planned_after_the_work_is_done_does_not_hold_the_run(tag: str) -> None:
    wl = steady_workload(20)
    plan = FaultPlan(pool_restarts=[(600.0, 1.0)])
    result = real.run(wl, "fifo", 2, faults=plan, recovery=RECOVERY, journal=True)
    assert result.summary()["completed"] == 20
    assert "pool_crash" not in result.events["kind"].tolist()
    assert programs_alive(tag) == []


def test_no_program_is_left_behind_when_the_replay_times_out(tag: str) -> None:
    wl = Workload.poisson(50, dists.Exponential(0.5), 20, seed=1)
    result = real.run(wl, "fifo", 1, recovery=RECOVERY, journal=True, timeout=1.5)
    summary = result.summary()
    assert summary["lost"] > 0
    assert programs_alive(tag) == []


def test_the_model_of_a_journaled_restart_uses_the_calibrated_costs() -> None:
    overhead = real.calibrate(samples=50, journal=True)
    assert overhead.journal_submit > 0
    assert overhead.journal_replay > 0
    assert overhead.program_start > 0.05  # a new interpreter with its imports
    wl = busy_workload()
    plan = FaultPlan(pool_restarts=[(0.6, 0.2)])
    predicted = sim.run(
        wl, "fifo", 4, faults=plan, recovery=RECOVERY, overhead=overhead, journal=True
    )
    restart = predicted.events.query("kind == 'pool_restart'")["time"].item()
    tasks = predicted.tasks
    held = int(((tasks["arrival"] < 0.6) & (tasks["end"] > 0.6)).sum())  # the journal's
    assert held > 0
    expected = 0.6 + 0.2 + overhead.program_start + held * overhead.journal_replay
    assert restart == pytest.approx(expected, abs=1e-9)
    assert predicted.summary()["lost"] == 0


def test_calibrating_the_journal_leaves_no_program_or_file(tag: str) -> None:
    folder = Path(tempfile.gettempdir())
    before = set(folder.iterdir())
    real.calibrate(samples=20, journal=True)
    left = [path for path in set(folder.iterdir()) - before if "poolbench" in path.name]
    assert left == []
    assert programs_alive(tag) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"faults": FaultPlan(pool_restarts=[(0.1, 0.1)])}, "pool_restarts need journal=True"),
        ({"journal": True, "perform": print}, "perform: a journaled replay"),
        ({"journal": True, "faults": FaultPlan(crashes=[(0.1, 0)])}, "pool_restarts only"),
        ({"journal": True, "faults": FaultPlan(task_failure_prob=0.1)}, "pool_restarts only"),
        ({"journal": "yes"}, "journal must be True or False"),
    ],
)
def test_bad_journaled_replays_are_refused_before_anything_runs(
    options: dict[str, object], message: str, tag: str
) -> None:
    with pytest.raises(ValueError, match=message):
        real.run(busy_workload(), "fifo", 2, **options)  # type: ignore[arg-type]
    assert programs_alive(tag) == []
