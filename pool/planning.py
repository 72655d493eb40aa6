"""What-if planning: which pool size meets a latency objective, per policy and load.

:func:`plan` draws workloads from a :class:`pool.WorkloadModel` (fitted from a recorded
trace) at each load, runs the model (``sim``) for every policy and pool size, and
recommends the smallest pool whose 95% confidence bound meets every objective.

Two shortcuts keep it fast, both exact: a size at which the pool cannot keep up (the
offered work per second exceeds its workers, its cores or the interpreter lock) is
marked unstable without running; and once a FIFO, priority or autoscaling pool never
had every worker busy, a larger one serves every task alike and reuses that run. The
same seeded draws serve every policy and size (common random numbers), so differences
between cells are the pool's, not the draws'.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pool import _validate
from pool.overhead import Overhead
from pool.policies import POLICY_NAMES, Policy
from pool.registry import policy_factory, policy_names
from pool.workload_model import WorkloadModel

#: Metrics an objective can bound (seconds; lower is better).
SLO_METRICS = ("mean_latency", "p50_latency", "p95_latency", "p99_latency", "mean_wait")
#: Every metric in the table.
METRICS = (*SLO_METRICS, "throughput", "utilization")
#: Which chains take longest (measured on 20,000 tasks: work stealing 3.4 s, autoscaling
#: 2.0 s, priority 0.7 s, FIFO 0.5 s): a parallel plan starts them first.
COST_RANK = {"work-stealing": 0, "autoscaling": 1, "priority": 2, "fifo": 3}


@dataclass(frozen=True)
class Chain:
    """One policy at one load on one draw, over every pool size (ascending)."""

    policy: str
    load_scale: float
    rep: int
    seed: int
    workers: tuple[int, ...]
    n_tasks: int
    model: WorkloadModel
    overhead: Overhead
    #: Makes the policy (pickled by reference: a worker process needs no registration).
    factory: Callable[[], Policy] | None = None


@dataclass(frozen=True)
class Plan:
    """The answer of :func:`plan`: ``table`` (one row per policy, workers and load, each
    metric's mean and 95% CI over the draws, and ``basis``: "simulated", "reused" (a
    smaller pool that never had every worker busy serves alike), "unstable" (more work
    than the pool can do: metrics infinite), or a mix of them over the draws)
    and ``recommendation`` (per policy and load, the smallest pool meeting ``slo``)."""

    table: pd.DataFrame
    recommendation: pd.DataFrame
    slo: dict[str, float]


def plan(
    source: WorkloadModel | pd.DataFrame | str | os.PathLike[str],
    slo: Mapping[str, float],
    workers: Iterable[int] = range(1, 33),
    policies: Sequence[str] = POLICY_NAMES,
    load_scale: Sequence[float] = (1.0, 1.5, 2.0),
    reps: int = 5,
    *,
    n_tasks: int | None = None,
    overhead: Overhead | None = None,
    seed: int = 0,
    executor: Executor | None = None,
    done: Sequence[Mapping[str, Any]] = (),
    on_chain: Callable[[list[dict[str, Any]]], None] | None = None,
    progress: bool = False,
) -> Plan:
    """Predict every policy at every size and load; recommend the smallest pool per SLO.

    ``source``: a fitted model, or a trace to fit. ``slo`` maps metrics of
    :data:`SLO_METRICS` to bounds in seconds. ``n_tasks``: tasks per draw (default: as
    many as the trace). ``overhead``: the machine (``real.calibrate()``; by default this
    machine's cores and lock, for tasks that compute). ``executor`` runs chains in
    parallel (a process pool, a Dask client's ``get_executor()``); ``done`` holds rows of
    chains already run (resuming) and ``on_chain`` receives each new chain's rows.
    """
    from pool.fitting import fit

    objectives, sizes, chosen, loads, reps = check_arguments(
        slo, workers, policies, load_scale, reps, n_tasks
    )
    model = source if isinstance(source, WorkloadModel) else fit(source, overhead=overhead)
    if n_tasks is None:
        n_tasks = max(int(model.source.get("tasks", 0)), 1000)
    machine = overhead or _default_machine(model)
    seeds = np.random.SeedSequence(seed).generate_state(len(loads) * reps)
    chains = [
        Chain(
            policy,
            scale,
            rep,
            int(seeds[i * reps + rep]),
            sizes,
            n_tasks,
            model,
            machine,
            policy_factory(policy),
        )
        for policy in chosen
        for i, scale in enumerate(loads)
        for rep in range(reps)
    ]
    finished = {(r["policy"], r["load_scale"], r["rep"]) for r in done}
    todo = [c for c in chains if (c.policy, c.load_scale, c.rep) not in finished]
    rows = [dict(r) for r in done]
    for chain_rows in _run_chains(todo, executor, progress):
        rows.extend(chain_rows)
        if on_chain is not None:
            on_chain(chain_rows)
    table = summarise(pd.DataFrame(rows))
    return Plan(table, recommend(table, objectives, sizes), objectives)


def _default_machine(model: WorkloadModel) -> Overhead:
    """This machine's cores and lock for tasks that compute; nothing for tasks that wait
    (the model's exact fast path then applies to FIFO and priority pools)."""
    computes = any(any(fraction > 0 for fraction in c.cpu_fraction) for c in model.classes)
    return Overhead.this_machine() if computes else Overhead()


def check_arguments(
    slo: Mapping[str, float],
    workers: Iterable[int],
    policies: Sequence[str],
    load_scale: Sequence[float],
    reps: int,
    n_tasks: int | None,
) -> tuple[dict[str, float], tuple[int, ...], list[str], list[float], int]:
    """:func:`plan`'s arguments checked (a ValueError naming the bad one), before any run."""
    objectives = _check_slo(slo)
    sizes = _check_workers(workers)
    chosen = _check_policies(policies)
    loads = [_validate.positive("load_scale", scale) for scale in load_scale]
    if not loads:
        raise ValueError("load_scale must hold at least one load")
    reps = _validate.integer_at_least("reps", reps, 2)
    if n_tasks is not None:
        _validate.integer_at_least("n_tasks", n_tasks, 100)
    return objectives, sizes, chosen, loads, reps


def _run_chains(
    chains: list[Chain], executor: Executor | None, progress: bool
) -> Iterable[list[dict[str, Any]]]:
    from tqdm.auto import tqdm

    from pool.plan_runs import run_chain

    bar = tqdm(total=len(chains), desc="plan", unit="chain", disable=not progress)
    try:
        if executor is None:
            for chain in chains:
                yield run_chain(chain)
                bar.update()
        else:
            from concurrent.futures import as_completed

            # The slowest chains first, so that no long one is left running alone at the end.
            ordered = sorted(chains, key=lambda chain: COST_RANK.get(chain.policy, 0))
            futures = [executor.submit(run_chain, chain) for chain in ordered]
            for future in as_completed(futures):
                yield future.result()
                bar.update()
    finally:
        bar.close()


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% Student-t interval of each metric over the draws of each cell."""
    keys = ["policy", "load_scale", "workers"]
    out = []
    for key, cell in rows.groupby(keys, sort=True):
        entry: dict[str, Any] = dict(zip(keys, key, strict=True))
        entry["reps"] = len(cell)
        entry["basis"] = _basis(cell["basis"])
        for metric in METRICS:
            entry.update(_interval(metric, cell[metric].to_numpy(dtype=np.float64)))
        out.append(entry)
    return pd.DataFrame(out)


def _basis(bases: pd.Series) -> str:
    return "+".join(sorted(set(bases)))


def _interval(metric: str, values: np.ndarray[Any, Any]) -> dict[str, float]:
    from scipy import stats

    mean = float(np.mean(values))
    if not np.all(np.isfinite(values)):
        return {metric: math.inf, f"{metric}_low": math.inf, f"{metric}_high": math.inf}
    half = float(
        stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    )
    return {metric: mean, f"{metric}_low": mean - half, f"{metric}_high": mean + half}


def recommend(table: pd.DataFrame, slo: Mapping[str, float], sizes: Sequence[int]) -> pd.DataFrame:
    """Per policy and load, the smallest pool whose 95% upper bound meets every objective."""
    rows = []
    span = f"{min(sizes)}-{max(sizes)}"
    for (policy, scale), cells in table.groupby(["policy", "load_scale"], sort=True):
        cells = cells.sort_values("workers")
        meets = np.ones(len(cells), dtype=bool)
        for metric, bound in slo.items():
            meets &= cells[f"{metric}_high"].to_numpy() <= bound
        entry: dict[str, Any] = {"policy": policy, "load_scale": scale}
        if not meets.any():
            entry.update(workers=None, verdict=f"none within {span} workers")
            rows.append(entry)
            continue
        best = cells.iloc[int(np.argmax(meets))]
        entry["workers"] = int(best["workers"])
        parts = []
        for metric, bound in slo.items():
            margin = 1.0 - best[metric] / bound
            entry[metric] = float(best[metric])
            entry[f"{metric}_margin"] = margin
            parts.append(f"{metric} {best[metric]:.4g} s <= {bound:g} s (margin {margin:.0%})")
        entry["verdict"] = f"{entry['workers']} workers: " + "; ".join(parts)
        rows.append(entry)
    return pd.DataFrame(rows)


def _check_slo(slo: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(slo, Mapping) or not slo:
        raise ValueError(
            f"slo must map metrics to bounds, e.g. {{'p95_latency': 0.2}}; got {slo!r}"
        )
    checked = {}
    for metric, bound in slo.items():
        if metric not in SLO_METRICS:
            raise ValueError(
                f"unknown SLO metric {metric!r}; the metrics are {', '.join(SLO_METRICS)}"
            )
        checked[metric] = _validate.positive(f"slo[{metric!r}]", bound)
    return checked


def _check_workers(workers: Iterable[int]) -> tuple[int, ...]:
    try:
        sizes = sorted(set(workers))
    except TypeError:
        raise ValueError(
            f"workers must be pool sizes, e.g. range(1, 33); got {workers!r}"
        ) from None
    if not sizes:
        raise ValueError("workers must hold at least one pool size")
    return tuple(_validate.integer_at_least("workers", size, 1) for size in sizes)


def _check_policies(policies: Sequence[str]) -> list[str]:
    chosen = [policies] if isinstance(policies, str) else list(policies)
    if not chosen:
        raise ValueError("policies must name at least one policy")
    for name in chosen:
        if name not in policy_names():
            raise ValueError(
                f"policies: unknown {name!r}; the policies are {', '.join(policy_names())}"
            )
    return chosen
