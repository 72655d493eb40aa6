"""Running an experiment's cells: serially or in processes, skipping saved ones."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from experiments import storage
from experiments.framework import Cell, Context, Experiment, tidy
from pool.overhead import Overhead


def calibration(folder: Path, needs_real: bool) -> Overhead:
    """This machine's overhead for the model: measured once per result folder and reused,
    so a resumed run predicts with the figures its earlier cells used."""
    if not needs_real:
        return Overhead()
    saved = folder / "calibration.json"
    if saved.is_file():
        return Overhead(**json.loads(saved.read_text()))
    import real

    overhead = real.calibrate()
    storage.write_json(overhead.as_dict(), saved)
    return overhead


def cell_path(folder: Path, cell: Cell, context: Context, version: str) -> Path:
    """Where one cell and replication is saved; the name changes with config or code."""
    identity = json.dumps(
        [cell, context.replication, context.seed, context.quick, version],
        sort_keys=True,
        default=str,
    )
    return folder / "cells" / f"{hashlib.sha1(identity.encode()).hexdigest()[:16]}.parquet"


def run_cells(
    experiment: Experiment,
    folder: Path,
    tasks: list[tuple[Cell, Context]],
    version: str,
    jobs: int,
    progress: bool,
) -> list[Path]:
    """Run every task whose file is missing; return the files of all tasks, in order."""
    paths = [cell_path(folder, cell, context, version) for cell, context in tasks]
    todo = [(task, path) for task, path in zip(tasks, paths, strict=True) if not path.is_file()]
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(todo),
        desc=experiment.name,
        unit="cell",
        disable=not progress,
        leave=False,
    )
    with bar:
        if jobs > 1 and not experiment.needs_real and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as executor:
                futures = [
                    executor.submit(_run_one, experiment.name, cell, context, path)
                    for (cell, context), path in todo
                ]
                for future in as_completed(futures):
                    future.result()
                    bar.update()
        else:
            for (cell, context), path in todo:
                _run_one(experiment.name, cell, context, path)
                bar.update()
    return paths


def _run_one(name: str, cell: Cell, context: Context, path: Path) -> None:
    from experiments.registry import get

    rows = get(name).run_cell(cell, context)
    storage.write_parquet(tidy(cell, context, rows), path)
