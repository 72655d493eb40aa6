"""WorkStealing's index of loaded slots: always the slots whose queue holds tasks, and
every steal the choice a scan of all slots would make, with the same random draws."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pool import WorkStealing
from pool.draws import IndexDraws


def scanned_victim(policy: WorkStealing, thief: int, draws: IndexDraws) -> int | None:
    """The victim by the plain rule: scan every slot in order (the reference)."""
    queues = policy._queues
    candidates = [slot for slot in sorted(queues) if slot != thief and queues[slot]]
    if not candidates:
        return None
    if policy.victim == "longest":
        return max(candidates, key=lambda slot: len(queues[slot]))
    return candidates[draws.below(len(candidates))]


@pytest.mark.parametrize("victim", ["random", "longest"])
@pytest.mark.parametrize("amount", ["one", "half"])
def test_index_matches_a_full_scan(victim: str, amount: str) -> None:
    ops = np.random.default_rng(5)
    policy = WorkStealing(placement="affinity", victim=victim, amount=amount)  # type: ignore[arg-type]
    policy.reset(range(6), np.random.default_rng(9))
    task = 0
    for _ in range(4000):
        kind = ops.integers(6)
        slot = int(ops.integers(8))
        if kind <= 1:
            policy.submit(task, 0, slot, 0.0)
            task += 1
        elif kind == 2:
            policy.next_task(slot, 0.0)
        elif kind == 3:
            reference_draws = copy.deepcopy(policy._draws)
            expected = (
                scanned_victim(policy, slot, reference_draws) if slot in policy._queues else None
            )
            taken = policy.steal(slot, 0.0)
            assert (taken[0] if taken else None) == expected
            if victim == "random" and expected is not None:
                assert policy._draws._block == reference_draws._block  # the same draws used
                assert (
                    policy._draws._rng.bit_generator.state
                    == reference_draws._rng.bit_generator.state
                )
        elif kind == 4 and ops.random() < 0.2:
            for orphan in policy.remove_worker(slot):
                policy.submit(orphan, 0, -1, 0.0)
        else:
            policy.add_worker(slot)
        loaded = sorted(s for s, queue in policy._queues.items() if queue)
        assert policy._loaded == loaded


def test_index_draws_are_uniform_and_repeat_with_the_seed() -> None:
    draws = IndexDraws(np.random.default_rng(3))
    picks = [draws.below(5) for _ in range(20_000)]
    counts = np.bincount(picks, minlength=5)
    assert counts.shape == (5,) and min(picks) == 0 and max(picks) == 4
    # Each count is Binomial(20000, 0.2): sd 56.6; 5 sd either side of 4000.
    assert np.all(np.abs(counts - 4000) < 5 * 56.6), counts
    again = IndexDraws(np.random.default_rng(3))
    assert [again.below(5) for _ in range(20_000)] == picks
    assert all(draws.below(1) == 0 for _ in range(300))  # across a block boundary
