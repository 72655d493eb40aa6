"""poolbench's model: a SimPy discrete-event simulation of a worker pool.

``sim.run(workload, policy, workers, faults=None, recovery=None, seed=0, overhead=None)``
returns a :class:`pool.RunResult`, the same schema the real pool's ``real.run`` returns.
"""

from sim.simulated_pool import SimulatedPool, run

__all__ = ["SimulatedPool", "run"]
