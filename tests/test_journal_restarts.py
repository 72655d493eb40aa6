"""``real.run(..., journal=True)``: a journaled program killed for real at the FaultPlan's
pool restarts and started again, its pool resuming from the journal; the model of it;
and what a journal costs, calibrated (:mod:`real.restart_replay`,
:mod:`real.journal_calibration`). Only behaviour is asserted, never speed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import real
import sim
from pool import FaultPlan, Recovery, Workload, dists

pytestmark = pytest.mark.timeout(180)

RECOVERY = Recovery(heartbeat_interval=0.05, heartbeat_timeout=0.2, max_attempts=3)


def programs_alive() -> list[int]:
    """Processes of the journaled program (or its workers) still running."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"real.journal_program" in command or b"poolbench-restart-" in command:
            alive.append(int(entry.name))
    return alive


def busy_workload(seed: int = 7) -> Workload:
    """About 1.2 s of 10 ms sleeps at load 0.5 on 4 workers."""
    return Workload.poisson(200, dists.Exponential(0.01), 240, seed=seed)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_killed_program_resumes_from_its_journal_and_loses_nothing(backend: str) -> None:
    wl = busy_workload()
    plan = FaultPlan(pool_restarts=[(0.6, 0.2)])
    result = real.run(wl, "fifo", 4, faults=plan, recovery=RECOVERY, journal=True, backend=backend)
    tasks = result.tasks
    assert tasks["status"].astype(str).eq("done").all(), tasks["status"].value_counts()
    events = result.events
    assert events["kind"].tolist()[:2] == ["pool_crash", "pool_restart"]
    crash, restart = events["time"].tolist()[:2]
    assert crash == pytest.approx(0.6, abs=0.1)
    assert restart - crash >= 0.2  # the downtime, then the program's own start
    assert len(result.meta["program_starts"]) == 2
    # Nothing ran while the program was down; what started before ended before, or
    # was lost with the process and ran again after the restart.
    started = tasks["start"]
    assert not ((started > crash) & (started < restart)).any()
    lost = result.attempts
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
    assert programs_alive() == []


def test_no_program_is_left_behind_when_the_replay_times_out() -> None:
    wl = Workload.poisson(50, dists.Exponential(0.5), 20, seed=1)
    result = real.run(wl, "fifo", 1, recovery=RECOVERY, journal=True, timeout=1.5)
    summary = result.summary()
    assert summary["lost"] > 0
    assert programs_alive() == []


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


def test_calibrating_the_journal_leaves_no_program_or_file() -> None:
    folder = Path(tempfile.gettempdir())
    before = set(folder.iterdir())
    real.calibrate(samples=20, journal=True)
    left = [path for path in set(folder.iterdir()) - before if "poolbench" in path.name]
    assert left == []
    assert programs_alive() == []


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
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        real.run(busy_workload(), "fifo", 2, **options)  # type: ignore[arg-type]
    assert programs_alive() == []
