"""Exact queueing-theory results used as reference values for the pool benchmarks.

Everything here is closed-form (or an exact finite recurrence) for steady-state
Markovian-arrival queues, so simulated and measured pools can be checked against it:

* M/M/c (Erlang C): probability of waiting, mean wait in queue, mean sojourn time,
  mean queue length and quantiles of the waiting time under FIFO.
* M/G/1 and M/D/1: the Pollaczek-Khinchine mean waiting time.
* Non-preemptive priority queues: Cobham's formula for M/G/1 and its M/M/c analogue
  (all classes sharing one exponential service rate).

Units: time is in seconds and rates are per second throughout. "Wait" always means
the time spent in the queue before service starts (Wq); "sojourn" adds the service
time. All functions validate their inputs and raise ``ValueError`` naming the
offending parameter for non-finite, negative or otherwise invalid values, and for
unstable systems (utilisation >= 1), where no steady state exists.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

__all__ = [
    "erlang_c",
    "md1_wait",
    "mg1_wait",
    "mmc_queue_length",
    "mmc_sojourn",
    "mmc_wait",
    "mmc_wait_quantile",
    "priority_mg1_wait",
    "priority_mmc_wait",
    "utilisation",
]


# --------------------------------------------------------------------------- validation


def _as_real(name: str, value: object) -> float:
    """Return ``value`` as a finite float or raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be a finite number, got {result!r}")
    return result


def _positive(name: str, value: object) -> float:
    """Validate a strictly positive finite number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    result = float(value)
    if not (math.isfinite(result) and result > 0.0):
        raise ValueError(f"{name} must be a positive finite number, got {result!r}")
    return result


def _non_negative(name: str, value: object) -> float:
    """Validate a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    result = float(value)
    if not (math.isfinite(result) and result >= 0.0):
        raise ValueError(f"{name} must be a non-negative finite number, got {result!r}")
    return result


def _servers(value: object) -> int:
    """Validate the number of servers: an ``int`` (not ``bool``) >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"servers must be an int >= 1, got {value!r}")
    result = int(value)
    if result < 1:
        raise ValueError(f"servers must be an int >= 1, got {result!r}")
    return result


def _probability(name: str, value: object) -> float:
    """Validate a probability level in the half-open interval [0, 1)."""
    result = _as_real(name, value)
    if not 0.0 <= result < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {result!r}")
    return result


def _sequence(name: str, values: Iterable[object], *, positive: bool) -> list[float]:
    """Validate a non-empty sequence of finite numbers (> 0 or >= 0)."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if not items:
        raise ValueError(f"{name} must not be empty")
    check = _positive if positive else _non_negative
    return [check(f"{name}[{i}]", item) for i, item in enumerate(items)]


def _check_stable(rho: float, detail: str) -> None:
    """Raise ``ValueError`` if the utilisation ``rho`` is not strictly below 1."""
    if not rho < 1.0:
        raise ValueError(
            f"utilisation must be < 1 for a stable queue, got {rho!r} ({detail}); "
            "no steady state exists"
        )


def _erlang_c_unchecked(servers: int, offered_load: float) -> float:
    """Erlang C via the Erlang B recursion; assumes 0 < offered_load < servers."""
    # B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)); every step stays in [0, 1].
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
        if blocking == 0.0:  # underflow (tiny load on a big pool): stays 0 from here on
            break
    # C = c B / (c - a (1 - B))
    return servers * blocking / (servers - offered_load * (1.0 - blocking))


def _mmc_prepare(
    arrival_rate: float, service_rate: float, servers: int
) -> tuple[float, float, int, float]:
    """Validate M/M/c parameters; return (lambda, mu, c, Erlang C probability)."""
    lam = _positive("arrival_rate", arrival_rate)
    mu = _positive("service_rate", service_rate)
    c = _servers(servers)
    rho = lam / (c * mu)
    _check_stable(
        rho,
        f"arrival_rate={lam!r}, service_rate={mu!r}, servers={c!r}: "
        f"offered load {lam / mu!r} erlangs on {c} servers",
    )
    return lam, mu, c, _erlang_c_unchecked(c, lam / mu)


# --------------------------------------------------------------------------- public API


def utilisation(arrival_rate: float, service_mean: float, servers: int = 1) -> float:
    """Server utilisation rho = lambda * E[S] / c (dimensionless).

    ``arrival_rate`` is lambda in jobs per second (>= 0 here, so an idle pool is
    allowed), ``service_mean`` is E[S] in seconds (> 0) and ``servers`` is c (int >= 1).
    This helper does not reject values >= 1: it is the quantity used to decide
    stability, so it simply reports it.
    """
    lam = _non_negative("arrival_rate", arrival_rate)
    mean = _positive("service_mean", service_mean)
    c = _servers(servers)
    return lam * mean / c


def erlang_c(servers: int, offered_load: float) -> float:
    """Erlang C formula: probability that an arrival has to wait in an M/M/c queue.

    ``offered_load`` is a = lambda / mu in erlangs (dimensionless, > 0) and must be
    below ``servers`` (utilisation a / c < 1). Computed with the Erlang B recursion
    B(k) = a B(k-1) / (k + a B(k-1)), B(0) = 1, then C = c B / (c - a (1 - B)), which
    is numerically stable for thousands of servers (no factorials or large powers);
    the cost is O(servers). Returns a probability in [0, 1) (it can underflow to 0 for
    a tiny load on a large pool).
    """
    c = _servers(servers)
    a = _positive("offered_load", offered_load)
    _check_stable(a / c, f"offered_load={a!r} erlangs on servers={c!r}")
    return _erlang_c_unchecked(c, a)


def mmc_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean waiting time in queue Wq of an M/M/c queue, in seconds.

    Wq = C(c, a) / (c mu - lambda), with a = lambda / mu and C the Erlang C
    probability. ``arrival_rate`` (lambda) and ``service_rate`` (mu, per server) are
    per second; requires lambda < c mu.
    """
    lam, mu, c, wait_prob = _mmc_prepare(arrival_rate, service_rate, servers)
    return wait_prob / (c * mu - lam)


def mmc_sojourn(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean sojourn (response) time W = Wq + 1 / mu of an M/M/c queue, in seconds.

    Wq is the Erlang C mean wait (see :func:`mmc_wait`); rates are per second.
    """
    lam, mu, c, wait_prob = _mmc_prepare(arrival_rate, service_rate, servers)
    return wait_prob / (c * mu - lam) + 1.0 / mu


def mmc_queue_length(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean number waiting in queue Lq of an M/M/c queue (jobs, dimensionless).

    Lq = C(c, a) * rho / (1 - rho) = lambda * Wq (Little's law), rho = lambda / (c mu).
    """
    lam, mu, c, wait_prob = _mmc_prepare(arrival_rate, service_rate, servers)
    rho = lam / (c * mu)
    return wait_prob * rho / (1.0 - rho)


def mmc_wait_quantile(arrival_rate: float, service_rate: float, servers: int, q: float) -> float:
    """The q-quantile of the FIFO waiting time in queue of an M/M/c queue, in seconds.

    Uses the exact tail P(Wq > t) = C(c, a) * exp(-(c mu - lambda) t) for t >= 0, so
    t_q = ln(C / (1 - q)) / (c mu - lambda) when 1 - q < C, and 0 when q <= 1 - C
    (that fraction of arrivals does not wait at all). ``q`` must be in [0, 1).
    """
    lam, mu, c, wait_prob = _mmc_prepare(arrival_rate, service_rate, servers)
    level = _probability("q", q)
    tail = 1.0 - level
    if tail >= wait_prob:
        return 0.0
    return math.log(wait_prob / tail) / (c * mu - lam)


def mg1_wait(arrival_rate: float, service_mean: float, service_scv: float) -> float:
    """Pollaczek-Khinchine mean waiting time in queue of an M/G/1 queue, in seconds.

    Wq = rho * E[S] * (1 + scv) / (2 (1 - rho)) = lambda E[S^2] / (2 (1 - rho)), with
    rho = lambda E[S]. ``arrival_rate`` is per second, ``service_mean`` E[S] is in
    seconds and ``service_scv`` is the squared coefficient of variation Var[S] / E[S]^2
    of the service time (>= 0; 0 deterministic, 1 exponential).
    """
    lam = _positive("arrival_rate", arrival_rate)
    mean = _positive("service_mean", service_mean)
    scv = _non_negative("service_scv", service_scv)
    rho = lam * mean
    _check_stable(rho, f"arrival_rate={lam!r}, service_mean={mean!r}")
    return rho * mean * (1.0 + scv) / (2.0 * (1.0 - rho))


def md1_wait(arrival_rate: float, service_time: float) -> float:
    """Mean waiting time in queue of an M/D/1 queue, in seconds.

    Pollaczek-Khinchine with zero service variability: Wq = rho * D / (2 (1 - rho)),
    rho = lambda D. ``arrival_rate`` is per second, ``service_time`` D in seconds.
    """
    lam = _positive("arrival_rate", arrival_rate)
    d = _positive("service_time", service_time)
    rho = lam * d
    _check_stable(rho, f"arrival_rate={lam!r}, service_time={d!r}")
    return rho * d / (2.0 * (1.0 - rho))


def _cobham(loads: list[float], base_wait: float) -> list[float]:
    """W_k = W0 / ((1 - sigma_{k-1})(1 - sigma_k)) for cumulative loads sigma."""
    waits: list[float] = []
    sigma_prev = 0.0
    sigma = 0.0
    for load in loads:
        sigma = sigma_prev + load
        waits.append(base_wait / ((1.0 - sigma_prev) * (1.0 - sigma)))
        sigma_prev = sigma
    return waits


def priority_mg1_wait(
    arrival_rates: Sequence[float],
    service_means: Sequence[float],
    service_scvs: Sequence[float],
) -> list[float]:
    """Per-class mean waits of a non-preemptive priority M/G/1 queue (Cobham), seconds.

    Class 0 is the most urgent. With rho_i = lambda_i E[S_i], sigma_k = sum_{i<=k} rho_i
    (sigma_{-1} = 0), E[S_i^2] = E[S_i]^2 (1 + scv_i) and the mean residual work
    W0 = sum_i lambda_i E[S_i^2] / 2:

        W_k = W0 / ((1 - sigma_{k-1}) (1 - sigma_k)).

    ``arrival_rates`` (per second, each >= 0 with a positive total), ``service_means``
    (seconds, > 0) and ``service_scvs`` (>= 0) must have the same length. A class with
    zero arrival rate gets the wait a hypothetical arrival of that class would see.
    Requires the total utilisation sigma_K < 1.
    """
    lams = _sequence("arrival_rates", arrival_rates, positive=False)
    means = _sequence("service_means", service_means, positive=True)
    scvs = _sequence("service_scvs", service_scvs, positive=False)
    if len(means) != len(lams):
        raise ValueError(
            f"service_means must have the same length as arrival_rates "
            f"({len(lams)}), got {len(means)}"
        )
    if len(scvs) != len(lams):
        raise ValueError(
            f"service_scvs must have the same length as arrival_rates "
            f"({len(lams)}), got {len(scvs)}"
        )
    if not sum(lams) > 0.0:
        raise ValueError("arrival_rates must have a positive total, got all zeros")
    loads = [lam * mean for lam, mean in zip(lams, means, strict=True)]
    _check_stable(math.fsum(loads), f"total load over {len(lams)} classes")
    base_wait = math.fsum(
        lam * mean * mean * (1.0 + scv) for lam, mean, scv in zip(lams, means, scvs, strict=True)
    )
    return _cobham(loads, base_wait / 2.0)


def priority_mmc_wait(
    arrival_rates: Sequence[float], service_rate: float, servers: int
) -> list[float]:
    """Per-class mean waits of a non-preemptive priority M/M/c queue, in seconds.

    All classes share one exponential service rate mu per server; class 0 is the most
    urgent. With sigma_k = sum_{i<=k} lambda_i / (c mu) (sigma_{-1} = 0) and
    C = C(c, a) the Erlang C probability of the total offered load a = sum lambda_i / mu:

        W_k = C / (c mu) / ((1 - sigma_{k-1}) (1 - sigma_k)).

    ``arrival_rates`` are per second (each >= 0, positive total), ``service_rate`` is
    per second per server and ``servers`` is c (int >= 1). Requires sigma_K < 1.
    """
    lams = _sequence("arrival_rates", arrival_rates, positive=False)
    mu = _positive("service_rate", service_rate)
    c = _servers(servers)
    total = math.fsum(lams)
    if not total > 0.0:
        raise ValueError("arrival_rates must have a positive total, got all zeros")
    capacity = c * mu
    _check_stable(
        total / capacity,
        f"total arrival rate {total!r} over {len(lams)} classes, "
        f"service_rate={mu!r}, servers={c!r}",
    )
    wait_prob = _erlang_c_unchecked(c, total / mu)
    return _cobham([lam / capacity for lam in lams], wait_prob / capacity)
