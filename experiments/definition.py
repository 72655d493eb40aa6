"""What an experiment is: a named grid of cells, the context one cell runs in, its seeds,
and its results as tidy rows.

These definitions depend on nothing else in the package, so the experiments themselves
and the code that runs them (:mod:`experiments.execution`, :mod:`experiments.dask_grid`)
share them without importing each other; :mod:`experiments.framework` runs an
experiment end to end.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pool.overhead import Overhead

Cell = dict[str, Any]
Row = dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What a cell's run gets besides its parameters."""

    seed: int
    replication: int
    quick: bool
    overhead: Overhead = field(default_factory=Overhead)
    #: This machine's figures for a pool of worker processes (``needs_processes``).
    process_overhead: Overhead = field(default_factory=Overhead)


@dataclass(frozen=True)
class Experiment:
    """A named grid of cells, how to run one, and how to chart the results.

    ``grid(quick)`` lists the cells; ``run_cell(cell, context)`` returns tidy rows with
    at least ``backend``, ``metric`` and ``value``; ``charts(results, folder)`` draws PNGs
    and returns their paths. ``needs_real``: the cells measure the real pool, so they
    never run in parallel and a calibration runs first; ``needs_processes``: some measure
    a pool of worker processes, so a calibration of those runs too; ``needs_journal``:
    some run a journaled pool, so the calibrations measure the journal's costs too.
    """

    name: str
    description: str
    grid: Callable[[bool], list[Cell]]
    run_cell: Callable[[Cell, Context], list[Row]]
    charts: Callable[[pd.DataFrame, Path], list[Path]]
    needs_real: bool = False
    needs_processes: bool = False
    needs_journal: bool = False


def cell_key(cell: Cell) -> str:
    """A stable short name for a cell's parameters."""
    text = json.dumps(cell, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def cell_seed(seed: int, cell: Cell, replication: int) -> int:
    """The seed of one cell and replication: a SeedSequence keyed by the cell's own
    parameters, so adding or removing cells never changes another cell's seed."""
    spawn_key = (zlib.crc32(cell_key(cell).encode()), replication)
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=spawn_key)
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def tidy(cell: Cell, context: Context, rows: Sequence[Row]) -> pd.DataFrame:
    """Rows of one cell and replication with the cell's parameters as columns."""
    frame = pd.DataFrame(list(rows))
    for name, value in cell.items():
        frame[name] = value if not isinstance(value, list | dict) else json.dumps(value)
    frame["cell"] = cell_key(cell)
    frame["seed"] = context.seed
    frame["replication"] = context.replication
    return frame


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Predicted against measured per cell and metric (means over replications)."""
    ignored = ("backend", "value", "seed", "replication", "host")
    keys = [c for c in results.columns if c not in ignored]
    means = results.groupby([*keys, "backend"], dropna=False, sort=False)["value"].mean()
    table = means.unstack("backend").reset_index()
    if "sim" in table and "real" in table:
        table = table.rename(columns={"sim": "predicted", "real": "measured"})
        measured = table["measured"].where(table["measured"] != 0)
        table["rel_error"] = (table["predicted"] - measured) / measured
    return table
