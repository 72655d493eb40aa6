"""Exact traces of the model's CPU (sim/cpu.py): cores shared by computing threads, the
interpreter lock handed over by CPython's rules, and what the two do to waiting tasks.

Every expected time is worked out by hand in the comments; the runs use FIFO and tasks
arriving together unless said otherwise. A task's start is when its worker, holding the
lock, takes it from the policy; its end is when the worker runs Python again after it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

import sim
from pool import Overhead, Workload, dists

EXACT = 1e-9


def tasks(
    arrival: list[float], service: list[float], cpu: list[float], gil: list[float]
) -> Workload:
    n_tasks = len(arrival)
    return Workload(
        arrival=np.array(arrival),
        service=np.array(service),
        priority=np.zeros(n_tasks, np.int64),
        cpu_fraction=np.array(cpu),
        affinity=np.full(n_tasks, -1, np.int64),
        gil_share=np.array(gil),
    )


def trace(workload: Workload, workers: int, **machine: float) -> np.ndarray:
    """(start, end) of each task, in task order."""
    result = sim.run(workload, "fifo", workers=workers, overhead=Overhead(**machine))
    return result.tasks[["start", "end"]].to_numpy()


def spans(expected: list[tuple[float, float]]) -> object:
    """``expected`` (start, end) pairs, to compare with :func:`trace` exactly."""
    return pytest.approx(np.array(expected, dtype=float), abs=EXACT)


def test_two_lock_free_tasks_on_one_core_share_it() -> None:
    # Two 1 s hashing tasks on one core each get half of it: both end at 2 s.
    assert trace(tasks([0, 0], [1, 1], [1, 1], [0, 0]), 2, cores=1) == spans([(0, 2), (0, 2)])


def test_lock_free_tasks_use_every_core_and_no_more() -> None:
    # Three 1 s tasks on two cores: 2/3 of a core each, all end at 1.5 s. Two tasks on
    # three cores: a thread never gets more than one core, so both end at 1 s.
    three = trace(tasks([0, 0, 0], [1, 1, 1], [1, 1, 1], [0, 0, 0]), 3, cores=2)
    assert three == spans([(0, 1.5)] * 3)
    two = trace(tasks([0, 0], [1, 1], [1, 1], [0, 0]), 2, cores=3)
    assert two == spans([(0, 1)] * 2)


def test_a_core_frees_up_when_a_task_ends() -> None:
    # One core; task A needs 1 s, B 3 s. Shared until A ends at 2 s (1 s each done),
    # then B alone: its last 2 s end at 4 s.
    assert trace(tasks([0, 0], [1, 3], [1, 1], [0, 0]), 2, cores=1) == spans([(0, 2), (0, 4)])


def test_lock_holders_take_turns_every_switch_interval() -> None:
    # Two 20 ms pure-Python tasks, 5 ms switch interval. Worker 1 waits from 0 and asks
    # for the lock at 5 ms, so A runs 0-5, B 5-10, A 10-15, ... A's 20 ms are done at
    # 35 ms, B's at 40 ms. B starts at 5 ms: taking a task needs the lock.
    assert trace(tasks([0, 0], [0.02, 0.02], [1, 1], [1, 1]), 2) == spans(
        [(0, 0.035), (0.005, 0.04)]
    )


def test_each_hand_over_of_the_lock_costs_the_hand_off_time() -> None:
    # As above with 1 ms hand-offs: A 0-5; nobody 5-6; B 6-11 (A waits from 6, when B
    # has the lock, so it asks at 11); nobody 11-12; A 12-17; B 18-23; A 24-29; B 30-35;
    # A 36-41: A's 20 ms are done at 41 and it keeps the lock to end its attempt. B,
    # with 15 ms done, gets the lock at 42 and ends at 47.
    result = trace(tasks([0, 0], [0.02, 0.02], [1, 1], [1, 1]), 2, gil_handoff=0.001)
    assert result == spans([(0, 0.041), (0.006, 0.047)])


def test_a_task_back_from_io_waits_a_switch_interval_behind_python() -> None:
    # A: 20 ms of pure Python from 0. B: 2 ms of waiting, arriving at 1 ms. The
    # submitter needs the lock to submit B: it waits from 1 ms, asks at 6 ms and submits
    # then; worker 1, woken, waits from 6 ms and gets the lock at 11 ms to take B. B's
    # wait ends at 13 ms; it needs the lock to finish and gets it at 18 ms: B's latency
    # is 17 ms for 2 ms of work (the convoy effect). A ends at 20 ms plus the 0 ms the
    # others held the lock for: 20 ms.
    result = trace(tasks([0, 0.001], [0.02, 0.002], [1, 0], [1, 1]), 2, cores=2)
    assert result == spans([(0, 0.02), (0.011, 0.018)])


def test_io_returns_at_once_beside_lock_free_computing() -> None:
    # The same with A in C code that releases the lock: nothing holds the lock, so B
    # is submitted at 1 ms, taken at once, and ends at 3 ms; A ends at 20 ms.
    result = trace(tasks([0, 0.001], [0.02, 0.002], [1, 0], [0, 1]), 2, cores=2)
    assert result == spans([(0, 0.02), (0.001, 0.003)])


def test_a_task_waits_then_computes_with_the_lock_then_without() -> None:
    # One core. A: 2 ms of waiting, 4 ms of Python, 4 ms of C code (cpu 0.8, gil 0.5);
    # B: 10 ms of Python. A is taken at 0 and drops the lock to wait; B is taken at 0
    # and runs Python. A, back at 2, waits for the lock and asks for it at 7: A's
    # Python runs 7-11 (B has 7 ms done). A drops the lock for its C code and B takes it:
    # B's last 3 ms and A's C code share the core at half speed, so B ends at 17 with
    # A's C code 3 ms done; A's last 1 ms alone ends at 18.
    workload = tasks([0, 0], [0.01, 0.01], [0.8, 1], [0.5, 1])
    assert trace(workload, 2, cores=1) == spans([(0, 0.018), (0, 0.017)])


def test_pure_computing_reduces_to_a_first_come_first_served_lock() -> None:
    # With unlimited cores and no switch interval (today's model before the CPU was
    # modelled), pure-Python tasks queue on the lock first come, first served, and
    # pure waiting tasks never touch it. Checked against a plain SimPy model of that.
    workload = Workload.poisson(40.0, dists.Exponential(0.02), 300, seed=3)
    for fraction in (1.0, 0.0):
        wl = workload.with_cpu_fraction(fraction)
        result = sim.run(wl, "fifo", workers=3, overhead=Overhead(switch_interval=math.inf), seed=3)
        expected = _lock_queue_model(wl, workers=3)
        assert result.tasks["end"].to_numpy() == pytest.approx(expected, abs=EXACT)


def _lock_queue_model(workload: Workload, workers: int) -> np.ndarray:
    """Ends of a pool of ``workers`` where the CPU part of a task holds one FIFO lock."""
    env = simpy.Environment()
    pool, lock = simpy.Resource(env, workers), simpy.Resource(env, 1)
    ends = np.zeros(len(workload))

    def task(index: int) -> simpy.events.ProcessGenerator:
        yield env.timeout(float(workload.arrival[index]))
        with pool.request() as slot:
            yield slot
            cpu = float(workload.service[index] * workload.cpu_fraction[index])
            if cpu > 0:
                with lock.request() as held:
                    yield held
                    yield env.timeout(cpu)
            yield env.timeout(float(workload.service[index]) - cpu)
        ends[index] = env.now

    for index in range(len(workload)):
        env.process(task(index))
    env.run()
    return ends


def test_an_io_only_workload_takes_the_fast_path_unless_the_machine_is_given() -> None:
    # Without machine figures an I/O-only workload never simulates the CPU (the speed
    # benchmark's path); with them every task takes and gives back the lock, which,
    # with free cores and no costs, changes nothing for tasks that only wait.
    workload = Workload.poisson(300.0, dists.Exponential(0.01), 400, seed=5)
    fast = sim.run(workload, "fifo", workers=4, seed=5)
    machine = sim.run(workload, "fifo", workers=4, seed=5, overhead=Overhead(cores=64))
    assert machine.tasks["end"].to_numpy() == pytest.approx(fast.tasks["end"].to_numpy(), abs=EXACT)


def test_the_submitter_costs_lock_time_per_task() -> None:
    # Two waiting tasks due at 0, a submit costs 1 ms of Python. The submitter holds the
    # lock 0-1 ms and 1-2 ms (it wants it again at once, before the woken worker asks);
    # the first worker waits from 1 ms, gets the lock at 2 ms, takes task 0 and drops
    # the lock to wait; the second, woken at 2 ms, takes task 1 at 2 ms as well.
    result = sim.run(
        tasks([0, 0], [0.01, 0.01], [0, 0], [1, 1]),
        "fifo",
        workers=2,
        overhead=Overhead(submit=0.001),
    )
    assert result.tasks[["start", "end"]].to_numpy() == spans([(0.002, 0.012), (0.002, 0.012)])


def test_a_thread_that_wakes_on_busy_cores_waits_for_one() -> None:
    # One core. A: 10 ms of C code from 0; B: 2 ms of waiting. A's worker, woken first,
    # takes A and computes. B's worker, woken at 0 too, finds the core busy and waits for
    # the scheduler (the busy hand-off, 1 ms, beyond the free one, 0): it takes B at 1 ms.
    # B's wait ends at 3 ms with the core still busy: 1 ms more, B ends at 4 ms. With a
    # core to spare, B runs from 0 to 2 ms.
    workload = tasks([0, 0], [0.01, 0.002], [1, 0], [0, 1])
    busy = trace(workload, 2, cores=1, gil_handoff_busy=0.001)
    assert busy == spans([(0, 0.01), (0.001, 0.004)])
    spare = trace(workload, 2, cores=2, gil_handoff_busy=0.001)
    assert spare == spans([(0, 0.01), (0, 0.002)])
