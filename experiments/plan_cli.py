"""``python -m experiments plan``: fit a recorded trace and plan the pool from it.

Writes ``plan.csv`` (every policy, size and load: each metric's mean and 95% CI),
``recommendation.json`` (the smallest pool per policy and load that meets the SLO) and
``plan.png``. Finished chains go to ``chains.jsonl`` as they end, so an interrupted plan
resumes where it stopped when run again with the same arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from experiments.local_processes import start_processes

Fail = Callable[[str], NoReturn]


def add_arguments(plan: argparse.ArgumentParser) -> None:
    """The ``plan`` subcommand's flags."""
    plan.add_argument("--trace", required=True, help="a trace from ThreadedPool(record=True)")
    plan.add_argument(
        "--slo", action="append", required=True, help="METRIC=SECONDS, e.g. p95_latency=0.2"
    )
    plan.add_argument("--workers", default="1-32", help="sizes: 1-32 or 2,4,8 (default 1-32)")
    plan.add_argument("--load", default="1,1.5,2", help="load scales (default 1,1.5,2)")
    plan.add_argument(
        "--policies", default="fifo,priority,work-stealing,autoscaling", help="policies to plan"
    )
    plan.add_argument("--reps", default="5", help="draws per cell (>= 2, default 5)")
    plan.add_argument("--tasks", default=None, help="tasks per draw (default: the trace's)")
    plan.add_argument("--seed", default="0", help="base seed, an integer >= 0")
    plan.add_argument("--gil-share", default="1.0", help="share of CPU holding the lock")
    plan.add_argument("--machine", default=None, help="calibration.json of real.calibrate()")
    plan.add_argument("--out", default="results/plan", help="output folder")
    plan.add_argument("--jobs", default=None, help="local processes (>= 1, default 1)")
    plan.add_argument("--dask", default=None, metavar="ADDRESS", help="'local' or tcp://HOST:8786")
    plan.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(
    args: argparse.Namespace,
    fail: Fail,
    integer: Callable[[str, str, int], int],
    writable: Callable[[Path], Path],
) -> int:
    """Check every flag, fit, plan, write the files; return the exit code. ``fail``,
    ``integer`` and ``writable`` are the command line's own checks (one line, exit 2)."""
    import pool
    from pool.planning import SLO_METRICS, check_arguments

    slo = _slo(args.slo, fail, SLO_METRICS)
    sizes = _sizes(args.workers, fail)
    loads = _floats("load", args.load, fail)
    policies = [name.strip() for name in args.policies.split(",") if name.strip()]
    reps = integer("reps", args.reps, 2)
    n_tasks = integer("tasks", args.tasks, 100) if args.tasks is not None else None
    seed = integer("seed", args.seed, 0)
    jobs = integer("jobs", args.jobs, 1) if args.jobs is not None else 1
    gil_share = _number("gil-share", args.gil_share, fail)  # its range: pool.fit says
    machine = _machine(args.machine, fail)
    out = writable(Path(args.out))
    try:
        check_arguments(slo, sizes, policies, loads, reps, n_tasks)
        model = pool.fit(args.trace, gil_share=gil_share, overhead=machine)
    except ValueError as error:
        fail(str(error))
    key = _config_key(args.trace, [sizes, policies, loads, reps, n_tasks, seed, gil_share], machine)
    chains = out / "chains.jsonl"
    done = _done_rows(chains, key)
    out.mkdir(parents=True, exist_ok=True)
    with _executor(jobs, args.dask, fail) as executor, chains.open("a") as log:

        def keep(rows: list[dict[str, Any]]) -> None:
            log.write(json.dumps({"key": key, "rows": rows}) + "\n")
            log.flush()

        answer = pool.plan(
            model,
            slo,
            sizes,
            policies,
            loads,
            reps,
            n_tasks=n_tasks,
            overhead=machine,
            seed=seed,
            executor=executor,
            done=done,
            on_chain=keep,
            progress=not args.no_progress,
        )
    _write(answer, model, out)
    return _say(answer, out)


def _slo(items: list[str], fail: Fail, metrics: tuple[str, ...]) -> dict[str, float]:
    slo: dict[str, float] = {}
    for item in ",".join(items).split(","):
        metric, _, bound = item.partition("=")
        metric = metric.strip()
        if metric not in metrics:
            fail(f"--slo: unknown metric {metric!r}; the metrics are {', '.join(metrics)}")
        try:
            slo[metric] = float(bound)
        except ValueError:
            fail(f"--slo {item!r}: the bound must be seconds, e.g. {metric}=0.2")
        if not slo[metric] > 0:
            fail(f"--slo {item!r}: the bound must be > 0 s")
    return slo


def _sizes(text: str, fail: Fail) -> list[int]:
    sizes: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if first < 1 or last < first:
                raise ValueError
            sizes.extend(range(first, last + 1))
    except ValueError:
        fail(f"--workers must be sizes >= 1 like 1-32 or 2,4,8; got {text!r}")
    return sizes


def _floats(name: str, text: str, fail: Fail) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        fail(f"--{name} must be numbers separated by commas, got {text!r}")
    if not all(value > 0 for value in values):  # NaN is not > 0 either
        fail(f"--{name} must be numbers > 0, got {text!r}")
    return values


def _number(name: str, text: str, fail: Fail) -> float:
    try:
        return float(text)
    except ValueError:
        fail(f"--{name} must be a number, got {text!r}")


def _machine(path: str | None, fail: Fail) -> Any:
    from pool.overhead import Overhead

    if path is None:
        return None
    try:
        return Overhead.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError) as error:
        fail(f"--machine {path!r}: not a calibration file ({error})")


def _config_key(trace: str, settings: list[Any], machine: Any) -> str:
    digest = hashlib.sha256(Path(trace).read_bytes())
    digest.update(json.dumps([settings, None if machine is None else machine.as_dict()]).encode())
    return digest.hexdigest()[:16]


def _done_rows(chains: Path, key: str) -> list[dict[str, Any]]:
    """Rows of chains a previous run with the same key finished (a torn last line is
    ignored: its chain runs again)."""
    if not chains.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for line in chains.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("key") == key:
            rows.extend(entry["rows"])
    return rows


@contextmanager
def _executor(jobs: int, dask: str | None, fail: Fail) -> Iterator[Executor | None]:
    if dask is not None:
        from experiments.dask_backend import check_dask_address, connect_dask

        try:
            check_dask_address(dask)
            backend = connect_dask(dask, jobs)
        except ValueError as error:
            fail(str(error))
        try:
            yield backend.client.get_executor()
        finally:
            backend.close()
    elif jobs > 1:
        with start_processes(jobs, "spawn") as pool:
            yield pool
    else:
        yield None


def _write(answer: Any, model: Any, out: Path) -> None:
    from experiments.plan_chart import plan_chart
    from experiments.storage import write_csv, write_json

    write_csv(answer.table, out / "plan.csv")
    records = json.loads(answer.recommendation.to_json(orient="records"))
    write_json(
        {"slo": answer.slo, "recommendation": records, "workload": model.source},
        out / "recommendation.json",
    )
    plan_chart(answer, out / "plan.png")


def _say(answer: Any, out: Path) -> int:
    for row in answer.recommendation.itertuples():
        print(f"{row.policy:14s} load x{row.load_scale:g}: {row.verdict}")
    if answer.recommendation["workers"].isna().all():
        print("no pool size in range meets the SLO at any load: widen --workers or relax --slo")
    print(f"plan.csv, recommendation.json and plan.png in {out}/")
    return 0
