"""Running an experiment's cells: serially, in local processes or on a Dask cluster,
skipping saved ones.

Three backends, one result: each cell and replication gets its seed from
:func:`experiments.framework.cell_seed` (a ``SeedSequence`` keyed by the cell's own
parameters and the replication), so where and in which order cells run changes nothing
in ``results.parquet``.

* serial (the default): cells run one after another in this process.
* ``jobs > 1``: simulation cells run in a ``ProcessPoolExecutor`` of ``jobs`` processes.
  Cells that measure the real pool (``needs_real``) always run serially.
* Dask: inside ``with connect_dask(ADDRESS):`` (the CLI's ``--dask``) cells are
  submitted to a Dask cluster, ``local`` (a ``LocalCluster`` started here) or the
  scheduler at ``ADDRESS``. Needs the optional extra: ``pip install 'poolbench[dask]'``.
  Every task returns its cell's Parquet file, encoded on the worker, and *this* process
  writes it, so workers need no shared filesystem (and the client, which shares its
  machine with the scheduler, only copies bytes). They do need the same poolbench code installed: a
  worker whose sources hash differently is reported once (see :data:`CODE_MISMATCH`).
  A failed cell is reported on one line and resubmitted, at most :data:`RETRIES` times,
  then the run stops with the cell named. A worker lost mid-grid loses no cell: Dask
  reruns its tasks elsewhere, and only results that arrived are written. A cell of a
  ``needs_real`` experiment asks for the worker resource ``exclusive=1`` (start remote
  workers with ``dask worker ADDRESS --resources exclusive=1``; those of ``local`` have
  it) and also holds a cluster-wide lock named after its host, so two real
  measurements never overlap on one machine, even with several workers per host. Its
  rows record the host that measured (column ``host``, on every backend). The model's
  calibration is measured on this machine, before the cells are submitted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import socket
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
from tqdm import tqdm

from experiments import storage
from experiments.framework import Cell, Context, Experiment, cell_key, tidy
from pool.overhead import Overhead

RETRIES = 2
"""How many times a failed cell is resubmitted on a Dask cluster before the run stops."""
EXCLUSIVE = {"exclusive": 1}
"""The Dask worker resource a cell that measures the real pool asks for."""
INSTALL_DASK = "pip install 'poolbench[dask]' (or: pip install 'dask[distributed]')"
CODE_MISMATCH = "hashes poolbench's sources differently"
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    # The statistical profiler samples the task thread every 10 ms: about 10% of the time
    # of a pure-Python simulation.
    "distributed.worker.profile.enabled": False,
    # Monitors that feed the dashboard and log warnings. At their defaults (0.5 s, 20 ms,
    # 0.1 s) an idle 2-worker cluster costs 0.14 of a core: measured 0.67 s of CPU in the
    # client process (scheduler, nannies) and 0.36 s in each worker over 10 s; at these
    # values 0.12 s and 0.05 s.
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands freed memory
    # back at once and the next cell faults it in again (2-3x the system time of a
    # simulation cell). A cell is short-lived: use glibc's default, as serial runs do.
    "distributed.nanny.pre-spawn-environ": {
        "OMP_NUM_THREADS": 1,
        "MKL_NUM_THREADS": 1,
        "OPENBLAS_NUM_THREADS": 1,
    },
}
"""Dask settings for the ``LocalCluster`` of ``connect_dask("local")``: on a machine of
a few cores, the cluster's own monitors compete with the workers. A remote cluster keeps
its own settings (the same names, as ``DASK_DISTRIBUTED__...`` environment variables)."""
_ADDRESS = re.compile(
    r"(?P<scheme>tcp|tls|ws|wss)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d+))?"
)


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
    dask: DaskBackend | None = None,
) -> list[Path]:
    """Run every task whose file is missing; return the files of all tasks, in order.

    ``dask`` (or, if None, the backend of an enclosing ``with connect_dask(...)``) runs
    the cells on that Dask cluster; ``jobs`` then plays no part."""
    paths = [cell_path(folder, cell, context, version) for cell, context in tasks]
    todo = [(task, path) for task, path in zip(tasks, paths, strict=True) if not path.is_file()]
    backend = dask if dask is not None else _DASK.get()
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(todo),
        desc=experiment.name,
        unit="cell",
        disable=not progress,
        leave=False,
    )
    with bar:
        if backend is not None and todo:
            backend.run(experiment, todo, version, bar)
        elif jobs > 1 and not experiment.needs_real and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=jobs) as executor:
                futures = [
                    executor.submit(_run_one, experiment.name, cell, context, path)
                    for (cell, context), path in todo
                ]
                try:
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
    storage.write_parquet(_cell_frame(name, cell, context), path)


def _cell_frame(name: str, cell: Cell, context: Context) -> pd.DataFrame:
    """The tidy rows of one cell and replication; a real cell's name the host that measured."""
    from experiments.registry import get

    experiment = get(name)
    frame = tidy(cell, context, experiment.run_cell(cell, context))
    if experiment.needs_real:
        frame["host"] = socket.gethostname()
    return frame


# ------------------------------------------------------------------------------------ Dask


def check_dask_address(text: str) -> str:
    """``local`` or a scheduler address such as ``tcp://HOST:8786``; ValueError otherwise."""
    if text == "local":
        return text
    match = _ADDRESS.fullmatch(text)
    port = match["port"] if match else None
    if match is None or (port is not None and not 1 <= int(port) <= 65535):
        raise ValueError(
            f"--dask must be 'local' or a scheduler address such as tcp://HOST:8786, got {text!r}"
        )
    return text


def connect_dask(address: str, workers: int | None = None) -> DaskBackend:
    """Start a ``LocalCluster`` (``address == "local"``; ``workers`` processes of one thread
    each, by default one per core) or connect to the scheduler at ``address``.

    The workers import the experiments now, as a serial run has before its first cell.
    ValueError with a one-line message if the address is malformed, Dask is not installed,
    the scheduler cannot be reached or its workers cannot import poolbench. Use the result
    as a context manager: the cells of experiments run inside the block go to the cluster,
    which is closed at its end."""
    check_dask_address(address)
    try:
        import distributed
    except ImportError as error:
        raise ValueError(
            f"--dask needs Dask distributed, which is not installed: {INSTALL_DASK}"
        ) from error
    if address == "local":
        import dask

        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                resources=EXCLUSIVE,
                dashboard_address=":0",  # a free port: a fixed one clashes with other clusters
                silence_logs=logging.ERROR,
            )
        client = distributed.Client(cluster)
        client.wait_for_workers(len(cluster.workers))
        backend = DaskBackend(address, client, cluster)
    else:
        try:
            client = distributed.Client(address)
        except (OSError, TimeoutError, ValueError) as error:
            raise ValueError(
                f"cannot reach the Dask scheduler at {address}: {_one_line(error)}"
            ) from error
        backend = DaskBackend(address, client)
    try:
        client.run(_prepare_worker)
    except Exception as error:
        backend.close()
        raise ValueError(
            f"the Dask workers at {address} cannot import poolbench ({_one_line(error)}): "
            "install this checkout on every worker"
        ) from error
    return backend


class DaskBackend:
    """A Dask client (and the ``LocalCluster`` it started, for ``local``) that runs cells.

    ``with backend:`` makes it the backend of :func:`run_cells` (so of
    ``framework.run_experiment``) inside the block, and closes it at the end."""

    def __init__(self, address: str, client: Any, cluster: Any = None) -> None:
        self.address = address
        self.client = client
        self.cluster = cluster
        self._tokens: list[Token[DaskBackend | None]] = []

    def __enter__(self) -> DaskBackend:
        self._tokens.append(_DASK.set(self))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _DASK.reset(self._tokens.pop())
        self.close()

    def close(self) -> None:
        """Close the client, and the cluster if this backend started it."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def exclusive_workers(self) -> list[str]:
        """Addresses of the workers that offer the resource ``exclusive`` (real cells run
        only there)."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return [
            address
            for address, info in workers.items()
            if info.get("resources", {}).get("exclusive", 0) >= 1
        ]

    def run(
        self,
        experiment: Experiment,
        todo: list[tuple[tuple[Cell, Context], Path]],
        version: str,
        bar: tqdm[Any],
    ) -> None:
        """Submit every cell, write each result here as it completes; resubmit a failed
        cell up to :data:`RETRIES` times (reported on one line each), then raise."""
        from distributed import as_completed as completions

        real = experiment.needs_real
        if real and not self.exclusive_workers():
            raise RuntimeError(
                f"no worker of the Dask cluster at {self.address} offers the resource "
                "exclusive=1, which cells that measure the real pool need: start workers "
                "with `dask worker ADDRESS --resources exclusive=1`"
            )
        options: dict[str, Any] = {"pure": False}
        if real:
            options["resources"] = EXCLUSIVE

        def submit(cell: Cell, context: Context) -> Any:
            return self.client.submit(_dask_cell, experiment.name, cell, context, **options)

        pending: dict[Any, tuple[Cell, Context, Path, int]] = {}
        for (cell, context), path in todo:
            pending[submit(cell, context)] = (cell, context, path, 0)
        # Results are gathered on the client's event loop as tasks finish (with_results),
        # not one blocking round trip per cell; errors come back as values, not raised.
        finished = completions(
            list(pending), loop=self.client.loop, with_results=True, raise_errors=False
        )
        mismatched: set[str] = set()
        try:
            for future, outcome in finished:
                cell, context, path, failures = pending.pop(future)
                if future.status == "finished":
                    worker_version, host, parquet = outcome
                    future.release()
                    if worker_version != version and host not in mismatched:
                        mismatched.add(host)
                        tqdm.write(
                            f"warning: a Dask worker on {host} {CODE_MISMATCH} (sources hash "
                            f"{worker_version}, here {version}); results are only reproducible "
                            "if every worker has this checkout",
                            file=sys.stderr,
                        )
                    storage.write_bytes(parquet, path)
                    bar.update()
                    continue
                error = _failure(future, outcome)
                future.release()
                failures += 1
                label = _label(experiment.name, cell, context)
                if failures > RETRIES:
                    raise RuntimeError(
                        f"{label} failed {failures} times, last: {_one_line(error)}"
                    ) from error
                tqdm.write(
                    f"{label} failed: {_one_line(error)}; retry {failures} of {RETRIES}",
                    file=sys.stderr,
                )
                retry = submit(cell, context)
                pending[retry] = (cell, context, path, failures)
                finished.add(retry)
        finally:
            if pending:
                self.client.cancel(list(pending))


def _dask_cell(name: str, cell: Cell, context: Context) -> tuple[str, str, bytes]:
    """The task run on a Dask worker: this worker's code version, its host and the cell's
    rows as a Parquet file (bytes travel and are sized without the cost of pickling a
    DataFrame). A cell that measures the real pool holds its host's lock while it runs."""
    from experiments.registry import get

    host = socket.gethostname()
    if not get(name).needs_real:
        frame = _cell_frame(name, cell, context)
    else:
        from distributed import Lock

        with Lock(f"poolbench-real-measurement-{host}"):
            frame = _cell_frame(name, cell, context)
    return _worker_version(), host, storage.parquet_bytes(frame)


def _prepare_worker() -> str:
    """Run on every worker when connecting: import the experiments (as a serial run has
    before its first cell), so the first cells are not slowed by imports; this also shows
    at once whether the workers can import poolbench at all."""
    from experiments import registry

    registry.available()
    return _worker_version()


@functools.cache
def _worker_version() -> str:
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


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


_DASK: ContextVar[DaskBackend | None] = ContextVar("poolbench_dask_backend", default=None)
