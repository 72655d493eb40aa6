"""Real tasks for the real_work experiment, and what the model is told about them.

A task does what a crawler or an API client does: an HTTP GET to a server on
127.0.0.1 (:mod:`experiments.local_server`, another process, answering after a delay
the task asks for), ``json.loads`` of the body, and SHA-256 of a buffer. Each step has a
kind, from what its code does with the interpreter lock:

* the GET waits for the server; its own CPU is Python (``http.client``), holding the
  lock, in user time, and socket system calls, which release it, in system time; the
  server's CPU for the request runs in the other process on the same cores.
* ``json.loads`` holds the lock throughout (its C scanner never releases it).
* ``hashlib.sha256`` of more than 2 KiB releases the lock for the whole digest.

:func:`profile` measures each step alone (one task at a time on an idle one-worker
pool); :func:`model_workload` turns that into the workload the model gets: per task,
its own server delay plus the measured solo costs, split into the three kinds.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import resource
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

import real
from pool import Workload


@dataclass(frozen=True)
class Mix:
    """What the tasks of a mix do: wait ``delay`` s at the server (exponential with
    that mean), parse ``items`` JSON records, hash ``hash_bytes`` bytes."""

    delay: float
    items: int
    hash_bytes: int


MIXES: dict[str, Mix] = {
    "I/O-heavy": Mix(delay=0.020, items=20, hash_bytes=64 << 10),
    "mixed": Mix(delay=0.010, items=1_500, hash_bytes=1 << 20),
    "lock-heavy": Mix(delay=0.002, items=2_000, hash_bytes=64 << 10),
    "lock-free-heavy": Mix(delay=0.002, items=20, hash_bytes=6 << 20),
}


class LocalServer:
    """The HTTP server process, for a ``with`` block; ``port`` once started."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> LocalServer:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-m", "experiments.local_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=root,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (it says, on ``GET /cpu``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/cpu")
            return float(json.loads(connection.getresponse().read()))
        finally:
            connection.close()


@dataclass
class Steps:
    """Seconds one task spent in each step (CPU split as the kernel accounts it)."""

    fetch_wall: float = 0.0
    fetch_user: float = 0.0
    fetch_system: float = 0.0
    parse: float = 0.0
    hash: float = 0.0


class RealTask:
    """The task: GET, parse, hash. ``record`` keeps each call's :class:`Steps`."""

    def __init__(self, port: int, mix: Mix, record: bool = False) -> None:
        self.port, self.mix, self.record = port, mix, record
        self.buffer = memoryview(bytes(mix.hash_bytes))
        self.steps: list[Steps] = []
        self._local = threading.local()

    def __call__(self, delay: float) -> str:
        connection = self._connection()
        clock = _thread_clock()
        connection.request("GET", f"/?delay={delay:.6f}&items={self.mix.items}")
        body = connection.getresponse().read()
        fetched = _thread_clock()
        records = json.loads(body)
        parsed = _thread_clock()
        digest = hashlib.sha256(self.buffer).hexdigest()
        hashed = _thread_clock()
        if self.record:
            self.steps.append(
                Steps(
                    fetch_wall=fetched[0] - clock[0] - delay,
                    fetch_user=fetched[1] - clock[1],
                    fetch_system=fetched[2] - clock[2],
                    parse=parsed[3] - fetched[3],
                    hash=hashed[3] - parsed[3],
                )
            )
        return f"{len(records)}:{digest[:8]}"

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self._local.connection = connection
        return connection


def _thread_clock() -> tuple[float, float, float, float]:
    """(wall, user CPU, system CPU, CPU) of this thread now, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return time.perf_counter(), usage.ru_utime, usage.ru_stime, time.thread_time()


@dataclass(frozen=True)
class Profile:
    """Mean solo seconds per task of each kind of time, beside the server's delay."""

    lock_held: float
    lock_free: float
    waiting: float
    server_cpu: float

    def as_dict(self) -> dict[str, float]:
        """The figures by name."""
        return asdict(self)


def profile(server: LocalServer, mix: Mix, rng: np.random.Generator, tasks: int = 60) -> Profile:
    """Run ``tasks`` tasks one at a time on an idle one-worker pool; their mean steps.

    Each asks for a server delay drawn as the mix's are, so the solo task meets the
    conditions it meets in a run: a thread that sleeps, then computes on cold caches,
    and a server whose timers wake late.
    """
    task = RealTask(server.port, mix, record=True)
    delays = rng.exponential(mix.delay, tasks).tolist()
    with real.ThreadedPool("fifo", workers=1, thread_name_prefix="poolbench-profile") as pool:
        for _ in range(5):  # a connection, warm code
            pool.submit(task, 0.0).result()
        task.steps.clear()
        server_cpu = server.cpu_seconds()
        for delay in delays:
            pool.submit(task, delay).result()
        server_cpu = server.cpu_seconds() - server_cpu
    steps = task.steps
    user = float(np.mean([s.fetch_user for s in steps]))
    system = float(np.mean([s.fetch_system for s in steps]))
    wall = float(np.mean([s.fetch_wall for s in steps]))
    return Profile(
        lock_held=user + float(np.mean([s.parse for s in steps])),
        lock_free=system + float(np.mean([s.hash for s in steps])),
        waiting=max(0.0, wall - user - system),
        server_cpu=server_cpu / tasks,
    )


def model_workload(arrival: np.ndarray, delays: np.ndarray, solo: Profile) -> Workload:
    """The model's workload: each task waits its own server delay plus the solo round
    trip, computes the solo lock-held and lock-free times, and the server's CPU per
    request counts as computing that releases the lock (it runs on the same cores)."""
    held = np.full(len(delays), solo.lock_held)
    free = np.full(len(delays), solo.lock_free + solo.server_cpu)
    wait = delays + solo.waiting
    service = held + free + wait
    cpu = held + free
    return Workload(
        arrival=arrival,
        service=service,
        priority=np.zeros(len(delays), np.int64),
        cpu_fraction=cpu / service,
        affinity=np.full(len(delays), -1, np.int64),
        gil_share=held / cpu,
    )


def performer(task: RealTask, delays: np.ndarray) -> Any:
    """A ``perform`` for :func:`real.run`: task ``i`` runs ``task(delays[i])``."""
    values = delays.tolist()
    return lambda index: task(values[index])
