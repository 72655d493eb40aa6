"""Connecting to a Dask cluster that runs an experiment's cells (the CLI's ``--dask``).

``backend = connect_dask(ADDRESS)`` connects to a Dask cluster: ``local`` (a
``LocalCluster`` started here, tuned by :data:`LOCAL_CLUSTER_CONFIG`) or the scheduler at
``ADDRESS``. A run given ``dask=backend`` (:func:`experiments.execution.run_cells`,
``framework.run_experiment``) sends its cells there; no other run does. Needs the
optional extra:
``pip install 'poolbench[dask]'``. How the cells run there (groups, retries, real cells
alone per host) is :mod:`experiments.dask_grid`. Workers need the same poolbench code
installed: a worker whose sources hash differently is reported once. Cells that measure
the real pool need workers offering the resource ``exclusive=1`` (start remote workers
with ``dask worker ADDRESS --resources exclusive=1``; those of ``local`` have it). The
model's calibration is measured on this machine, before the cells are submitted.
"""

from __future__ import annotations

import logging
import re
import time
from types import TracebackType
from typing import Any

from tqdm import tqdm

from experiments.dask_grid import EXCLUSIVE, one_line, run_grid, worker_version
from experiments.definition import Experiment
from experiments.execution import Todo

SLOTS_REFRESH_SECONDS = 2.0
"""How often the number of worker threads is read again (a cluster may grow or shrink)."""
INSTALL_DASK = "pip install 'poolbench[dask]' (or: pip install 'dask[distributed]')"
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
    the scheduler cannot be reached or its workers cannot import poolbench. Pass the result
    as ``dask=`` to the runs that should use the cluster, and close it when done: ``with
    connect_dask(ADDRESS) as backend:`` closes it at the end of the block."""
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
                f"cannot reach the Dask scheduler at {address}: {one_line(error)}"
            ) from error
        backend = DaskBackend(address, client)
    try:
        client.run(_prepare_worker)
    except Exception as error:
        backend.close()
        raise ValueError(
            f"the Dask workers at {address} cannot import poolbench ({one_line(error)}): "
            "install this checkout on every worker"
        ) from error
    return backend


class DaskBackend:
    """A Dask client (and the ``LocalCluster`` it started, for ``local``) that runs cells.

    Cells go to it only where it is passed, as ``run_cells(..., dask=backend)`` (or
    ``framework.run_experiment(..., dask=backend)``). ``with backend:`` only closes it at
    the end of the block."""

    def __init__(self, address: str, client: Any, cluster: Any = None) -> None:
        self.address = address
        self.client = client
        self.cluster = cluster
        self._slots = (0, -float("inf"))  # worker threads, and when they were counted

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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

    def slots(self) -> int:
        """Worker threads in the cluster (at least 1), read at most every
        :data:`SLOTS_REFRESH_SECONDS`."""
        count, when = self._slots
        now = time.monotonic()
        if now - when >= SLOTS_REFRESH_SECONDS:
            count = max(1, sum(self.client.nthreads().values()))
            self._slots = (count, now)
        return count

    def run(
        self,
        experiment: Experiment,
        todo: Todo,
        version: str,
        bar: tqdm[Any],
    ) -> None:
        """Run the cells of ``todo`` on the cluster and write their files (see
        :func:`experiments.dask_grid.run_grid`)."""
        run_grid(self, experiment, todo, version, bar)


def _prepare_worker() -> str:
    """Run on every worker when connecting: import the experiments (as a serial run has
    before its first cell), so the first cells are not slowed by imports; this also shows
    at once whether the workers can import poolbench at all."""
    from experiments import registry

    registry.available()
    return worker_version()
