"""poolbench's model: a SimPy discrete-event simulation of a worker pool.

``sim.run(workload, policy, workers, faults=None, recovery=None, seed=0, overhead=None)``
returns a :class:`pool.RunResult`, the same schema the real pool's ``real.run`` returns.
``sim.explore()`` is an interactive explorer of it for Jupyter.
"""

from typing import TYPE_CHECKING, Any

from sim.simulated_pool import SimulatedPool, run

if TYPE_CHECKING:
    from sim.explorer import Explorer

__all__ = ["SimulatedPool", "explore", "run"]


def explore(*args: Any, **kwargs: Any) -> "Explorer":
    """The interactive explorer of the model (see :func:`sim.explorer.explore`); imported
    on first use, so that ``import sim`` needs no widgets."""
    from sim.explorer import explore as make

    return make(*args, **kwargs)
