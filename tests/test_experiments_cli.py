"""The experiments command line and framework, for every registered experiment.

``python -m experiments list`` names them all; every available experiment (new ones are
picked up from ``experiments.registry``) gets a ``--quick`` smoke run whose folder is
checked: files, the tidy schema, metadata, a resumed rerun that skips saved cells,
``report`` redrawing the charts, and for simulation-only experiments bit-for-bit
reproducibility from the seed. Bad input must exit 2 with a one-line message and leave
nothing behind.

The smoke runs of experiments that measure the real pool take real time (about half a
minute each) and are marked ``slow``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from experiments import framework, registry, storage
from experiments.framework import Experiment

ROOT = Path(__file__).resolve().parent.parent
AVAILABLE = registry.available()
SEED = 7
TIDY_COLUMNS = ("backend", "metric", "value", "cell", "seed", "replication")
ROW_KEYS = ["cell", "replication", "backend", "metric"]


def cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m experiments ARGS`` in a fresh interpreter, run from ``cwd``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "experiments", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _params() -> list[object]:
    return [
        pytest.param(name, marks=[pytest.mark.slow] if registry.get(name).needs_real else [])
        for name in AVAILABLE
    ]


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _mtimes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.glob("*.parquet"))}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(ROW_KEYS, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------ list


def test_list_names_every_available_experiment(tmp_path: Path) -> None:
    done = cli("list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert listed == AVAILABLE
    assert AVAILABLE, "no experiment is registered"
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- smoke runs


@dataclass(frozen=True)
class QuickRun:
    """One ``run NAME --quick`` into a fresh folder, as the tests below find it."""

    name: str
    experiment: Experiment
    out: Path
    folder: Path
    seconds: float
    stdout: str
    stderr: str


@pytest.fixture(scope="module", params=_params())
def quick_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    name: str = request.param
    out = tmp_path_factory.mktemp(f"quick-{name}")
    started = time.monotonic()
    args = ("run", name, "--quick", "--seed", str(SEED), "--out", "out")
    done = cli(*args, "--no-progress", cwd=out)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    return QuickRun(
        name, registry.get(name), out, out / "out" / name, seconds, done.stdout, done.stderr
    )


def test_quick_run_writes_its_files(quick_run: QuickRun) -> None:
    folder = quick_run.folder
    for name in ("results.parquet", "summary.csv", "metadata.json"):
        assert (folder / name).is_file(), name
    assert list(folder.glob("*.png")), "no chart"
    assert not list(folder.rglob("*.tmp")), "a temporary file was left behind"
    assert "Traceback" not in quick_run.stderr
    assert f"out/{quick_run.name}" in quick_run.stdout
    assert sorted(p.name for p in (quick_run.out).iterdir()) == ["out"]
    summary = pd.read_csv(folder / "summary.csv")
    assert len(summary) and "metric" in summary.columns


def test_results_are_tidy(quick_run: QuickRun) -> None:
    results = pd.read_parquet(quick_run.folder / "results.parquet")
    cells = quick_run.experiment.grid(True)
    parameters = {key for cell in cells for key in cell}
    missing = (set(TIDY_COLUMNS) | parameters) - set(results.columns)
    assert not missing, f"columns missing from results.parquet: {sorted(missing)}"
    assert len(results)
    assert results[list(TIDY_COLUMNS)].notna().all().all()
    assert pd.api.types.is_float_dtype(results["value"])
    assert set(results["replication"]) == {0}  # --quick runs one replication
    assert set(results["cell"]) == {framework.cell_key(cell) for cell in cells}
    for cell in cells:
        rows = results[results["cell"] == framework.cell_key(cell)]
        assert set(rows["seed"]) == {framework.cell_seed(SEED, cell, 0)}
        for key, value in cell.items():
            expected = value if not isinstance(value, list | dict) else json.dumps(value)
            assert (rows[key] == expected).all(), (cell, key)


def test_metadata_says_how_the_folder_was_made(quick_run: QuickRun) -> None:
    metadata = json.loads((quick_run.folder / "metadata.json").read_text())
    config = metadata["config"]
    assert config["experiment"] == quick_run.name
    assert config["quick"] is True
    assert config["reps"] == 1
    assert metadata.get("seeds", config.get("seed")) == SEED
    assert metadata["cells"] == _jsonable(quick_run.experiment.grid(True))
    packages = metadata["packages"]
    for package in ("numpy", "pandas", "simpy"):
        assert packages.get(package), package
    assert re.fullmatch(r"[0-9a-f]{40}", metadata["git_sha"] or ""), metadata["git_sha"]
    assert metadata["python"] == platform.python_version()
    cpu_count = metadata.get("cpu_count", metadata.get("machine", {}).get("cpu_count"))
    assert cpu_count == os.cpu_count()
    calibration = metadata["calibration"]
    assert set(calibration) >= {"dispatch", "sleep_overshoot", "thread_start"}
    if quick_run.experiment.needs_real:
        assert calibration["dispatch"] > 0, "a real experiment must record its calibration"
    for chart in metadata["charts"]:
        assert (quick_run.folder / chart).is_file(), chart


def test_rerun_skips_saved_cells(quick_run: QuickRun) -> None:
    saved_version = json.loads((quick_run.folder / "metadata.json").read_text())["code_version"]
    if saved_version != storage.code_version():
        pytest.skip("the sources changed since the smoke run, so its cells are rightly not reused")
    cells = quick_run.folder / "cells"
    before = _mtimes(cells)
    assert len(before) == len(quick_run.experiment.grid(True))
    results = pd.read_parquet(quick_run.folder / "results.parquet")
    calibration = quick_run.folder / "calibration.json"
    calibrated = calibration.stat().st_mtime_ns if calibration.exists() else None
    args = ("run", quick_run.name, "--quick", "--seed", str(SEED), "--out", "out")
    done = cli(*args, "--no-progress", cwd=quick_run.out)
    assert done.returncode == 0, done.stderr
    assert _mtimes(cells) == before, "saved cells were run again"
    if calibrated is not None:
        assert calibration.stat().st_mtime_ns == calibrated, "calibrated again"
    rerun = pd.read_parquet(quick_run.folder / "results.parquet")
    pd.testing.assert_frame_equal(_sorted(rerun), _sorted(results))


def test_report_redraws_the_charts(quick_run: QuickRun) -> None:
    charts = sorted(quick_run.folder.glob("*.png"))
    for chart in charts:
        chart.unlink()
    done = cli("report", str(quick_run.folder), cwd=quick_run.out)
    assert done.returncode == 0, done.stderr
    assert sorted(quick_run.folder.glob("*.png")) == charts
    for chart in charts:
        assert chart.stat().st_size > 0
        assert str(chart) in done.stdout


def test_same_seed_gives_identical_simulated_results(quick_run: QuickRun, tmp_path: Path) -> None:
    if quick_run.experiment.needs_real:
        pytest.skip("measures the real pool: only simulation-only experiments are bit-exact")
    folder = framework.run_experiment(
        quick_run.experiment, tmp_path, quick=True, seed=SEED, reps=1, progress=False
    )
    first = pd.read_parquet(quick_run.folder / "results.parquet")
    second = pd.read_parquet(folder / "results.parquet")
    simulated = first["backend"] != "real"
    assert simulated.any()
    pd.testing.assert_frame_equal(
        _sorted(second[second["backend"] != "real"]), _sorted(first[simulated])
    )


# -------------------------------------------------------------------------------- bad input

NAME = AVAILABLE[0] if AVAILABLE else "predicted_vs_measured"
BAD_RUNS = {
    "unknown experiment": ["run", "no_such_experiment"],
    "negative seed": ["run", NAME, "--seed", "-1"],
    "text seed": ["run", NAME, "--seed", "x"],
    "zero reps": ["run", NAME, "--reps", "0"],
    "zero jobs": ["run", NAME, "--jobs", "0"],
    "bad dask address": ["run", NAME, "--dask", "not-an-address"],
    "unknown option": ["run", NAME, "--fast"],
    "no command": [],
    "unknown command": ["frobnicate"],
    "run without a name": ["run"],
}


def _assert_refused(done: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, exactly one line on stderr, no traceback, nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    return lines[0]


@pytest.mark.parametrize("args", list(BAD_RUNS.values()), ids=list(BAD_RUNS))
def test_bad_input_exits_2_with_one_line(args: list[str], tmp_path: Path) -> None:
    extra = ["--out", str(tmp_path / "out")] if len(args) > 1 and args[0] == "run" else []
    done = cli(*args, *extra, cwd=tmp_path, timeout=120)
    _assert_refused(done)
    assert list(tmp_path.iterdir()) == [], "a bad command left files behind"


def test_unknown_experiment_message_lists_the_valid_names(tmp_path: Path) -> None:
    done = cli("run", "no_such_experiment", "--out", "out", cwd=tmp_path, timeout=120)
    line = _assert_refused(done)
    assert "no_such_experiment" in line
    for name in AVAILABLE:
        assert name in line


def test_out_below_a_regular_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    done = cli("run", NAME, "--quick", "--out", str(blocker / "out"), cwd=tmp_path, timeout=120)
    line = _assert_refused(done)
    assert "--out" in line
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere"
)
def test_out_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        done = cli("run", NAME, "--quick", "--out", str(locked / "out"), cwd=tmp_path, timeout=120)
        _assert_refused(done)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_report_of_a_folder_without_results_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        _assert_refused(cli("report", str(folder), cwd=tmp_path, timeout=120))
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.timeout(60)
def test_bad_numbers_are_refused_before_any_experiment_is_imported(tmp_path: Path) -> None:
    script = """
import sys
from experiments.__main__ import main
try:
    main(["run", "theory", "--seed", "-1"])
except SystemExit as exited:
    loaded = [m for m in sys.modules if m in ("sim", "real", "experiments.theory")]
    print(exited.code, loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "2 []", (done.stdout, done.stderr)
    assert "--seed must be an integer >= 0" in done.stderr
