"""Experiment grids on Dask: same results as serial and ``--jobs``, failures reported and
retried, a lost worker loses no cell, real cells run alone per host and name it.

The clusters are small ``LocalCluster``s: two single-threaded worker processes, no
dashboard, quiet logs. Tests of failures and real cells use an in-process cluster
(``processes=False``) so that a test can swap an experiment's ``run_cell`` for an
instrumented one that its workers see.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments import dask_backend, dask_grid, execution, framework, storage
from experiments.framework import Cell, Context, Experiment, Row

ROOT = Path(__file__).resolve().parent.parent
SEED = 11
QUIET = logging.ERROR


def _grid(queues: tuple[str, ...], loads: tuple[float, ...], tasks: int, runs: int) -> list[Cell]:
    return [
        {"queue": queue, "load": load, "tasks": tasks, "runs": runs}
        for queue in queues
        for load in loads
    ]


def _no_charts(results: pd.DataFrame, folder: Path) -> list[Path]:
    return []


def _theory(cells: list[Cell]) -> Experiment:
    """The ``theory`` experiment (so workers find its ``run_cell`` by name) on ``cells``."""
    from experiments import theory

    return dataclasses.replace(theory.EXPERIMENT, grid=lambda quick: cells, charts=_no_charts)


SMALL = _grid(("mm1", "mm4", "md1", "prio_mm4"), (0.5, 0.8), tasks=3_000, runs=2)


def _run(
    experiment: Experiment,
    out: Path,
    reps: int = 2,
    jobs: int = 1,
    dask: dask_backend.DaskBackend | None = None,
) -> Path:
    return framework.run_experiment(
        experiment, out, quick=True, seed=SEED, reps=reps, jobs=jobs, progress=False, dask=dask
    )


def _cells(folder: Path) -> dict[str, pd.DataFrame]:
    return {path.name: pd.read_parquet(path) for path in sorted((folder / "cells").glob("*"))}


def _assert_same_results(folder: Path, reference: Path) -> None:
    """The same results file, byte for byte, the same summary and the same cell files."""
    assert (folder / "results.parquet").read_bytes() == (reference / "results.parquet").read_bytes()
    pd.testing.assert_frame_equal(
        pd.read_parquet(folder / "results.parquet"), pd.read_parquet(reference / "results.parquet")
    )
    assert (folder / "summary.csv").read_text() == (reference / "summary.csv").read_text()
    cells, expected = _cells(folder), _cells(reference)
    assert list(cells) == list(expected)
    for name, frame in cells.items():
        pd.testing.assert_frame_equal(frame, expected[name])
        assert (folder / "cells" / name).read_bytes() == (reference / "cells" / name).read_bytes()


def _local_cluster(**options: Any) -> Any:
    distributed = pytest.importorskip("distributed")
    settings: dict[str, Any] = {
        "n_workers": 2,
        "threads_per_worker": 1,
        "dashboard_address": ":0",  # any free port: None still binds 8787 for /health
        "silence_logs": QUIET,
        "processes": True,
        "resources": dask_grid.EXCLUSIVE,
    }
    return distributed.LocalCluster(**(settings | options))


@pytest.fixture(scope="module", autouse=True)
def fixed_code_version() -> Iterator[None]:
    """One code version for the whole module: cell file names include it, and other people
    editing the checkout during the run must not make the backends' files differ."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage, "code_version", lambda: "test-dask")
        yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A two-process LocalCluster shared by the tests that leave it intact."""
    with _local_cluster() as local:
        yield local


@pytest.fixture(scope="module")
def serial_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(_theory(SMALL), tmp_path_factory.mktemp("serial"))


# -------------------------------------------------------------------- identical results


@pytest.mark.timeout(90)
def test_serial_jobs_and_dask_give_identical_results(
    serial_small: Path, cluster: Any, tmp_path: Path
) -> None:
    experiment = _theory(SMALL)
    assert len(_cells(serial_small)) == len(SMALL) * 2
    _assert_same_results(_run(experiment, tmp_path / "jobs", jobs=2), serial_small)
    with dask_backend.connect_dask(cluster.scheduler_address) as backend:
        on_cluster = _run(experiment, tmp_path / "cluster", dask=backend)
    _assert_same_results(on_cluster, serial_small)
    with dask_backend.connect_dask("local", workers=2) as backend:
        assert len(backend.client.scheduler_info()["workers"]) == 2
        assert len(backend.exclusive_workers()) == 2
        embedded = _run(experiment, tmp_path / "local", dask=backend)
    _assert_same_results(embedded, serial_small)
    assert backend.cluster.status.name == "closed"


@pytest.mark.timeout(60)
def test_adding_cells_changes_no_existing_seed(
    serial_small: Path, cluster: Any, tmp_path: Path
) -> None:
    bigger = [*SMALL, *_grid(("mg1",), (0.5, 0.8), tasks=3_000, runs=2)]
    with dask_backend.connect_dask(cluster.scheduler_address) as backend:
        folder = _run(_theory(bigger), tmp_path, dask=backend)
    results = pd.read_parquet(folder / "results.parquet")
    before = pd.read_parquet(serial_small / "results.parquet")
    pd.testing.assert_frame_equal(results.iloc[: len(before)].reset_index(drop=True), before)
    assert set(results["queue"]) == {"mm1", "mm4", "md1", "prio_mm4", "mg1"}


@pytest.mark.timeout(60)
def test_a_resumed_dask_run_skips_saved_cells(
    serial_small: Path, cluster: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "theory"
    (folder / "cells").mkdir(parents=True)
    saved = sorted((serial_small / "cells").glob("*.parquet"))
    for path in saved[: len(saved) // 2]:
        (folder / "cells" / path.name).write_bytes(path.read_bytes())
    kept = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").iterdir()}
    with dask_backend.connect_dask(cluster.scheduler_address) as backend:
        _run(_theory(SMALL), tmp_path, dask=backend)
    assert {
        p.name: p.stat().st_mtime_ns for p in (folder / "cells").iterdir() if p.name in kept
    } == kept
    _assert_same_results(folder, serial_small)


# ------------------------------------------------------------- the backend is explicit


class _Recording:
    """A cell runner that records the cells it is given and runs none of them."""

    def __init__(self) -> None:
        self.cells: list[Cell] = []

    def run(self, experiment: Experiment, todo: execution.Todo, version: str, bar: Any) -> None:
        self.cells.extend(cell for (cell, _), _ in todo)


class _Client:
    """Stands in for a Dask client that is never used, only closed."""

    closed = False

    def close(self) -> None:
        self.closed = True


def test_cells_go_to_a_backend_only_where_it_is_passed(tmp_path: Path) -> None:
    """A ``with`` block of a backend only closes it: a run inside the block that is not
    given the backend runs here (were the unusable client used, the run would fail)."""
    from experiments import theory

    cell: Cell = {"queue": "mm1", "load": 0.5, "tasks": 500, "runs": 1}
    tasks = [(cell, Context(1, 0, True))]
    client = _Client()
    with dask_backend.DaskBackend("tcp://127.0.0.1:9", client):
        [here] = execution.run_cells(theory.EXPERIMENT, tmp_path / "here", tasks, "v", 1, False)
    assert here.is_file() and client.closed
    runner = _Recording()
    [sent] = execution.run_cells(theory.EXPERIMENT, tmp_path / "sent", tasks, "v", 1, False, runner)
    assert runner.cells == [cell] and not sent.exists()


# ------------------------------------------------------------------ a worker is lost


@pytest.mark.timeout(120)
def test_killing_a_worker_mid_grid_loses_no_cell(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    cells = _grid(("mm1", "mm4", "md1"), (0.5, 0.7, 0.8, 0.9), tasks=15_000, runs=1)
    experiment = _theory(cells)
    reference = _run(experiment, tmp_path / "serial", reps=1)
    killed: dict[str, Any] = {}

    def kill_a_busy_worker(scheduler: str, folder: Path) -> None:
        with distributed.Client(scheduler) as client:
            pids = client.run(os.getpid)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = len(list(folder.glob("*.parquet"))) if folder.is_dir() else 0
                busy = [w for w, keys in client.processing().items() if keys]
                if done >= 1 and busy:
                    killed.update(worker=busy[0], done=done)
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed["pid"] = pids[busy[0]]
                    return
                time.sleep(0.01)

    with _local_cluster() as local:
        folder = tmp_path / "cluster"
        killer = threading.Thread(
            target=kill_a_busy_worker,
            args=(local.scheduler_address, folder / experiment.name / "cells"),
        )
        with dask_backend.connect_dask(local.scheduler_address) as backend:
            killer.start()
            result = _run(experiment, folder, reps=1, dask=backend)
        killer.join()
    assert "pid" in killed, "no worker was killed mid-grid"
    assert killed["done"] < len(cells), "the grid had finished before the kill"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    _assert_same_results(result, reference)


# ------------------------------------------------------- failures: reported and retried


@pytest.fixture
def threads_cluster() -> Iterator[Any]:
    """An in-process cluster: its workers see what a test patches in this process."""
    with _local_cluster(processes=False, protocol="tcp://") as local:
        yield local


class Flaky:
    """A ``run_cell`` that fails the first ``failures[queue]`` times for a queue."""

    def __init__(self, run_cell: Any, failures: dict[str, int]) -> None:
        self.run_cell, self.failures = run_cell, failures
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, cell: Cell, context: Context) -> list[Row]:
        with self.lock:
            calls = self.calls[cell["queue"]] = self.calls.get(cell["queue"], 0) + 1
        if calls <= self.failures.get(cell["queue"], 0):
            raise OSError(f"injected failure {calls} of cell {cell['queue']}")
        rows: list[Row] = self.run_cell(cell, context)
        return rows


def _patch_run_cell(monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any) -> Experiment:
    """Make the registered experiment ``name`` (what workers look up) run ``changes``."""
    import importlib

    module = importlib.import_module(f"experiments.{name}")
    patched: Experiment = dataclasses.replace(module.EXPERIMENT, **changes)
    monkeypatch.setattr(module, "EXPERIMENT", patched)
    return patched


@pytest.mark.timeout(60)
def test_a_failed_cell_is_reported_and_retried(
    threads_cluster: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from experiments import theory

    cells = _grid(("mm1", "md1"), (0.5,), tasks=2_000, runs=1)
    flaky = Flaky(theory.run_cell, {"md1": dask_grid.RETRIES})
    _patch_run_cell(monkeypatch, "theory", run_cell=flaky)
    with dask_backend.connect_dask(threads_cluster.scheduler_address) as backend:
        folder = _run(_theory(cells), tmp_path, reps=1, dask=backend)
    reports = [line for line in capsys.readouterr().err.splitlines() if "failed" in line]
    assert len(reports) == dask_grid.RETRIES, reports
    for number, line in enumerate(reports, start=1):
        assert framework.cell_key(cells[1]) in line and '"queue": "md1"' in line, line
        assert f"injected failure {number}" in line
        assert f"retry {number} of {dask_grid.RETRIES}" in line
    assert flaky.calls == {"mm1": 1, "md1": dask_grid.RETRIES + 1}
    results = pd.read_parquet(folder / "results.parquet")
    assert list(results["queue"].unique()) == ["mm1", "md1"]


class FlakyCell:
    """A ``run_cell`` that fails the first ``times`` calls of the cells for which
    ``fails(cell)`` holds, and records every call's cell."""

    def __init__(self, run_cell: Any, fails: Any, times: int) -> None:
        self.run_cell, self.fails, self.times = run_cell, fails, times
        self.calls: list[Cell] = []
        self.lock = threading.Lock()

    def __call__(self, cell: Cell, context: Context) -> list[Row]:
        with self.lock:
            self.calls.append(cell)
            calls = self.calls.count(cell)
        if self.fails(cell) and calls <= self.times:
            raise OSError(f"injected failure {calls} of {cell}")
        rows: list[Row] = self.run_cell(cell, context)
        return rows


def _record_groups(monkeypatch: pytest.MonkeyPatch) -> list[list[Cell]]:
    """Record the cells of every task the Dask grid submits."""
    from experiments import batching

    groups: list[list[Cell]] = []
    take = batching.Batches.take

    def recording_take(self: batching.Batches, slots: int) -> list[batching.PendingCell]:
        group = take(self, slots)
        groups.append([pending.cell for pending in group])
        return group

    monkeypatch.setattr(batching.Batches, "take", recording_take)
    return groups


MANY = _grid(("mm1",), tuple(round(0.3 + 0.01 * i, 2) for i in range(40)), tasks=2_000, runs=1)


@pytest.fixture(scope="module")
def serial_many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(_theory(MANY), tmp_path_factory.mktemp("serial_many"), reps=1)


@pytest.mark.timeout(60)
def test_a_failed_cell_in_a_group_costs_its_group_mates_nothing(
    serial_many: Path,
    threads_cluster: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from experiments import theory

    culprit = MANY[20]
    flaky = FlakyCell(theory.run_cell, lambda cell: cell == culprit, times=1)
    _patch_run_cell(monkeypatch, "theory", run_cell=flaky)
    groups = _record_groups(monkeypatch)
    with dask_backend.connect_dask(threads_cluster.scheduler_address) as backend:
        folder = _run(_theory(MANY), tmp_path / "cluster", reps=1, dask=backend)
    first = next(group for group in groups if culprit in group)
    assert len(first) > 1, groups  # it failed inside a group ...
    assert [culprit] in groups  # ... and ran again alone
    assert sorted(map(str, flaky.calls)) == sorted(map(str, [*MANY, culprit]))
    reports = [line for line in capsys.readouterr().err.splitlines() if "failed" in line]
    assert len(reports) == 1 and "retry 1 of" in reports[0], reports
    _assert_same_results(folder, serial_many)


@pytest.mark.timeout(60)
def test_a_task_that_fails_as_a_whole_reruns_its_cells_alone_uncharged(
    serial_many: Path,
    threads_cluster: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    culprit = MANY[20]
    run_cells = dask_grid._dask_cells

    def lost_with_the_culprit(name: str, cells: list[tuple[Cell, Context]]) -> Any:
        if len(cells) > 1 and any(cell == culprit for cell, _ in cells):
            raise OSError("the task's worker died")  # as a KilledWorker would reach us
        return run_cells(name, cells)

    monkeypatch.setattr(dask_grid, "_dask_cells", lost_with_the_culprit)
    groups = _record_groups(monkeypatch)
    with dask_backend.connect_dask(threads_cluster.scheduler_address) as backend:
        folder = _run(_theory(MANY), tmp_path / "cluster", reps=1, dask=backend)
    failed = next(group for group in groups if culprit in group)
    assert len(failed) > 1, groups
    after = groups[groups.index(failed) + 1 :]
    for cell in failed:
        assert [cell] in after, f"{cell} did not run again alone"
    reports = capsys.readouterr().err.splitlines()
    assert len(reports) == 1, reports
    assert f"a task of {len(failed)} cells failed" in reports[0]
    assert "OSError: the task's worker died" in reports[0]
    _assert_same_results(folder, serial_many)


def test_an_error_that_cannot_be_unpickled_travels_as_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Were it sent as is, the client could not load the result (in a process cluster
    the task's result would never arrive and the run would wait for ever)."""
    import pickle

    pytest.importorskip("distributed")  # it makes the exception classes existing now load

    class TwoArgumentError(Exception):  # made later, as an experiment's own class would be
        def __init__(self, first: object, second: object) -> None:
            super().__init__(f"{first} and {second}")

    TwoArgumentError.__qualname__ = "TwoArgumentError"  # picklable by reference
    monkeypatch.setitem(globals(), "TwoArgumentError", TwoArgumentError)
    error = TwoArgumentError("md1", "no way back")
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(error))
    sent = dask_grid._sendable(error)
    assert type(sent) is RuntimeError
    assert str(sent) == "TwoArgumentError: md1 and no way back"
    assert pickle.loads(pickle.dumps(sent)).args == sent.args
    plain = OSError("disk full")
    assert dask_grid._sendable(plain) is plain


@pytest.mark.timeout(60)
def test_a_cell_that_keeps_failing_stops_the_run_and_is_named(
    threads_cluster: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from experiments import theory

    cells = _grid(("mm1", "md1"), (0.5,), tasks=2_000, runs=1)
    flaky = Flaky(theory.run_cell, {"md1": 1_000})
    _patch_run_cell(monkeypatch, "theory", run_cell=flaky)
    with (
        dask_backend.connect_dask(threads_cluster.scheduler_address) as backend,
        pytest.raises(RuntimeError) as raised,
    ):
        _run(_theory(cells), tmp_path, reps=1, dask=backend)
    message = str(raised.value)
    assert framework.cell_key(cells[1]) in message and '"queue": "md1"' in message
    assert f"failed {dask_grid.RETRIES + 1} times" in message
    assert "injected failure 3" in message
    assert flaky.calls["md1"] == dask_grid.RETRIES + 1
    assert len([line for line in capsys.readouterr().err.splitlines() if "retry" in line]) == 2
    assert not (tmp_path / "theory" / "results.parquet").exists()
    assert not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------------------------------- real cells


class Measuring:
    """A stand-in for a real measurement: sleeps, and records when it ran."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, cell: Cell, context: Context) -> list[Row]:
        start = time.monotonic()
        time.sleep(0.05)
        with self.lock:
            self.spans.append((start, time.monotonic()))
        return [{"backend": "real", "metric": "throughput", "value": float(cell["i"])}]


@pytest.mark.timeout(60)
def test_real_cells_run_alone_per_host_and_record_it(
    threads_cluster: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    measuring = Measuring()
    cells: list[Cell] = [{"i": i} for i in range(6)]
    real = _patch_run_cell(
        monkeypatch,
        "gil",
        run_cell=measuring,
        grid=lambda quick: cells,
        charts=_no_charts,
        needs_real=True,
    )
    assert len(threads_cluster.workers) == 2
    version = "v"
    tasks = [(cell, Context(framework.cell_seed(SEED, cell, 0), 0, True)) for cell in cells]
    with dask_backend.connect_dask(threads_cluster.scheduler_address) as backend:
        assert len(backend.exclusive_workers()) == 2
        paths = execution.run_cells(real, tmp_path / "dask", tasks, version, 1, False, backend)
    spans = sorted(measuring.spans)
    assert len(spans) == len(cells)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two real cells measured at once on one host"
    serial = execution.run_cells(real, tmp_path / "serial", tasks, version, 2, False)
    for frames in (
        [pd.read_parquet(path) for path in paths],
        [pd.read_parquet(path) for path in serial],
    ):
        results = pd.concat(frames, ignore_index=True)
        assert (results["host"] == socket.gethostname()).all()
        assert results["value"].tolist() == [float(i) for i in range(6)]


@pytest.mark.timeout(60)
def test_real_cells_need_a_worker_with_the_exclusive_resource(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = _patch_run_cell(monkeypatch, "gil", run_cell=Measuring(), needs_real=True)
    cell: Cell = {"i": 0}
    tasks = [(cell, Context(1, 0, True))]
    with (
        _local_cluster(processes=False, protocol="tcp://", resources=None) as plain,
        dask_backend.connect_dask(plain.scheduler_address) as backend,
    ):
        assert backend.exclusive_workers() == []
        with pytest.raises(RuntimeError, match="exclusive=1"):
            execution.run_cells(real, tmp_path, tasks, "v", 1, False, backend)
    assert not list(tmp_path.rglob("*.parquet"))


@pytest.mark.timeout(60)
def test_cli_refuses_a_real_experiment_without_exclusive_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments.__main__ import main

    with (
        _local_cluster(processes=False, protocol="tcp://", resources=None) as plain,
        pytest.raises(SystemExit) as exited,
    ):
        args = ["run", "predicted_vs_measured", "--dask", plain.scheduler_address]
        main([*args, "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "exclusive=1" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------- the CLI


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", "experiments", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(120)
def test_cli_runs_on_a_cluster(cluster: Any, tmp_path: Path) -> None:
    done = cli(
        "run", "theory", "--quick", "--reps", "1", "--no-progress", "--out", "out",
        "--dask", cluster.scheduler_address,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "out" / "theory"
    from experiments import theory

    assert len(list((folder / "cells").glob("*.parquet"))) == len(theory.grid(True))
    assert (folder / "results.parquet").is_file() and list(folder.glob("*.png"))


BAD_DASK = {
    "not an address": (["--dask", "somewhere"], "--dask must be 'local'"),
    "port out of range": (["--dask", "tcp://host:70000"], "--dask must be 'local'"),
    "jobs with a remote cluster": (["--dask", "tcp://host:8786", "--jobs", "2"], "--jobs"),
    "no scheduler there": (["--dask", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "says"), list(BAD_DASK.values()), ids=list(BAD_DASK))
def test_bad_dask_option_exits_2_with_one_line(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dask = pytest.importorskip("dask")
    from experiments.__main__ import main

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(SystemExit) as exited,
    ):
        main(["run", "theory", "--out", str(tmp_path / "out"), *args])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and says in captured.err, captured.err
    assert captured.out == "" and list(tmp_path.iterdir()) == []


def test_without_dask_installed_the_message_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from experiments.__main__ import main

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(SystemExit) as exited:
        main(["run", "theory", "--dask", "local", "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "pip install 'poolbench[dask]'" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_the_serial_path_imports_no_dask(tmp_path: Path) -> None:
    script = f"""
import sys
from experiments.__main__ import main
main(["list"])
from experiments import execution, framework, theory
cells = [{{"queue": "mm1", "load": 0.5, "tasks": 500, "runs": 1}}]
tasks = [(cells[0], framework.Context(1, 0, True))]
execution.run_cells(theory.EXPERIMENT, __import__("pathlib").Path({str(tmp_path)!r}), tasks,
                    "v", 1, False)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
assert not loaded, loaded
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.rglob("*.parquet"))) == 1
