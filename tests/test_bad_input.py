"""Bad input gives a ValueError that names the parameter, never a traceback from deep inside.

Each case is (what to call, a regular expression the message must match); the
expression is the parameter's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sim
from pool import (
    FIFO,
    Autoscaling,
    FaultPlan,
    Overhead,
    Priority,
    Recovery,
    Workload,
    WorkStealing,
    dists,
)
from pool.policies import POLICY_NAMES, resolve

NAN, INF = math.nan, math.inf
EXP = dists.Exponential(0.1)


def tiny_workload(**overrides: Any) -> Workload:
    columns: dict[str, Any] = {
        "arrival": np.array([0.0, 0.5, 1.0]),
        "service": np.array([0.1, 0.2, 0.3]),
        "priority": np.array([0, 1, 0], dtype=np.int64),
        "cpu_fraction": np.zeros(3),
        "affinity": np.array([-1, 0, 1], dtype=np.int64),
    }
    columns.update(overrides)
    return Workload(**columns)


def check(call: Callable[[], object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


def cases(*items: tuple[str, Callable[[], object], str]) -> Any:
    return pytest.mark.parametrize(
        ("call", "pattern"), [pytest.param(c, p, id=i) for i, c, p in items]
    )


# ----------------------------------------------------------------------------- distributions

BAD_NUMBERS = [-1.0, 0.0, NAN, INF, -INF]
BAD_NON_NEGATIVE = [-1.0, NAN, INF]


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_exponential_mean(value: float) -> None:
    check(lambda: dists.Exponential(value), "mean")


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_deterministic_value(value: float) -> None:
    check(lambda: dists.Deterministic(value), "value")


@pytest.mark.parametrize("value", BAD_NON_NEGATIVE)
def test_uniform_low(value: float) -> None:
    check(lambda: dists.Uniform(value, 2.0), "low")


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_uniform_high(value: float) -> None:
    check(lambda: dists.Uniform(0.0, value), "high")


def test_uniform_high_not_above_low() -> None:
    check(lambda: dists.Uniform(2.0, 1.0), "high")
    check(lambda: dists.Uniform(1.0, 1.0), "high")


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_lognormal_mean_and_cv(value: float) -> None:
    check(lambda: dists.LogNormal(value, 1.0), "mean")
    check(lambda: dists.LogNormal(1.0, value), "cv")


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_hyperexponential_mean_and_cv(value: float) -> None:
    check(lambda: dists.HyperExponential(value, 2.0), "mean")
    check(lambda: dists.HyperExponential(1.0, value), "cv")


@pytest.mark.parametrize("cv", [0.5, 0.999])
def test_hyperexponential_cv_below_one(cv: float) -> None:
    check(lambda: dists.HyperExponential(1.0, cv), "cv")


@cases(
    ("empty", lambda: dists.Empirical([]), "samples"),
    ("empty-array", lambda: dists.Empirical(np.array([])), "samples"),
    ("nan", lambda: dists.Empirical([0.1, NAN]), "samples"),
    ("inf", lambda: dists.Empirical([0.1, INF]), "samples"),
    ("negative", lambda: dists.Empirical([0.1, -0.2]), "samples"),
    ("all-zero", lambda: dists.Empirical([0.0, 0.0]), "samples"),
    ("text", lambda: dists.Empirical(["slow"]), "samples"),
)
def test_empirical(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


@cases(
    ("string", lambda: dists.Exponential("fast"), "mean"),  # type: ignore[arg-type]
    ("none", lambda: dists.Exponential(None), "mean"),  # type: ignore[arg-type]
    ("bool", lambda: dists.Deterministic(True), "value"),
    ("scaled-zero", lambda: EXP.scaled(0.0), "factor"),
    ("scaled-nan", lambda: EXP.scaled(NAN), "factor"),
)
def test_distribution_types_and_scaling(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


# ----------------------------------------------------------------------------- generators


@cases(
    ("rate-zero", lambda: Workload.poisson(0.0, EXP, 10), "rate"),
    ("rate-negative", lambda: Workload.poisson(-1.0, EXP, 10), "rate"),
    ("rate-nan", lambda: Workload.poisson(NAN, EXP, 10), "rate"),
    ("rate-inf", lambda: Workload.poisson(INF, EXP, 10), "rate"),
    ("n-zero", lambda: Workload.poisson(1.0, EXP, 0), "n_tasks"),
    ("n-negative", lambda: Workload.poisson(1.0, EXP, -5), "n_tasks"),
    ("n-float", lambda: Workload.poisson(1.0, EXP, 10.5), "n_tasks"),  # type: ignore[arg-type]
    ("service", lambda: Workload.poisson(1.0, 0.1, 10), "service"),  # type: ignore[arg-type]
    ("shares-sum", lambda: Workload.poisson(1.0, EXP, 10, {0: 0.5, 1: 0.4}), "priorities"),
    ("shares-over", lambda: Workload.poisson(1.0, EXP, 10, {0: 0.7, 1: 0.7}), "priorities"),
    ("share-negative", lambda: Workload.poisson(1.0, EXP, 10, {0: 1.5, 1: -0.5}), "priorities"),
    ("class-negative", lambda: Workload.poisson(1.0, EXP, 10, {-1: 1.0}), "priorities"),
    ("class-float", lambda: Workload.poisson(1.0, EXP, 10, {0.5: 1.0}), "priorities"),
    ("priorities-empty", lambda: Workload.poisson(1.0, EXP, 10, {}), "priorities"),
    ("seed-negative", lambda: Workload.poisson(1.0, EXP, 10, seed=-1), "seed"),
    ("cpu-fraction", lambda: Workload.poisson(1.0, EXP, 10, cpu_fraction=1.5), "cpu_fraction"),
    ("renewal-gap", lambda: Workload.renewal(1.0, EXP, 10), "interarrival"),  # type: ignore[arg-type]
)
def test_poisson_and_renewal(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


@cases(
    ("empty", lambda: Workload.steps([], EXP), "rates"),
    ("duration-zero", lambda: Workload.steps([(0.0, 5.0)], EXP), "rates"),
    ("duration-negative", lambda: Workload.steps([(-1.0, 5.0)], EXP), "rates"),
    ("duration-nan", lambda: Workload.steps([(NAN, 5.0)], EXP), "rates"),
    ("rate-negative", lambda: Workload.steps([(1.0, -5.0)], EXP), "rates"),
    ("rate-inf", lambda: Workload.steps([(1.0, INF)], EXP), "rates"),
    ("all-quiet", lambda: Workload.steps([(1.0, 0.0), (2.0, 0.0)], EXP), "rates"),
    ("phase-short", lambda: Workload.steps([(1.0,)], EXP), "rates"),  # type: ignore[list-item]
    ("phase-long", lambda: Workload.steps([(1.0, 2.0, 3.0)], EXP), "rates"),  # type: ignore[list-item]
    ("flat-list", lambda: Workload.steps([1.0, 2.0], EXP), "rates"),  # type: ignore[list-item]
    ("none", lambda: Workload.steps(None, EXP), "rates"),  # type: ignore[arg-type]
    ("service", lambda: Workload.steps([(1.0, 50.0)], "exp"), "service"),  # type: ignore[arg-type]
)
def test_steps(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


@cases(
    ("rate-on", lambda: Workload.bursty(0.0, 1.0, 1.0, 1.0, EXP, 10), "rate_on"),
    ("rate-on-nan", lambda: Workload.bursty(NAN, 1.0, 1.0, 1.0, EXP, 10), "rate_on"),
    ("rate-off", lambda: Workload.bursty(5.0, -1.0, 1.0, 1.0, EXP, 10), "rate_off"),
    ("mean-on", lambda: Workload.bursty(5.0, 1.0, 0.0, 1.0, EXP, 10), "mean_on"),
    ("mean-off", lambda: Workload.bursty(5.0, 1.0, 1.0, -2.0, EXP, 10), "mean_off"),
    ("n-tasks", lambda: Workload.bursty(5.0, 1.0, 1.0, 1.0, EXP, 0), "n_tasks"),
    ("service", lambda: Workload.bursty(5.0, 1.0, 1.0, 1.0, None, 10), "service"),  # type: ignore[arg-type]
)
def test_bursty(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


@cases(
    ("workers", lambda: tiny_workload().with_affinity(0, 0.5), "workers"),
    ("hot-share", lambda: tiny_workload().with_affinity(2, 1.5), "hot_share"),
    ("cpu-fraction", lambda: tiny_workload().with_cpu_fraction(-0.1), "cpu_fraction"),
    ("head", lambda: tiny_workload().head(0), "n_tasks"),
    ("offered-load", lambda: tiny_workload().offered_load(0), "workers"),
)
def test_workload_helpers(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


# ----------------------------------------------------------------------------- traces


def test_from_trace_missing_file(tmp_path: Path) -> None:
    check(lambda: Workload.from_trace(tmp_path / "nope.csv"), "trace")
    check(lambda: Workload.from_trace(str(tmp_path / "nope.parquet")), "trace")


def test_from_trace_wrong_suffix(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    path.write_text("arrival,service\n0.0,0.1\n")
    check(lambda: Workload.from_trace(path), "trace")


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty file
        'arrival,service\n0.0,"0.1\n',  # unterminated quote
        "arrival,service\n0.0,0.1,7,8,9\n1.0\n",  # ragged rows
    ],
    ids=["empty", "unterminated-quote", "ragged"],
)
def test_from_trace_malformed_csv(tmp_path: Path, text: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    check(lambda: Workload.from_trace(path), "trace|arrival|service")


def test_from_trace_malformed_parquet(tmp_path: Path) -> None:
    path = tmp_path / "trace.parquet"
    path.write_bytes(b"this is not parquet")
    check(lambda: Workload.from_trace(path), "trace")


def test_from_trace_not_a_path() -> None:
    check(lambda: Workload.from_trace(42), "trace|source")  # type: ignore[arg-type]


@cases(
    ("no-service", lambda: Workload.from_trace(pd.DataFrame({"arrival": [0.0]})), "service"),
    ("no-arrival", lambda: Workload.from_trace(pd.DataFrame({"service": [0.1]})), "arrival"),
    (
        "empty",
        lambda: Workload.from_trace(pd.DataFrame({"arrival": [], "service": []})),
        "trace|task",
    ),
    (
        "nan-arrival",
        lambda: Workload.from_trace(pd.DataFrame({"arrival": [0.0, NAN], "service": [0.1, 0.1]})),
        "arrival",
    ),
    (
        "nan-service",
        lambda: Workload.from_trace(pd.DataFrame({"arrival": [0.0, 1.0], "service": [0.1, NAN]})),
        "service",
    ),
    (
        "text-service",
        lambda: Workload.from_trace(pd.DataFrame({"arrival": [0.0], "service": ["slow"]})),
        "service",
    ),
    (
        "nan-priority",
        lambda: Workload.from_trace(
            pd.DataFrame({"arrival": [0.0], "service": [0.1], "priority": [NAN]})
        ),
        "priority",
    ),
    (
        "negative-service",
        lambda: Workload.from_trace(pd.DataFrame({"arrival": [0.0], "service": [-0.1]})),
        "service",
    ),
    (
        "negative-arrival",
        lambda: Workload.from_trace(pd.DataFrame({"arrival": [-1.0], "service": [0.1]})),
        "arrival",
    ),
    (
        "cpu-fraction",
        lambda: Workload.from_trace(
            pd.DataFrame({"arrival": [0.0], "service": [0.1], "cpu_fraction": [2.0]})
        ),
        "cpu_fraction",
    ),
    (
        "affinity",
        lambda: Workload.from_trace(
            pd.DataFrame({"arrival": [0.0], "service": [0.1], "affinity": [-3]})
        ),
        "affinity",
    ),
)
def test_from_trace_frames(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


def gil_trace(values: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"arrival": [0.0, 0.1, 0.2], "service": [0.1] * 3, "gil_share": values})


@cases(
    ("gil-above-one", lambda: Workload.from_trace(gil_trace([0.2, 1.0, 1.5])), "gil_share.*row 2"),
    ("gil-missing", lambda: Workload.from_trace(gil_trace([0.2, None, 1.0])), "gil_share.*row 1"),
    ("gil-inf", lambda: Workload.from_trace(gil_trace([INF, 0.5, 1.0])), "gil_share.*row 0"),
    ("gil-text", lambda: Workload.from_trace(gil_trace([0.5, "half", 1.0])), "gil_share.*row 1"),
)
def test_from_trace_gil_share_names_the_column_and_the_row(
    call: Callable[[], object], pattern: str
) -> None:
    check(call, pattern)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_trace_round_trip_keeps_gil_share(tmp_path: Path, suffix: str) -> None:
    workload = Workload.poisson(50.0, dists.Exponential(0.01), 30, seed=4, cpu_fraction=0.4)
    shares = np.linspace(0.0, 1.0, 30)
    workload = workload.replace(gil_share=shares)
    path = tmp_path / f"trace{suffix}"
    workload.to_trace(path)
    back = Workload.from_trace(path)
    assert np.array_equal(back.gil_share, shares)
    assert np.array_equal(back.service, workload.service)
    # A trace without the column keeps today's meaning: computing holds the lock.
    legacy = workload.to_frame().drop(columns="gil_share")
    assert (Workload.from_trace(legacy).gil_share == 1.0).all()


def test_from_trace_csv_with_nan(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("arrival,service\n0.0,0.1\n0.5,\n")
    check(lambda: Workload.from_trace(path), "service")


def test_to_trace_wrong_suffix(tmp_path: Path) -> None:
    check(lambda: tiny_workload().to_trace(tmp_path / "trace.json"), "path")


def test_from_trace_round_trip_and_sorting(tmp_path: Path) -> None:
    """Good traces still load: rows are sorted by arrival, optional columns default."""
    wl = Workload.from_trace(pd.DataFrame({"arrival": [1.0, 0.0], "service": [0.2, 0.1]}))
    assert wl.arrival.tolist() == [0.0, 1.0]
    assert wl.service.tolist() == [0.1, 0.2]
    assert wl.priority.tolist() == [0, 0]
    assert wl.affinity.tolist() == [-1, -1]
    for name in ("trace.csv", "trace.parquet"):
        original = tiny_workload()
        original.to_trace(tmp_path / name)
        back = Workload.from_trace(tmp_path / name)
        pd.testing.assert_frame_equal(original.to_frame(), back.to_frame())


# ----------------------------------------------------------------------------- columns


@cases(
    ("unsorted", lambda: tiny_workload(arrival=np.array([0.0, 1.0, 0.5])), "arrival"),
    ("negative-arrival", lambda: tiny_workload(arrival=np.array([-1.0, 0.0, 1.0])), "arrival"),
    ("nan-arrival", lambda: tiny_workload(arrival=np.array([0.0, NAN, 1.0])), "arrival"),
    ("negative-service", lambda: tiny_workload(service=np.array([0.1, -0.2, 0.3])), "service"),
    ("nan-service", lambda: tiny_workload(service=np.array([0.1, NAN, 0.3])), "service"),
    ("inf-service", lambda: tiny_workload(service=np.array([0.1, INF, 0.3])), "service"),
    ("short-service", lambda: tiny_workload(service=np.array([0.1, 0.2])), "service"),
    ("2d-arrival", lambda: tiny_workload(arrival=np.zeros((3, 1))), "arrival"),
    ("priority", lambda: tiny_workload(priority=np.array([0, -1, 0])), "priority"),
    ("cpu-high", lambda: tiny_workload(cpu_fraction=np.array([0.0, 1.5, 0.0])), "cpu_fraction"),
    ("cpu-nan", lambda: tiny_workload(cpu_fraction=np.array([0.0, NAN, 0.0])), "cpu_fraction"),
    ("affinity", lambda: tiny_workload(affinity=np.array([-2, 0, 0])), "affinity"),
    ("gil-high", lambda: tiny_workload(gil_share=np.array([0.0, 0.5, 1.5])), "gil_share.*row 2"),
    ("gil-low", lambda: tiny_workload(gil_share=np.array([-0.1, 0.5, 1.0])), "gil_share.*row 0"),
    ("gil-nan", lambda: tiny_workload(gil_share=np.array([0.0, NAN, 1.0])), "gil_share.*row 1"),
    ("gil-short", lambda: tiny_workload(gil_share=np.array([0.0, 1.0])), "gil_share"),
    ("gil-share", lambda: tiny_workload().with_cpu_fraction(0.5, gil_share=2.0), "gil_share"),
    ("text-arrival", lambda: tiny_workload(arrival=np.array(["a", "b", "c"])), "arrival"),
)
def test_workload_columns(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


# ----------------------------------------------------------------------------- policies


@pytest.mark.parametrize("name", ["FIFO", "lifo", "", "work_stealing", None, 3, FIFO])
def test_unknown_policy_lists_the_valid_names(name: object) -> None:
    for call in (lambda: resolve(name), lambda: sim.run(tiny_workload(), name)):  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="policy") as info:
            call()
        for valid in POLICY_NAMES:
            assert valid in str(info.value)


@cases(
    ("placement", lambda: WorkStealing(placement="random"), "placement"),  # type: ignore[arg-type]
    ("victim", lambda: WorkStealing(victim="shortest"), "victim"),  # type: ignore[arg-type]
    ("amount", lambda: WorkStealing(amount="all"), "amount"),  # type: ignore[arg-type]
    ("steal-latency", lambda: WorkStealing(steal_latency=-0.1), "steal_latency"),
    ("steal-latency-nan", lambda: WorkStealing(steal_latency=NAN), "steal_latency"),
    ("aging-zero", lambda: Priority(aging=0.0), "aging"),
    ("aging-negative", lambda: Priority(aging=-1.0), "aging"),
    ("aging-nan", lambda: Priority(aging=NAN), "aging"),
    ("aging-inf", lambda: Priority(aging=INF), "aging"),
)
def test_policy_parameters(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


def test_work_stealing_error_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="placement") as info:
        WorkStealing(placement="random")  # type: ignore[arg-type]
    assert "round-robin" in str(info.value)
    assert "affinity" in str(info.value)


@cases(
    ("min-zero", lambda: Autoscaling(min_workers=0), "min_workers"),
    ("min-float", lambda: Autoscaling(min_workers=1.5), "min_workers"),  # type: ignore[arg-type]
    ("max-zero", lambda: Autoscaling(max_workers=0), "max_workers"),
    ("max-below-min", lambda: Autoscaling(min_workers=4, max_workers=2), "max_workers"),
    ("target-zero", lambda: Autoscaling(target=0.0), "target"),
    ("target-nan", lambda: Autoscaling(target=NAN), "target"),
    ("metric", lambda: Autoscaling(metric="cpu"), "metric"),  # type: ignore[arg-type]
    ("interval-zero", lambda: Autoscaling(decision_interval=0.0), "decision_interval"),
    ("interval-inf", lambda: Autoscaling(decision_interval=INF), "decision_interval"),
    ("cooldown", lambda: Autoscaling(cooldown=-1.0), "cooldown"),
    ("startup-delay", lambda: Autoscaling(startup_delay=-0.1), "startup_delay"),
    ("scale-down-ticks", lambda: Autoscaling(scale_down_ticks=0), "scale_down_ticks"),
    ("tolerance", lambda: Autoscaling(tolerance=-0.1), "tolerance"),
    ("inner-autoscaling", lambda: Autoscaling(inner=Autoscaling()), "inner"),
    ("inner-not-policy", lambda: Autoscaling(inner="fifo"), "inner"),  # type: ignore[arg-type]
    ("smoothing-zero", lambda: Autoscaling(smoothing=0.0), "smoothing"),
    ("smoothing-above-one", lambda: Autoscaling(smoothing=1.5), "smoothing"),
)
def test_autoscaling_parameters(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


# ----------------------------------------------------------------------------- faults


@cases(
    ("prob-high", lambda: FaultPlan(task_failure_prob=1.5), "task_failure_prob"),
    ("prob-negative", lambda: FaultPlan(task_failure_prob=-0.1), "task_failure_prob"),
    ("prob-nan", lambda: FaultPlan(task_failure_prob=NAN), "task_failure_prob"),
    ("crash-time", lambda: FaultPlan(crashes=[(-1.0, 0)]), "crashes"),
    ("crash-time-nan", lambda: FaultPlan(crashes=[(NAN, 0)]), "crashes"),
    ("crash-worker", lambda: FaultPlan(crashes=[(1.0, -1)]), "crashes"),
    ("crash-worker-float", lambda: FaultPlan(crashes=[(1.0, 0.5)]), "crashes"),  # type: ignore[list-item]
    ("crash-short", lambda: FaultPlan(crashes=[(1.0,)]), "crashes"),  # type: ignore[list-item]
    ("crash-long", lambda: FaultPlan(crashes=[(1.0, 0, 2.0)]), "crashes"),  # type: ignore[list-item]
    ("hang-time", lambda: FaultPlan(hangs=[(-1.0, 0, 0.5)]), "hangs"),
    ("hang-worker", lambda: FaultPlan(hangs=[(1.0, -2, 0.5)]), "hangs"),
    ("hang-duration", lambda: FaultPlan(hangs=[(1.0, 0, 0.0)]), "hangs"),
    ("hang-duration-negative", lambda: FaultPlan(hangs=[(1.0, 0, -0.5)]), "hangs"),
    ("hang-short", lambda: FaultPlan(hangs=[(1.0, 0)]), "hangs"),  # type: ignore[list-item]
    ("crash-mtbf-zero", lambda: FaultPlan(crash_mtbf=0.0), "crash_mtbf"),
    ("crash-mtbf-negative", lambda: FaultPlan(crash_mtbf=-3.0), "crash_mtbf"),
    ("crash-mtbf-nan", lambda: FaultPlan(crash_mtbf=NAN), "crash_mtbf"),
    ("crash-mtbf-inf", lambda: FaultPlan(crash_mtbf=INF), "crash_mtbf"),
    ("hang-mtbf", lambda: FaultPlan(hang_mtbf=0.0), "hang_mtbf"),
    ("hang-duration-plan", lambda: FaultPlan(hang_duration=0.0), "hang_duration"),
    ("poison", lambda: FaultPlan(poison_tasks=[-1]), "poison_tasks"),
    ("poison-float", lambda: FaultPlan(poison_tasks=[1.5]), "poison_tasks"),  # type: ignore[list-item]
    ("crashes-none", lambda: FaultPlan(crashes=None), "crashes"),  # type: ignore[arg-type]
    ("hangs-none", lambda: FaultPlan(hangs=None), "hangs"),  # type: ignore[arg-type]
    ("poison-none", lambda: FaultPlan(poison_tasks=None), "poison_tasks"),  # type: ignore[arg-type]
)
def test_fault_plan(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


@cases(
    ("max-attempts-zero", lambda: Recovery(max_attempts=0), "max_attempts"),
    ("max-attempts-float", lambda: Recovery(max_attempts=2.0), "max_attempts"),  # type: ignore[arg-type]
    (
        "timeout-below-interval",
        lambda: Recovery(heartbeat_interval=0.5, heartbeat_timeout=0.2),
        "heartbeat_timeout",
    ),
    ("interval-zero", lambda: Recovery(heartbeat_interval=0.0), "heartbeat_interval"),
    ("interval-nan", lambda: Recovery(heartbeat_interval=NAN), "heartbeat_interval"),
    ("heartbeat-timeout-inf", lambda: Recovery(heartbeat_timeout=INF), "heartbeat_timeout"),
    ("restart-delay", lambda: Recovery(restart_delay=-0.1), "restart_delay"),
    ("retry-backoff", lambda: Recovery(retry_backoff=-0.01), "retry_backoff"),
    ("task-timeout-zero", lambda: Recovery(task_timeout=0.0), "task_timeout"),
    ("task-timeout-negative", lambda: Recovery(task_timeout=-1.0), "task_timeout"),
    ("overhead", lambda: Overhead(dispatch=-1e-6), "dispatch"),
    ("overhead-sleep", lambda: Overhead(sleep_overshoot=NAN), "sleep_overshoot"),
    ("overhead-thread", lambda: Overhead(thread_start=-1.0), "thread_start"),
    ("overhead-curve", lambda: Overhead(remote_call_curve=((0.0, -1.0),)), "remote_call_curve"),
    ("overhead-curve-pairs", lambda: Overhead(remote_call_curve=(1.0, 2.0)), "remote_call_curve"),
    (
        "overhead-curve-order",
        lambda: Overhead(remote_call_curve=((0.005, 1e-4), (0.001, 1e-4))),
        "remote_call_curve",
    ),
)
def test_recovery_and_overhead(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


# ----------------------------------------------------------------------------- sim.run

WL = tiny_workload()


@cases(
    ("workers-zero", lambda: sim.run(WL, "fifo", workers=0), "workers"),
    ("workers-negative", lambda: sim.run(WL, "fifo", workers=-2), "workers"),
    ("workers-float", lambda: sim.run(WL, "fifo", workers=2.0), "workers"),  # type: ignore[arg-type]
    ("workers-string", lambda: sim.run(WL, "fifo", workers="4"), "workers"),  # type: ignore[arg-type]
    ("workers-bool", lambda: sim.run(WL, "fifo", workers=True), "workers"),
    ("seed-negative", lambda: sim.run(WL, "fifo", seed=-1), "seed"),
    ("seed-float", lambda: sim.run(WL, "fifo", seed=1.5), "seed"),  # type: ignore[arg-type]
    ("workload-array", lambda: sim.run(np.zeros(3), "fifo"), "workload"),  # type: ignore[arg-type]
    ("workload-frame", lambda: sim.run(WL.to_frame(), "fifo"), "workload"),  # type: ignore[arg-type]
    ("workload-none", lambda: sim.run(None, "fifo"), "workload"),  # type: ignore[arg-type]
    ("faults-dict", lambda: sim.run(WL, "fifo", faults={"crash_mtbf": 1.0}), "faults"),  # type: ignore[arg-type]
    ("faults-recovery", lambda: sim.run(WL, "fifo", faults=Recovery()), "faults"),  # type: ignore[arg-type]
    ("recovery", lambda: sim.run(WL, "fifo", recovery=FaultPlan()), "recovery"),  # type: ignore[arg-type]
    ("overhead", lambda: sim.run(WL, "fifo", overhead=0.001), "overhead"),  # type: ignore[arg-type]
)
def test_sim_run(call: Callable[[], object], pattern: str) -> None:
    check(call, pattern)


def test_sim_run_accepts_numpy_integers() -> None:
    result = sim.run(WL, "fifo", workers=np.int64(2), seed=np.int64(3))  # type: ignore[arg-type]
    assert (result.tasks["status"] == "done").all()
