"""``python -m experiments plan``: its files, a resumed run, an unmet SLO, bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import sim
from experiments.__main__ import main
from pool import Workload, dists


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-task trace of a 3-worker pool (as the model records it)."""
    workload = Workload.poisson(40.0, dists.Exponential(0.05), 600, seed=9)
    tasks = sim.run(workload, "fifo", 3).tasks
    frame = pd.DataFrame(
        {
            "task_id": tasks["task_id"],
            "submitted": tasks["arrival"],
            "started": tasks["start"],
            "ended": tasks["end"],
            "cpu_time": 0.0,
            "pool_workers": 3,
        }
    )
    path = tmp_path_factory.mktemp("trace") / "trace.csv"
    frame.to_csv(path, index=False)
    return path


def plan(trace: Path, out: Path, *extra: str) -> list[str]:
    return [
        "plan", "--trace", str(trace), "--out", str(out), "--workers", "2-6",
        "--load", "1,1.5", "--policies", "fifo,work-stealing", "--reps", "2",
        "--tasks", "400", "--no-progress", *extra,
    ]  # fmt: skip


def test_plan_writes_table_recommendation_and_chart(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan"
    assert main(plan(trace_file, out, "--slo", "p95_latency=0.4")) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "chains.jsonl", "plan.csv", "plan.png", "recommendation.json",
    ]  # fmt: skip
    table = pd.read_csv(out / "plan.csv")
    assert len(table) == 2 * 2 * 5
    assert {"p95_latency", "p95_latency_low", "p95_latency_high", "basis"} <= set(table.columns)
    answer = json.loads((out / "recommendation.json").read_text())
    assert answer["slo"] == {"p95_latency": 0.4}
    assert len(answer["recommendation"]) == 4
    printed = capsys.readouterr().out
    assert "fifo           load x1: " in printed and "plan.png" in printed


def test_rerun_resumes_from_finished_chains(trace_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    assert main(plan(trace_file, out, "--slo", "p95_latency=0.4")) == 0
    first = pd.read_csv(out / "plan.csv")
    lines = (out / "chains.jsonl").read_text().splitlines()
    (out / "chains.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:40])  # torn
    assert main(plan(trace_file, out, "--slo", "p95_latency=0.4")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "plan.csv"), first)
    kept = [line for line in (out / "chains.jsonl").read_text().splitlines() if line.endswith("}")]
    assert len(kept) == 8


def test_an_unmet_slo_is_an_answer(
    trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(plan(trace_file, tmp_path / "plan", "--slo", "p95_latency=0.001")) == 0
    printed = capsys.readouterr().out
    assert "none within 2-6 workers" in printed
    assert "no pool size in range meets the SLO" in printed


BAD = {
    "unknown metric": (["--slo", "p90_latency=1"], "the metrics are mean_latency"),
    "bound not a number": (["--slo", "p95_latency=fast"], "must be seconds"),
    "negative bound": (["--slo", "p95_latency=-1"], "must be > 0"),
    "bad workers": (["--slo", "p95_latency=1", "--workers", "8-2"], "--workers"),
    "bad load": (["--slo", "p95_latency=1", "--load", "1,x"], "--load"),
    "bad policy": (["--slo", "p95_latency=1", "--policies", "lifo"], "unknown 'lifo'"),
    "one rep": (["--slo", "p95_latency=1", "--reps", "1"], "--reps"),
    "bad machine": (["--slo", "p95_latency=1", "--machine", "nope.json"], "--machine"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_flags_exit_2_with_one_line_and_no_files(
    name: str, trace_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags, message = BAD[name]
    out = tmp_path / "plan"
    argv = [
        "plan", "--trace", str(trace_file), "--out", str(out), "--no-progress", *flags,
    ]  # fmt: skip
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and message in error, error
    assert not out.exists()


def test_a_bad_trace_is_reported_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.csv"
    pd.DataFrame({"submitted": [0.0, 1.0], "started": [0.0, 1.0]}).to_csv(broken, index=False)
    with pytest.raises(SystemExit) as stop:
        main(
            ["plan", "--trace", str(broken), "--slo", "p95_latency=1", "--out", str(tmp_path / "o")]
        )
    assert stop.value.code == 2
    assert "missing column(s) ['ended']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_jobs_and_dask_give_the_serial_plan(trace_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    flags = ("--slo", "p95_latency=0.4", "--policies", "fifo,jsq")
    assert main(plan(trace_file, tmp_path / "serial", *flags)) == 0
    assert main(plan(trace_file, tmp_path / "jobs", *flags, "--jobs", "2")) == 0
    assert main(plan(trace_file, tmp_path / "dask", *flags, "--dask", "local", "--jobs", "2")) == 0
    serial = pd.read_csv(tmp_path / "serial" / "plan.csv")
    for backend in ("jobs", "dask"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / backend / "plan.csv"), serial)
