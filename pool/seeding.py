"""Named random streams for one run, spawned from a single seed.

Both pools spawn the same streams in the same order, so a seed gives the simulated and
the real run the same random victims, the same random faults and the same failing
attempts. No global random state is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pool import _validate


@dataclass(frozen=True)
class RunStreams:
    """Independent generators for the parts of a run that draw random numbers."""

    policy: np.random.Generator
    faults: np.random.Generator
    failures: np.random.Generator


def run_streams(seed: int) -> RunStreams:
    """Spawn the run's generators from ``seed`` (an int >= 0)."""
    seed = _validate.integer_at_least("seed", seed, 0)
    policy, faults, failures = np.random.SeedSequence(seed).spawn(3)
    return RunStreams(
        np.random.default_rng(policy),
        np.random.default_rng(faults),
        np.random.default_rng(failures),
    )
