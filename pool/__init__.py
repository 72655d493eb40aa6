"""poolbench's shared model: workloads, distributions, policies, faults and results.

Pure Python and numpy: no simpy and no threading, so both the simulated pool (``sim``)
and the real threaded pool (``real``) drive the very same objects.
"""

from pool import dists, policies, theory
from pool.autoscaling import Autoscaling
from pool.faults import Fault, FaultPlan, Recovery
from pool.fitting import fit
from pool.overhead import Overhead
from pool.placement import JoinShortestQueue, PowerOfD
from pool.planning import Plan, plan
from pool.policies import FIFO, POLICY_NAMES, Policy, Priority
from pool.registry import policy_names, register_policy
from pool.results import RunResult, compare
from pool.tasks import Workload
from pool.work_stealing import WorkStealing
from pool.workload_model import WorkloadModel

__all__ = [
    "FIFO",
    "POLICY_NAMES",
    "Autoscaling",
    "Fault",
    "FaultPlan",
    "JoinShortestQueue",
    "Overhead",
    "Plan",
    "Policy",
    "PowerOfD",
    "Priority",
    "Recovery",
    "RunResult",
    "WorkStealing",
    "Workload",
    "WorkloadModel",
    "compare",
    "dists",
    "fit",
    "plan",
    "policies",
    "policy_names",
    "register_policy",
    "theory",
]
