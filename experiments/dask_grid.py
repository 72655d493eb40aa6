"""How a grid of cells runs on a Dask cluster: the tasks, what they return, retries.

Cells go out in groups of about a second (:mod:`experiments.batching`), a few tasks per
worker thread at a time, in grid order; each cell keeps its own seed, so the results are
those of a serial run, byte for byte. A task returns each cell's Parquet file, encoded on
the worker, or the error the cell raised; the client writes the files (workers need no
shared filesystem). A failed cell is reported on one line and run again, alone, at most
:data:`RETRIES` times; then the run stops with the cell named. A lost worker loses no
cell: Dask reruns its tasks elsewhere, and only results that arrived are written. A cell
that measures the real pool runs alone in its task, on a worker offering
:data:`EXCLUSIVE`, holding a cluster-wide lock named after its host.
"""

from __future__ import annotations

import functools
import json
import pickle
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm import tqdm

from experiments import storage
from experiments.batching import Batches, PendingCell
from experiments.definition import Cell, Context, Experiment, cell_key
from experiments.execution import Todo, cell_frame

RETRIES = 2
"""How many times a failed cell is run again on a Dask cluster before the run stops."""
EXCLUSIVE = {"exclusive": 1}
"""The Dask worker resource a cell that measures the real pool asks for."""
TASKS_PER_SLOT = 2
"""Tasks kept on the cluster per worker thread: one running and one ready to start."""
CODE_MISMATCH = "hashes poolbench's sources differently"
Outcome = tuple[float, bytes | BaseException]
"""What a worker returns for one cell: its seconds, and its Parquet file or its error."""


@dataclass(frozen=True)
class CellsDone:
    """What a task returns: the worker's code version and host, and for each of its cells
    the seconds it took and its Parquet file or the error it raised."""

    version: str
    host: str
    outcomes: list[Outcome]


class Cluster(Protocol):
    """What :func:`run_grid` needs of a connection to a Dask cluster (such as
    :class:`experiments.dask_backend.DaskBackend`, which connects and calls it)."""

    address: str
    client: Any  # a distributed.Client

    def exclusive_workers(self) -> list[str]:
        """Addresses of the workers that offer :data:`EXCLUSIVE`."""

    def slots(self) -> int:
        """Worker threads in the cluster, at least 1."""


def run_grid(
    backend: Cluster,
    experiment: Experiment,
    todo: Todo,
    version: str,
    bar: tqdm[Any],
) -> None:
    """Run the cells in groups, write each cell's file as its group completes; run a
    failed cell again, alone, up to :data:`RETRIES` times (reported on one line
    each), then raise."""
    from distributed import as_completed as completions

    real = experiment.needs_real
    if real and not backend.exclusive_workers():
        raise RuntimeError(
            f"no worker of the Dask cluster at {backend.address} offers the resource "
            "exclusive=1, which cells that measure the real pool need: start workers "
            "with `dask worker ADDRESS --resources exclusive=1`"
        )
    options: dict[str, Any] = {"pure": False}
    if real:
        options["resources"] = EXCLUSIVE
    batches = Batches(
        (PendingCell(cell, context, path) for (cell, context), path in todo),
        max_cells=1 if real else None,
    )
    in_flight: dict[Any, list[PendingCell]] = {}

    def submit_more() -> list[Any]:
        submitted = []
        while batches and len(in_flight) < TASKS_PER_SLOT * backend.slots():
            group = batches.take(backend.slots())
            cells = [(pending.cell, pending.context) for pending in group]
            future = backend.client.submit(_dask_cells, experiment.name, cells, **options)
            in_flight[future] = group
            submitted.append(future)
        return submitted

    # Results are gathered on the client's event loop as tasks finish (with_results),
    # not one blocking round trip per task; errors come back as values, not raised.
    finished = completions(loop=backend.client.loop, with_results=True, raise_errors=False)
    check = _VersionCheck(version)
    try:
        for future in submit_more():
            finished.add(future)
        for future, outcome in finished:
            group = in_flight.pop(future)
            future.release()
            if isinstance(outcome, CellsDone):
                check(outcome.version, outcome.host)
                failed = _write_cells(group, outcome.outcomes, batches, bar)
                batches.requeue([_charge(experiment, *failure) for failure in failed])
            elif len(group) == 1:
                batches.requeue([_charge(experiment, group[0], _failure(future, outcome))])
            else:
                batches.requeue(_split(experiment, group, _failure(future, outcome)))
            for new in submit_more():
                finished.add(new)
    finally:
        if in_flight:
            backend.client.cancel(list(in_flight))


def _write_cells(
    group: list[PendingCell], outcomes: list[Outcome], batches: Batches, bar: tqdm[Any]
) -> list[tuple[PendingCell, BaseException]]:
    """Write the file of every cell of ``group`` that succeeded; return those that failed,
    with their errors."""
    failed = []
    for pending, (seconds, result) in zip(group, outcomes, strict=True):
        if isinstance(result, bytes):
            storage.write_bytes(result, pending.path)
            batches.record(seconds)
            bar.update()
        else:
            failed.append((pending, result))
    return failed


def _charge(experiment: Experiment, pending: PendingCell, error: BaseException) -> PendingCell:
    """Count a failure of a cell that ran, report it and return the cell to run again;
    raise RuntimeError, naming the cell, once it has failed more than :data:`RETRIES`
    times."""
    pending.failures += 1
    label = _label(experiment.name, pending.cell, pending.context)
    if pending.failures > RETRIES:
        raise RuntimeError(
            f"{label} failed {pending.failures} times, last: {one_line(error)}"
        ) from error
    tqdm.write(
        f"{label} failed: {one_line(error)}; retry {pending.failures} of {RETRIES}",
        file=sys.stderr,
    )
    return pending


def _split(
    experiment: Experiment, group: list[PendingCell], error: BaseException
) -> list[PendingCell]:
    """A task of several cells failed as a whole (its worker kept dying, its result could
    not travel): which cell caused it is unknown, so none is charged; each runs again
    alone, and a cell that fails alone is charged then."""
    tqdm.write(
        f"{experiment.name}: a task of {len(group)} cells failed: {one_line(error)}; "
        "its cells run again one at a time",
        file=sys.stderr,
    )
    for pending in group:
        pending.alone = True
    return group


class _VersionCheck:
    """Warns once per host whose workers hash poolbench's sources differently."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.warned: set[str] = set()

    def __call__(self, worker_version: str, host: str) -> None:
        if worker_version == self.version or host in self.warned:
            return
        self.warned.add(host)
        tqdm.write(
            f"warning: a Dask worker on {host} {CODE_MISMATCH} (sources hash "
            f"{worker_version}, here {self.version}); results are only reproducible "
            "if every worker has this checkout",
            file=sys.stderr,
        )


def _dask_cells(name: str, cells: list[tuple[Cell, Context]]) -> CellsDone:
    """The task run on a Dask worker: this worker's code version, its host, and for each
    cell its seconds and its rows as a Parquet file (bytes travel and are sized without
    the cost of pickling a DataFrame) or the error it raised. A cell that measures the
    real pool holds its host's lock while it runs."""
    from experiments.registry import get

    host = socket.gethostname()
    outcomes: list[Outcome] = []
    for cell, context in cells:
        began = time.perf_counter()
        try:
            if get(name).needs_real:
                from distributed import Lock

                with Lock(f"poolbench-real-measurement-{host}"):
                    frame = cell_frame(name, cell, context)
            else:
                frame = cell_frame(name, cell, context)
            result: bytes | BaseException = storage.parquet_bytes(frame)
        except Exception as error:  # reported for this cell; the others' files still count
            result = _sendable(error)
        outcomes.append((time.perf_counter() - began, result))
    return CellsDone(worker_version(), host, outcomes)


def _sendable(error: Exception) -> BaseException:
    """``error``, or a RuntimeError with its text if it cannot make the trip to the
    client (pickled here and unpickled there: an exception whose constructor takes other
    arguments than its message pickles but does not unpickle)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(one_line(error))
    return error


@functools.cache
def worker_version() -> str:
    """The hash of poolbench's sources here (computed once per process)."""
    return storage.code_version()


def _failure(future: Any, outcome: Any) -> BaseException:
    """The exception of a task that did not finish: ``outcome`` is what ``as_completed``
    gave for it, an ``(type, exception, traceback)`` triple or a ``CancelledError``."""
    if isinstance(outcome, BaseException):
        return outcome
    if isinstance(outcome, tuple) and len(outcome) == 3 and isinstance(outcome[1], BaseException):
        return outcome[1]
    return RuntimeError(f"its task was {future.status}")


def _label(name: str, cell: Cell, context: Context) -> str:
    parameters = json.dumps(cell, sort_keys=True, default=str)
    return f"{name}: cell {cell_key(cell)} {parameters} replication {context.replication}"


def one_line(error: BaseException) -> str:
    """``error`` as one line: its type and its message, whitespace collapsed."""
    return " ".join(f"{type(error).__name__}: {error}".split())
