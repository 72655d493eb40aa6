"""Running an experiment end to end, resumable and written atomically.

An experiment (:class:`~experiments.definition.Experiment`) declares its grid (a list
of cells, each a dict of parameters), how to run one cell for one replication (returning
tidy rows: backend, metric, value), and how to draw its charts from the combined
results. :func:`run_experiment` runs the cells it has not run yet with the same config
and code version, saving each finished cell at once (so Ctrl-C keeps them), then writes
``results.parquet``, ``summary.csv``, ``metadata.json`` and the charts.

The definitions are re-exported here, so ``from experiments.framework import Context``
keeps working in notebooks and scripts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments import execution, storage
from experiments.definition import (
    Cell,
    Context,
    Experiment,
    Row,
    cell_key,
    cell_seed,
    summarize,
    tidy,
)

__all__ = [
    "Cell",
    "Context",
    "Experiment",
    "Row",
    "cell_key",
    "cell_seed",
    "run_experiment",
    "summarize",
    "tidy",
]


def run_experiment(
    experiment: Experiment,
    out: Path,
    quick: bool,
    seed: int,
    reps: int,
    jobs: int = 1,
    progress: bool = True,
    dask: execution.CellRunner | None = None,
) -> Path:
    """Run the cells not yet saved, then write the experiment's files into ``out/name``.

    The cells run serially, in ``jobs`` local processes, or on ``dask`` if given (a
    :class:`~experiments.dask_backend.DaskBackend`); see
    :func:`experiments.execution.run_cells`."""
    folder = out / experiment.name
    cells = experiment.grid(quick)
    config = {"experiment": experiment.name, "quick": quick, "seed": seed, "reps": reps}
    journal = experiment.needs_journal
    overhead = execution.calibration(folder, experiment.needs_real, journal=journal)
    of_processes = execution.calibration(folder, experiment.needs_processes, "process", journal)
    version = storage.code_version()
    tasks = [
        (cell, Context(cell_seed(seed, cell, rep), rep, quick, overhead, of_processes))
        for cell in cells
        for rep in range(reps)
    ]
    paths = execution.run_cells(experiment, folder, tasks, version, jobs, progress, dask)
    results = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    storage.write_parquet(results, folder / "results.parquet")
    storage.write_csv(summarize(results), folder / "summary.csv")
    charts = experiment.charts(results, folder)
    metadata = storage.metadata(config, cells, overhead, version, [p.name for p in charts])
    if experiment.needs_processes:
        metadata["calibration_process"] = of_processes.as_dict()
    storage.write_json(metadata, folder / "metadata.json")
    return folder
