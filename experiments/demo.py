"""A first look: the model compares the four policies on one workload and prints a table."""

from __future__ import annotations

import pandas as pd

import sim
from pool import Autoscaling, Policy, Workload, WorkStealing, dists


def policy_table(n_tasks: int = 20_000, workers: int = 4, seed: int = 1) -> pd.DataFrame:
    """Simulated headline metrics of each policy on a skewed, two-class Poisson workload."""
    workload = Workload.poisson(
        rate=340.0,
        service=dists.LogNormal(mean=0.010, cv=1.5),
        n_tasks=n_tasks,
        priorities={0: 0.3, 1: 0.7},
        seed=seed,
    ).with_affinity(workers, hot_share=0.5, seed=seed)
    policies: dict[str, str | Policy] = {
        "fifo": "fifo",
        "priority": "priority",
        "work-stealing (affinity)": WorkStealing(placement="affinity", victim="longest"),
        "autoscaling (1-8)": Autoscaling(min_workers=1, max_workers=8, decision_interval=0.2),
    }
    rows = []
    for label, policy in policies.items():
        summary = sim.run(workload, policy, workers=workers, seed=seed).summary()
        rows.append({"policy": label, **{key: summary[key] for key in _COLUMNS}})
    return pd.DataFrame(rows).set_index("policy")


_COLUMNS = ("throughput", "mean_latency", "p95_latency", "p99_latency", "utilization", "stolen")


def main() -> None:
    """Print the policy table."""
    table = policy_table()
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
        print("Simulated pool, 4 workers, 20,000 tasks, load 0.85, lognormal service (cv 1.5):")
        print(table)


if __name__ == "__main__":
    main()
