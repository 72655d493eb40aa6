"""Running an experiment's cells: serially, in local processes or on a Dask cluster,
skipping saved ones.

Three backends, one result: each cell and replication gets its seed from
:func:`experiments.definition.cell_seed` (a ``SeedSequence`` keyed by the cell's own
parameters and the replication), so where and in which order cells run changes nothing
in ``results.parquet``.

* serial (the default): cells run one after another in this process.
* ``jobs > 1``: simulation cells run in a ``ProcessPoolExecutor`` of ``jobs`` processes
  that leave Ctrl-C to this one (:mod:`experiments.local_processes`).
  Cells that measure the real pool (``needs_real``) always run serially.
* Dask: ``run_cells(..., dask=backend)`` with ``backend = connect_dask(ADDRESS)`` (the
  CLI's ``--dask``) sends the cells to a Dask cluster; see :mod:`experiments.dask_backend`.
  Any :class:`CellRunner` can stand in: this module imports nothing of Dask.

A cell of an experiment that measures the real pool records the host that measured
(column ``host``, on every backend).
"""

from __future__ import annotations

import gc
import hashlib
import json
import socket
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from tqdm import tqdm

from experiments import storage
from experiments.definition import Cell, Context, Experiment, tidy
from experiments.local_processes import start_processes
from pool.overhead import Overhead

Todo = list[tuple[tuple[Cell, Context], Path]]
"""Cells still to run: each cell and its context, and the file its rows go to."""


class CellRunner(Protocol):
    """Runs cells elsewhere than in this machine's processes, such as
    :class:`experiments.dask_backend.DaskBackend` on a Dask cluster."""

    def run(self, experiment: Experiment, todo: Todo, version: str, bar: tqdm[Any]) -> None:
        """Run every cell of ``todo``, write its file, and advance ``bar`` once per cell."""


def calibration(
    folder: Path, needs_real: bool, backend: str = "thread", journal: bool = False
) -> Overhead:
    """This machine's overhead for the model (of a pool of threads, or with ``backend``
    "process" of worker processes; with ``journal`` the journal's costs too): measured
    once per result folder and reused, so a resumed run predicts with the figures its
    earlier cells used."""
    if not needs_real:
        return Overhead()
    saved = folder / ("calibration.json" if backend == "thread" else f"calibration_{backend}.json")
    if saved.is_file():
        kept = Overhead.from_dict(json.loads(saved.read_text()))
        if not journal or kept.program_start > 0:  # else saved before the journal's costs
            return kept
    import real

    overhead = real.calibrate(backend=backend, journal=journal)
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
    dask: CellRunner | None = None,
) -> list[Path]:
    """Run every task whose file is missing; return the files of all tasks, in order.

    ``dask`` (a connected :class:`~experiments.dask_backend.DaskBackend`), if given,
    runs the cells; ``jobs`` then plays no part. Nothing else chooses the backend."""
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
        if dask is not None and todo:
            dask.run(experiment, todo, version, bar)
        elif jobs > 1 and not experiment.needs_real and len(todo) > 1:
            with start_processes(jobs) as executor:
                try:
                    futures = [
                        executor.submit(_run_one, experiment.name, cell, context, path)
                        for (cell, context), path in todo
                    ]
                    for future in as_completed(futures):
                        future.result()
                        bar.update()
                except BaseException:  # Ctrl-C or a failed cell: drop what has not started
                    executor.shutdown(wait=True, cancel_futures=True)
                    raise
        else:
            for (cell, context), path in todo:
                _run_one(experiment.name, cell, context, path)
                bar.update()
    return paths


def _run_one(name: str, cell: Cell, context: Context, path: Path) -> None:
    storage.write_parquet(cell_frame(name, cell, context), path)


def cell_frame(name: str, cell: Cell, context: Context) -> pd.DataFrame:
    """The tidy rows of one cell and replication of the registered experiment ``name``; a
    real cell's name the host that measured."""
    from experiments.registry import get

    experiment = get(name)
    if experiment.needs_real:
        quiet_collector()
    frame = tidy(cell, context, experiment.run_cell(cell, context))
    if experiment.needs_real:
        frame["host"] = socket.gethostname()
    return frame


def quiet_collector() -> None:
    """Move every object this process holds now out of the garbage collector's reach.

    The harness's own heap (pandas, matplotlib, SimPy, Dask: 100,000+ objects) would
    otherwise be walked by every full collection, holding the interpreter lock for up
    to 130 ms here, in the middle of a real measurement: what the pool and its tasks
    allocate is still collected. Long-running servers do the same after start-up.
    """
    gc.collect()
    gc.freeze()
