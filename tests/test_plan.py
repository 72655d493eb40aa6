"""pool.plan: the what-if planner against queueing theory, its exact shortcuts, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import pool
import sim
from pool import Workload, WorkloadModel, dists, theory
from pool.plan_runs import run_chain
from pool.planning import Chain

RATE, SERVICE = 30.0, 0.1  # offered load 3 workers


def mmc_model() -> WorkloadModel:
    """A Poisson workload with exponential services, fitted from the model's own trace."""
    workload = Workload.poisson(RATE, dists.Exponential(SERVICE), 4000, seed=11)
    tasks = sim.run(workload, "fifo", 8).tasks
    trace = pd.DataFrame(
        {
            "submitted": tasks["arrival"],
            "started": tasks["start"],
            "ended": tasks["end"],
            "pool_workers": 8,
        }
    )
    return pool.fit(trace, service="exponential")


def test_recommendation_matches_mmc_theory() -> None:
    model = mmc_model()
    rate, mean = model.rate, model.mean_service
    sojourn = {c: theory.mmc_sojourn(rate, 1 / mean, c) for c in (4, 5)}
    # A bound between the 4- and 5-worker means, away from both by a third of the gap.
    bound = sojourn[5] + (sojourn[4] - sojourn[5]) / 3
    answer = pool.plan(
        model,
        {"mean_latency": bound},
        workers=range(2, 9),
        policies=("fifo",),
        load_scale=(1.0,),
        reps=4,
        n_tasks=20_000,
        seed=2,
    )
    table = answer.table.set_index("workers")
    assert table.loc[2, "basis"] == "unstable" and math.isinf(table.loc[2, "mean_latency"])
    for workers in (4, 5, 6):
        low, high = table.loc[workers, ["mean_latency_low", "mean_latency_high"]]
        exact = theory.mmc_sojourn(rate, 1 / mean, workers)
        assert low * 0.97 <= exact <= high * 1.03, (workers, low, exact, high)
    assert answer.recommendation.loc[0, "workers"] == 5
    assert "5 workers: mean_latency" in answer.recommendation.loc[0, "verdict"]


def test_no_size_in_range_is_said_plainly() -> None:
    answer = pool.plan(
        mmc_model(),
        {"p95_latency": 0.001},
        workers=[3, 4],
        policies=["fifo"],
        load_scale=[1.0],
        reps=2,
        n_tasks=500,
    )
    row = answer.recommendation.iloc[0]
    assert row["workers"] is None or pd.isna(row["workers"])
    assert row["verdict"] == "none within 3-4 workers"


@pytest.mark.parametrize("policy", ["fifo", "priority", "work-stealing", "autoscaling"])
def test_reused_sizes_are_exact(policy: str) -> None:
    model = mmc_model()
    chain = Chain(policy, 1.0, 0, 5, (12, 15), 3000, model, pool.Overhead())
    reused = run_chain(chain)
    assert [row["basis"] for row in reused] == ["simulated", "reused"]
    alone = run_chain(Chain(policy, 1.0, 0, 5, (15,), 3000, model, pool.Overhead()))[0]
    for metric in pool.planning.METRICS:
        if metric == "utilization":  # rescaled from the smaller pool: equal but for rounding
            assert reused[1][metric] == pytest.approx(alone[metric], rel=1e-12)
        else:
            assert reused[1][metric] == alone[metric], metric


def test_resumed_plan_runs_only_missing_chains() -> None:
    model = mmc_model()
    arguments: dict[str, Any] = dict(
        slo={"p95_latency": 1.0},
        workers=[4, 6],
        policies=["fifo", "priority"],
        load_scale=[1.0],
        reps=2,
        n_tasks=500,
        seed=3,
    )
    seen: list[list[dict[str, Any]]] = []
    whole = pool.plan(model, on_chain=seen.append, **arguments)
    assert len(seen) == 4
    again: list[list[dict[str, Any]]] = []
    resumed = pool.plan(
        model, done=[r for rows in seen[:3] for r in rows], on_chain=again.append, **arguments
    )
    assert len(again) == 1
    pd.testing.assert_frame_equal(resumed.table, whole.table)


def test_more_load_needs_more_workers() -> None:
    answer = pool.plan(
        mmc_model(),
        {"p95_latency": 0.5},
        workers=range(3, 10),
        policies=["fifo"],
        load_scale=[1.0, 2.0],
        reps=3,
        n_tasks=2000,
    )
    sizes = answer.recommendation.set_index("load_scale")["workers"]
    assert sizes[2.0] > sizes[1.0]
    p95 = answer.table[answer.table.load_scale == 1.0]["p95_latency"].to_numpy()
    assert np.all(np.diff(p95[np.isfinite(p95)]) <= 1e-12)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"slo": {"p90_latency": 1.0}},
            "unknown SLO metric 'p90_latency'; the metrics are mean_latency",
        ),
        ({"slo": {}}, "slo must map metrics"),
        ({"slo": {"p95_latency": -1}}, "slo\\['p95_latency'\\]"),
        ({"workers": []}, "workers must hold at least one"),
        ({"workers": [0, 1]}, "workers"),
        ({"policies": ["lifo"]}, "policies: unknown 'lifo'"),
        ({"load_scale": [0.0]}, "load_scale"),
        ({"reps": 1}, "reps"),
        ({"n_tasks": 10}, "n_tasks"),
    ],
)
def test_bad_plan_arguments_are_named(arguments: dict[str, Any], message: str) -> None:
    call: dict[str, Any] = {"slo": {"p95_latency": 1.0}, "reps": 2, "n_tasks": 200}
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        pool.plan(mmc_model(), **call)
