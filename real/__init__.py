"""poolbench's real pool: threads that run tasks, driven by the same policies as the model.

``ThreadedPool`` is a library (``submit`` returns a ``concurrent.futures.Future``), and
``ProcessPool`` the same over worker processes;
``real.run`` replays a :class:`pool.Workload` in wall-clock time and returns the same
:class:`pool.RunResult` as ``sim.run``. This package never imports simpy.
"""

from real.calibration import calibrate
from real.injection import InjectedError
from real.process_pool import ProcessPool
from real.runner import run
from real.stats import PoolStats
from real.threaded_pool import ThreadedPool
from real.worker import WorkerCrash, WorkerLost

__all__ = [
    "InjectedError",
    "PoolStats",
    "ProcessPool",
    "ThreadedPool",
    "WorkerCrash",
    "WorkerLost",
    "calibrate",
    "run",
]
