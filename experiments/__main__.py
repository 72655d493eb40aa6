"""Command line: ``python -m experiments list | run NAME [...] | plan --trace F --slo M=S
[...] | report DIR``.

Bad input gives one line on stderr and exit code 2, before anything is written. ``run``
runs the cells serially, in ``--jobs J`` local processes (simulation cells only), or on
Dask with ``--dask local`` (a ``LocalCluster``; ``--jobs`` then sets its workers) or
``--dask tcp://HOST:8786`` (an existing cluster); Dask is the optional extra
``pip install 'poolbench[dask]'``. Every backend gives the same results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from experiments import registry
from experiments.definition import Experiment

if TYPE_CHECKING:
    from experiments.dask_backend import DaskBackend


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(message)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m experiments", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("list", help="list the experiments")
    run = commands.add_parser("run", help="run an experiment")
    run.add_argument("name")
    run.add_argument("--quick", action="store_true", help="a small grid (about two minutes)")
    run.add_argument("--seed", default="0", help="base seed, an integer >= 0")
    run.add_argument("--reps", default=None, help="replications per cell (>= 1)")
    run.add_argument("--out", default="results", help="output folder (default: results)")
    run.add_argument(
        "--jobs",
        default=None,
        help="processes for simulation cells (>= 1, default 1); with --dask local, its workers",
    )
    run.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run the cells on Dask: 'local' (a LocalCluster) or a scheduler, tcp://HOST:8786",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    from experiments.plan_cli import add_arguments

    add_arguments(commands.add_parser("plan", help="fit a recorded trace; plan the pool from it"))
    report = commands.add_parser("report", help="redraw charts from a result folder")
    report.add_argument("folder")
    return parser


def _integer(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        _fail(f"--{name} must be an integer >= {minimum}, got {text!r}")
    if value < minimum:
        _fail(f"--{name} must be an integer >= {minimum}, got {text!r}")
    return value


def _writable(out: Path) -> Path:
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"--out {str(out)!r} is not a writable folder")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in registry.available():
            print(f"{name:24s} {registry.get(name).description}")
        return 0
    if args.command == "report":
        return _report(Path(args.folder))
    if args.command == "plan":
        from experiments import plan_cli

        try:
            return plan_cli.run(args, _fail, _integer, _writable)
        except KeyboardInterrupt:
            print("interrupted: finished chains are kept; rerun to resume", file=sys.stderr)
            return 130
    # Numbers and the folder first: they need no experiment imported (which takes seconds).
    seed = _integer("seed", args.seed, 0)
    reps = _integer("reps", args.reps, 1) if args.reps is not None else (1 if args.quick else 3)
    jobs = _integer("jobs", args.jobs, 1) if args.jobs is not None else 1
    out = _writable(Path(args.out))
    try:
        experiment = registry.get(args.name)
    except ValueError as error:
        _fail(str(error))
    if args.dask is not None:
        _dask_arguments(args.dask, args.jobs)
    from experiments.framework import run_experiment

    progress = not args.no_progress
    try:
        with _dask(args.dask, jobs if args.jobs is not None else None, experiment) as dask:
            folder = run_experiment(experiment, out, args.quick, seed, reps, jobs, progress, dask)
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept; rerun to resume", file=sys.stderr)
        return 130
    print(f"results and charts in {folder}/")
    return 0


def _dask_arguments(address: str, jobs: str | None) -> None:
    from experiments.dask_backend import check_dask_address

    try:
        check_dask_address(address)
    except ValueError as error:
        _fail(str(error))
    if jobs is not None and address != "local":
        _fail(
            "--jobs sets local processes; with --dask ADDRESS the cluster's workers run the cells"
        )


def _dask(
    address: str | None, workers: int | None, experiment: Experiment
) -> AbstractContextManager[DaskBackend | None]:
    """The Dask backend for ``--dask`` (connected now, so a bad address exits 2 before
    anything is written; its block closes it), or no backend (None)."""
    if address is None:
        return nullcontext()
    from experiments.dask_backend import connect_dask

    try:
        backend = connect_dask(address, workers)
    except ValueError as error:
        _fail(str(error))
    if experiment.needs_real and not backend.exclusive_workers():
        backend.close()
        _fail(
            f"no worker of the Dask cluster at {address} offers the resource exclusive=1, "
            f"which {experiment.name} needs: start workers with --resources exclusive=1"
        )
    return backend


def _report(folder: Path) -> int:
    import pandas as pd

    results, meta = folder / "results.parquet", folder / "metadata.json"
    if not results.is_file() or not meta.is_file():
        _fail(f"{str(folder)!r} holds no experiment results (results.parquet, metadata.json)")
    name = json.loads(meta.read_text())["config"]["experiment"]
    charts = registry.get(name).charts(pd.read_parquet(results), folder)
    for chart in charts:
        print(chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
