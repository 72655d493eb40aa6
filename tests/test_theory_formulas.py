"""Checks of pool.theory against textbook values, independent formulas and bad input."""

from __future__ import annotations

import heapq
import math
import random
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from pool import theory

# ----------------------------------------------------------------------------- references


def erlang_c_direct(servers: int, offered_load: float) -> float:
    """Erlang C by the textbook summation, in exact rational arithmetic."""
    a = Fraction(offered_load)
    c = servers
    top = a**c / math.factorial(c) * Fraction(c) / (c - a)
    bottom = sum(a**k / math.factorial(k) for k in range(c)) + top
    return float(top / bottom)


def erlang_c_log_sum(servers: int, offered_load: float) -> float:
    """The same summation in log space (log-sum-exp), fast enough for large pools."""
    a, c = offered_load, servers
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    log_top = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    shift = max([*logs, log_top])
    bottom = math.fsum(math.exp(x - shift) for x in logs) + math.exp(log_top - shift)
    return math.exp(log_top - shift) / bottom


# ----------------------------------------------------------------------------- M/M/c


def test_mm1_textbook_values() -> None:
    # M/M/1, lambda = 0.5, mu = 1: rho = 0.5, C = rho, Wq = rho / (mu - lambda) = 1.
    assert theory.erlang_c(1, 0.5) == pytest.approx(0.5)
    assert theory.mmc_wait(0.5, 1.0, 1) == pytest.approx(1.0)
    assert theory.mmc_sojourn(0.5, 1.0, 1) == pytest.approx(2.0)
    assert theory.mmc_queue_length(0.5, 1.0, 1) == pytest.approx(0.5)


def test_mm2_textbook_values() -> None:
    # M/M/2, lambda = 1, mu = 1: a = 1, C = 1/3, Wq = C / (2 - 1) = 1/3.
    assert theory.erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0)
    assert theory.mmc_wait(1.0, 1.0, 2) == pytest.approx(1.0 / 3.0)
    assert theory.mmc_sojourn(1.0, 1.0, 2) == pytest.approx(4.0 / 3.0)
    assert theory.mmc_queue_length(1.0, 1.0, 2) == pytest.approx(1.0 / 3.0)


@pytest.mark.parametrize(
    ("servers", "offered_load"),
    [
        (1, 0.1),
        (1, 0.99),
        (2, 1.5),
        (3, 0.2),
        (5, 4.5),
        (10, 8.0),
        (20, 1.0),
        (50, 40.0),
        (50, 49.5),
    ],
)
def test_erlang_c_matches_direct_summation(servers: int, offered_load: float) -> None:
    expected = erlang_c_direct(servers, offered_load)
    assert theory.erlang_c(servers, offered_load) == pytest.approx(expected, rel=1e-12)


def test_erlang_c_large_pool_is_finite_and_ordered() -> None:
    values = [theory.erlang_c(1000, a) for a in (900.0, 950.0, 990.0, 999.0)]
    assert all(0.0 < v < 1.0 for v in values)
    assert values == sorted(values)
    for a in (500.0, 990.0, 999.9):
        assert theory.erlang_c(1000, a) == pytest.approx(erlang_c_log_sum(1000, a), rel=1e-9)


def test_log_sum_reference_agrees_with_exact_reference() -> None:
    assert erlang_c_log_sum(50, 40.0) == pytest.approx(erlang_c_direct(50, 40.0), rel=1e-12)


def test_little_law_and_sojourn_consistency() -> None:
    lam, mu, c = 7.3, 0.9, 10
    wq = theory.mmc_wait(lam, mu, c)
    assert theory.mmc_queue_length(lam, mu, c) == pytest.approx(lam * wq)
    assert theory.mmc_sojourn(lam, mu, c) == pytest.approx(wq + 1.0 / mu)


def test_integers_and_numpy_scalars_accepted() -> None:
    np = pytest.importorskip("numpy")
    assert theory.mmc_wait(1, 1, 2) == pytest.approx(1.0 / 3.0)
    assert theory.mmc_wait(np.float64(1.0), np.float64(1.0), np.int64(2)) == pytest.approx(
        1.0 / 3.0
    )


# ----------------------------------------------------------------------------- quantiles


def test_wait_quantile_mm1_values() -> None:
    # M/M/1, lambda = 0.5, mu = 1: P(Wq > t) = 0.5 exp(-0.5 t).
    assert theory.mmc_wait_quantile(0.5, 1.0, 1, 0.0) == 0.0
    assert theory.mmc_wait_quantile(0.5, 1.0, 1, 0.3) == 0.0
    assert theory.mmc_wait_quantile(0.5, 1.0, 1, 0.5) == 0.0  # q == 1 - C exactly
    assert theory.mmc_wait_quantile(0.5, 1.0, 1, 0.75) == pytest.approx(2.0 * math.log(2.0))
    assert theory.mmc_wait_quantile(0.5, 1.0, 1, 0.95) == pytest.approx(2.0 * math.log(10.0))


@pytest.mark.parametrize("q", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999])
@pytest.mark.parametrize(("lam", "mu", "c"), [(0.9, 1.0, 1), (3.0, 1.0, 4), (45.0, 1.0, 50)])
def test_wait_quantile_consistent_with_tail(q: float, lam: float, mu: float, c: int) -> None:
    wait_prob = theory.erlang_c(c, lam / mu)
    t = theory.mmc_wait_quantile(lam, mu, c, q)
    assert t >= 0.0
    if q <= 1.0 - wait_prob:
        assert t == 0.0
    else:
        tail = wait_prob * math.exp(-(c * mu - lam) * t)
        assert tail == pytest.approx(1.0 - q, rel=1e-9)


def test_wait_quantile_is_monotone() -> None:
    qs = [i / 100 for i in range(100)]
    ts = [theory.mmc_wait_quantile(3.0, 1.0, 4, q) for q in qs]
    assert ts == sorted(ts)


def simulate_fifo_mmc_waits(
    lam: float, mu: float, c: int, customers: int, seed: int
) -> list[float]:
    """Queueing delays of a FIFO M/M/c queue by direct event recursion (warm-up dropped)."""
    rng = random.Random(seed)
    free_at = [0.0] * c  # heap of the times at which each server next becomes free
    now = 0.0
    waits = []
    for _ in range(customers):
        now += rng.expovariate(lam)
        start = max(now, heapq.heappop(free_at))
        heapq.heappush(free_at, start + rng.expovariate(mu))
        waits.append(start - now)
    return waits[customers // 10 :]


def test_wait_distribution_matches_simulation() -> None:
    lam, mu, c = 1.2, 1.0, 2
    # Seeded, so deterministic; the tolerances cover the worst of 40 other seeds, and are
    # still far tighter than any plausible formula error (e.g. a factor of 2 or a wrong C).
    waits = sorted(simulate_fifo_mmc_waits(lam, mu, c, customers=100_000, seed=12345))
    n = len(waits)
    assert sum(w > 0.0 for w in waits) / n == pytest.approx(theory.erlang_c(c, lam / mu), rel=0.06)
    assert sum(waits) / n == pytest.approx(theory.mmc_wait(lam, mu, c), rel=0.15)
    for q in (0.8, 0.9, 0.99):
        empirical = waits[int(q * n)]
        assert empirical == pytest.approx(theory.mmc_wait_quantile(lam, mu, c, q), rel=0.15)


# ----------------------------------------------------------------------------- M/G/1


def test_mg1_exponential_equals_mm1() -> None:
    assert theory.mg1_wait(0.5, 1.0, 1.0) == pytest.approx(1.0)
    assert theory.mg1_wait(0.7, 1.2, 1.0) == pytest.approx(theory.mmc_wait(0.7, 1 / 1.2, 1))


def test_mg1_formula_value() -> None:
    # rho = 0.6, E[S] = 0.3, scv = 4: Wq = 0.6 * 0.3 * 5 / (2 * 0.4) = 1.125.
    assert theory.mg1_wait(2.0, 0.3, 4.0) == pytest.approx(1.125)


@pytest.mark.parametrize(("lam", "d"), [(0.5, 1.0), (0.9, 1.0), (2.0, 0.25), (10.0, 0.099)])
def test_md1_is_half_mm1(lam: float, d: float) -> None:
    assert theory.md1_wait(lam, d) == pytest.approx(0.5 * theory.mmc_wait(lam, 1.0 / d, 1))
    assert theory.md1_wait(lam, d) == pytest.approx(theory.mg1_wait(lam, d, 0.0))


def test_utilisation() -> None:
    assert theory.utilisation(0.5, 1.0) == pytest.approx(0.5)
    assert theory.utilisation(3.0, 2.0, servers=8) == pytest.approx(0.75)
    assert theory.utilisation(0.0, 2.0) == 0.0
    assert theory.utilisation(3.0, 1.0, 2) == pytest.approx(1.5)  # reported, not rejected


# ----------------------------------------------------------------------------- priorities


@pytest.mark.parametrize(
    ("lam", "mean", "scv"), [(0.5, 1.0, 1.0), (0.2, 3.0, 0.0), (4.0, 0.1, 2.5)]
)
def test_priority_mg1_single_class_is_fifo(lam: float, mean: float, scv: float) -> None:
    (w,) = theory.priority_mg1_wait([lam], [mean], [scv])
    assert w == pytest.approx(theory.mg1_wait(lam, mean, scv))


@pytest.mark.parametrize(("lam", "mu", "c"), [(0.5, 1.0, 1), (1.0, 1.0, 2), (45.0, 1.0, 50)])
def test_priority_mmc_single_class_is_fifo(lam: float, mu: float, c: int) -> None:
    (w,) = theory.priority_mmc_wait([lam], mu, c)
    assert w == pytest.approx(theory.mmc_wait(lam, mu, c))


def test_priority_mg1_two_class_textbook() -> None:
    # Two M/M/1 classes, lambda = 0.25 each, mu = 1: W0 = 0.5, sigma = 0.25, 0.5.
    w = theory.priority_mg1_wait([0.25, 0.25], [1.0, 1.0], [1.0, 1.0])
    assert w == pytest.approx([2.0 / 3.0, 4.0 / 3.0])


def test_priority_mg1_conservation_law() -> None:
    # Equal service distributions: the arrival-weighted mean wait equals FIFO M/G/1.
    lams = [0.1, 0.25, 0.05, 0.3]
    mean, scv = 1.1, 0.6
    waits = theory.priority_mg1_wait(lams, [mean] * 4, [scv] * 4)
    weighted = sum(lam * w for lam, w in zip(lams, waits, strict=True)) / sum(lams)
    assert weighted == pytest.approx(theory.mg1_wait(sum(lams), mean, scv))
    assert waits == sorted(waits)  # lower priority never waits less


def test_priority_mg1_kleinrock_conservation_unequal_classes() -> None:
    # Work conservation: sum rho_k W_k = rho * W0 / (1 - rho) for any service laws.
    lams, means, scvs = [0.2, 0.1, 0.3], [0.5, 2.0, 1.0], [0.0, 3.0, 1.0]
    waits = theory.priority_mg1_wait(lams, means, scvs)
    rhos = [lam * m for lam, m in zip(lams, means, strict=True)]
    rho = sum(rhos)
    w0 = sum(lam * m * m * (1 + s) for lam, m, s in zip(lams, means, scvs, strict=True)) / 2
    assert sum(r * w for r, w in zip(rhos, waits, strict=True)) == pytest.approx(
        rho * w0 / (1 - rho)
    )


def test_priority_mmc_conservation_law() -> None:
    lams, mu, c = [2.0, 5.0, 1.0], 1.0, 10
    waits = theory.priority_mmc_wait(lams, mu, c)
    weighted = sum(lam * w for lam, w in zip(lams, waits, strict=True)) / sum(lams)
    assert weighted == pytest.approx(theory.mmc_wait(sum(lams), mu, c))
    assert waits == sorted(waits)


def test_priority_zero_rate_class_allowed() -> None:
    with_gap = theory.priority_mg1_wait([0.2, 0.0, 0.3], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    without = theory.priority_mg1_wait([0.2, 0.3], [1.0, 1.0], [1.0, 1.0])
    assert with_gap[0] == pytest.approx(without[0])
    assert with_gap[2] == pytest.approx(without[1])
    assert with_gap[0] <= with_gap[1] <= with_gap[2]
    mmc = theory.priority_mmc_wait([0.0, 1.0], 1.0, 2)
    assert mmc[1] == pytest.approx(theory.mmc_wait(1.0, 1.0, 2))
    assert mmc[0] == pytest.approx(theory.erlang_c(2, 1.0) / 2.0)


def test_priority_accepts_tuples() -> None:
    assert theory.priority_mg1_wait((0.5,), (1.0,), (1.0,)) == pytest.approx([1.0])
    assert theory.priority_mmc_wait((0.5,), 1.0, 1) == pytest.approx([1.0])


# ----------------------------------------------------------------------------- bad input

NAN = float("nan")
INF = float("inf")
BAD_POSITIVE = [-1.0, 0.0, NAN, INF, -INF]
BAD_NON_NEGATIVE = [-1.0, -1e-12, NAN, INF, -INF]
BAD_SERVERS: list[Any] = [0, -1, 1.5, 2.0, True, NAN, "2"]
BAD_Q = [-0.1, 1.0, 1.5, NAN, INF, -INF]

Call = Callable[..., object]

VALID: list[tuple[Call, dict[str, Any]]] = [
    (theory.erlang_c, {"servers": 2, "offered_load": 1.0}),
    (theory.mmc_wait, {"arrival_rate": 1.0, "service_rate": 1.0, "servers": 2}),
    (theory.mmc_sojourn, {"arrival_rate": 1.0, "service_rate": 1.0, "servers": 2}),
    (theory.mmc_queue_length, {"arrival_rate": 1.0, "service_rate": 1.0, "servers": 2}),
    (
        theory.mmc_wait_quantile,
        {"arrival_rate": 1.0, "service_rate": 1.0, "servers": 2, "q": 0.9},
    ),
    (theory.mg1_wait, {"arrival_rate": 0.5, "service_mean": 1.0, "service_scv": 1.0}),
    (theory.md1_wait, {"arrival_rate": 0.5, "service_time": 1.0}),
    (theory.utilisation, {"arrival_rate": 0.5, "service_mean": 1.0, "servers": 1}),
    (
        theory.priority_mg1_wait,
        {"arrival_rates": [0.2, 0.3], "service_means": [1.0, 1.0], "service_scvs": [1.0, 0.0]},
    ),
    (theory.priority_mmc_wait, {"arrival_rates": [0.5, 0.5], "service_rate": 1.0, "servers": 2}),
]

BAD_VALUES: dict[str, list[Any]] = {
    "servers": BAD_SERVERS,
    "offered_load": BAD_POSITIVE,
    "arrival_rate": BAD_POSITIVE,
    "service_rate": BAD_POSITIVE,
    "service_mean": BAD_POSITIVE,
    "service_time": BAD_POSITIVE,
    "service_scv": BAD_NON_NEGATIVE,
    "q": BAD_Q,
}


def _scalar_cases() -> list[Any]:
    cases = []
    for func, kwargs in VALID:
        for name in kwargs:
            for bad in BAD_VALUES.get(name, []):
                if func is theory.utilisation and name == "arrival_rate" and bad == 0.0:
                    continue  # utilisation of an idle pool is 0, not an error
                cases.append(
                    pytest.param(func, kwargs, name, bad, id=f"{func.__name__}-{name}={bad!r}")
                )
    return cases


@pytest.mark.parametrize(("func", "kwargs"), VALID, ids=[f.__name__ for f, _ in VALID])
def test_valid_baseline_does_not_raise(func: Call, kwargs: dict[str, Any]) -> None:
    func(**kwargs)


@pytest.mark.parametrize(("func", "kwargs", "name", "bad"), _scalar_cases())
def test_bad_scalar_raises_naming_parameter(
    func: Call, kwargs: dict[str, Any], name: str, bad: Any
) -> None:
    with pytest.raises(ValueError, match=rf"\b{re.escape(name)}\b"):
        func(**{**kwargs, name: bad})


@pytest.mark.parametrize(
    ("func", "kwargs"),
    [
        (theory.erlang_c, {"servers": 2, "offered_load": 2.0}),
        (theory.erlang_c, {"servers": 1, "offered_load": 1.5}),
        (theory.mmc_wait, {"arrival_rate": 2.0, "service_rate": 1.0, "servers": 2}),
        (theory.mmc_sojourn, {"arrival_rate": 3.0, "service_rate": 1.0, "servers": 2}),
        (theory.mmc_queue_length, {"arrival_rate": 1.0, "service_rate": 0.5, "servers": 1}),
        (
            theory.mmc_wait_quantile,
            {"arrival_rate": 5.0, "service_rate": 1.0, "servers": 4, "q": 0.5},
        ),
        (theory.mg1_wait, {"arrival_rate": 1.0, "service_mean": 1.0, "service_scv": 1.0}),
        (theory.md1_wait, {"arrival_rate": 2.0, "service_time": 0.75}),
        (
            theory.priority_mg1_wait,
            {"arrival_rates": [0.5, 0.6], "service_means": [1.0, 1.0], "service_scvs": [1, 1]},
        ),
        (
            theory.priority_mmc_wait,
            {"arrival_rates": [1.0, 1.0], "service_rate": 1.0, "servers": 2},
        ),
    ],
)
def test_unstable_load_raises(func: Call, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="utilisation"):
        func(**kwargs)


def test_error_message_format() -> None:
    with pytest.raises(ValueError) as info:
        theory.mmc_wait(-1.0, 1.0, 1)
    assert str(info.value) == "arrival_rate must be a positive finite number, got -1.0"
    with pytest.raises(ValueError, match=r"utilisation must be < 1.*got 1\.5"):
        theory.mmc_wait(3.0, 1.0, 2)


def test_tiny_load_on_large_pool() -> None:
    assert theory.erlang_c(1000, 1e-3) == 0.0
    assert theory.mmc_wait_quantile(1e-3, 1.0, 1000, 0.999) == 0.0
    assert theory.mmc_sojourn(1e-3, 1.0, 1000) == pytest.approx(1.0)


def test_erlang_c_unstable_message_names_load() -> None:
    with pytest.raises(ValueError, match="offered_load"):
        theory.erlang_c(3, 4.0)


SEQUENCE_CASES = [
    # (func, kwargs override, parameter name expected in message)
    (theory.priority_mg1_wait, {"arrival_rates": [0.1, -0.1]}, "arrival_rates"),
    (theory.priority_mg1_wait, {"arrival_rates": [0.1, NAN]}, "arrival_rates"),
    (theory.priority_mg1_wait, {"arrival_rates": [INF, 0.1]}, "arrival_rates"),
    (theory.priority_mg1_wait, {"arrival_rates": [0.0, 0.0]}, "arrival_rates"),
    (theory.priority_mg1_wait, {"arrival_rates": []}, "arrival_rates"),
    (theory.priority_mg1_wait, {"arrival_rates": "ab"}, "arrival_rates"),
    (theory.priority_mg1_wait, {"arrival_rates": 0.5}, "arrival_rates"),
    (theory.priority_mg1_wait, {"service_means": [1.0, 0.0]}, "service_means"),
    (theory.priority_mg1_wait, {"service_means": [-1.0, 1.0]}, "service_means"),
    (theory.priority_mg1_wait, {"service_means": [NAN, 1.0]}, "service_means"),
    (theory.priority_mg1_wait, {"service_means": [1.0, INF]}, "service_means"),
    (theory.priority_mg1_wait, {"service_means": [1.0]}, "service_means"),
    (theory.priority_mg1_wait, {"service_means": [1.0, 1.0, 1.0]}, "service_means"),
    (theory.priority_mg1_wait, {"service_scvs": [1.0, -0.5]}, "service_scvs"),
    (theory.priority_mg1_wait, {"service_scvs": [NAN, 1.0]}, "service_scvs"),
    (theory.priority_mg1_wait, {"service_scvs": [1.0, INF]}, "service_scvs"),
    (theory.priority_mg1_wait, {"service_scvs": [1.0]}, "service_scvs"),
    (theory.priority_mmc_wait, {"arrival_rates": [0.5, -0.5]}, "arrival_rates"),
    (theory.priority_mmc_wait, {"arrival_rates": [NAN, 0.5]}, "arrival_rates"),
    (theory.priority_mmc_wait, {"arrival_rates": [0.5, INF]}, "arrival_rates"),
    (theory.priority_mmc_wait, {"arrival_rates": [0.0]}, "arrival_rates"),
    (theory.priority_mmc_wait, {"arrival_rates": []}, "arrival_rates"),
]


@pytest.mark.parametrize(
    ("func", "override", "name"),
    SEQUENCE_CASES,
    ids=[f"{f.__name__}-{o!r}" for f, o, _ in SEQUENCE_CASES],
)
def test_bad_sequence_raises_naming_parameter(
    func: Call, override: dict[str, Any], name: str
) -> None:
    kwargs = next(kw for f, kw in VALID if f is func)
    with pytest.raises(ValueError, match=name):
        func(**{**kwargs, **override})
