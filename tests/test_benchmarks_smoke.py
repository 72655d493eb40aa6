"""The benchmarks still run end to end at a tiny size (their figures are not checked here).

A benchmark is run by hand and its figures recorded in ``benchmarks/``; nothing else runs
it, so an interface change of the pools can break it unseen (``pool_overhead`` once passed
priorities to the task when ``submit`` began to pass keywords through). Each is run at a
few seconds' size in a fresh interpreter and must exit 0 and write its JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "pool_overhead": ["--tasks", "300", "--rounds", "3", "--latency-tasks", "5"],
    "sim_speed": ["--tasks", "500", "--rounds", "3", "--memory-tasks", "0", "--workers", "2", "8"],
    "fit_contention": ["--seconds", "1", "--rounds", "1"],
    # The kill soak's small version: its checks (0 lost, one row per task, no process
    # left, flat memory) must hold, not only the run end.
    "kill_soak": ["--tasks", "400", "--kill-every-ms", "50", "--check"],
    "process_overhead": ["--tasks", "200", "--rounds", "1"],
    "explorer_speed": ["--tasks", "1000", "--rounds", "2"],
    "process_model": ["--tasks", "60", "--rounds", "1"],
    # The journal soak's small version: 2 kills of the driver; its soak checks must hold
    # (below), its throughput is not judged at this size.
    "journal_soak": [
        "--tasks",
        "300",
        "--kills",
        "2",
        "--rounds",
        "1",
        "--throughput-tasks",
        "200",
    ],
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.json"
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *TINY[name], "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    figures = json.loads(out.read_text())
    assert figures, f"{name} wrote an empty JSON"
    if name == "journal_soak":
        checks = figures["soak"]["checks"]
        del checks["journaled_tasks_per_s_at_least_5000"]
        assert all(checks.values()), checks
