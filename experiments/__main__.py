"""Command line: ``python -m experiments list | run NAME [...] | report DIR``.

Bad input gives one line on stderr and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from experiments import registry


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(message)


def _fail(message: str) -> None:
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
    run.add_argument("--jobs", default="1", help="processes for simulation cells (>= 1)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    try:
        experiment = registry.get(args.name)
    except ValueError as error:
        _fail(str(error))
    seed = _integer("seed", args.seed, 0)
    reps = _integer("reps", args.reps, 1) if args.reps is not None else (1 if args.quick else 3)
    jobs = _integer("jobs", args.jobs, 1)
    out = _writable(Path(args.out))
    from experiments.framework import run_experiment

    try:
        folder = run_experiment(
            experiment, out, args.quick, seed, reps, jobs, progress=not args.no_progress
        )
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept; rerun to resume", file=sys.stderr)
        return 130
    print(f"results and charts in {folder}/")
    return 0


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
