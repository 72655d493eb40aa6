"""What the explorer runs: one frozen set of settings, checked, turned into a model run,
into the Python code that reproduces it, and into the exact theory where one exists."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field, replace
from typing import Any

import pool.theory as theory
from pool import FaultPlan, Recovery, Workload, dists
from pool.policies import Policy
from pool.registry import policy_factory, policy_names

#: Service distributions by name, each made from a mean and a coefficient of variation.
SERVICES = ("exponential", "deterministic", "lognormal", "hyperexponential")


@dataclass(frozen=True)
class Settings:
    """One configuration of the explorer. Times in seconds.

    ``load``: arrivals per second over what ``workers`` serve (1: saturated).
    ``cv``: the service's coefficient of variation (exponential: 1, deterministic: 0,
    whatever is given). ``urgent_share``: the share of tasks in priority class 0 (the
    rest in class 1). ``hot_share``: the share of tasks that prefer worker 0 (0: no
    affinity). ``crash_mtbf`` / ``hang_mtbf``: mean seconds between crashes / hangs per
    worker (0: none). ``policy_options``: the policy's own parameters by name;
    ``inner_options``: those of the policy it wraps (autoscaling's ``inner``), if any.
    """

    policy: str = "fifo"
    policy_options: dict[str, Any] = field(default_factory=dict)
    inner_options: dict[str, Any] = field(default_factory=dict)
    workers: int = 4
    load: float = 0.7
    mean_service: float = 0.010
    service: str = "exponential"
    cv: float = 1.0
    tasks: int = 20_000
    urgent_share: float = 0.3
    hot_share: float = 0.0
    crash_mtbf: float = 0.0
    hang_mtbf: float = 0.0
    hang_duration: float = 0.5
    task_failure_prob: float = 0.0
    heartbeat_interval: float = 0.05
    heartbeat_timeout: float = 0.2
    restart_delay: float = 0.1
    max_attempts: int = 3
    seed: int = 0

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    # -- checks ------------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why these settings cannot run, in one short sentence, or None."""
        options = self.policy_options
        if self.policy not in policy_names():
            return f"unknown policy {self.policy!r}"
        low, high = options.get("min_workers"), options.get("max_workers")
        if low is not None and high is not None and low > high:
            return f"min workers ({low}) above max workers ({high})"
        if self.load >= 1.0 and not self.scales:
            return f"load {self.load:g} >= 1 on a fixed pool: the queue grows without end"
        if self.service in ("lognormal", "hyperexponential") and self.cv <= 0:
            return f"a {self.service} service needs cv > 0"
        if self.service == "hyperexponential" and self.cv < 1:
            return "a hyperexponential service needs cv >= 1"
        if self.heartbeat_timeout < self.heartbeat_interval:
            return "heartbeat timeout below the heartbeat interval"
        try:
            self.build()
        except (TypeError, ValueError) as error:  # a policy's own check names the option
            return str(error).split("\n")[0]
        return None

    @property
    def scales(self) -> bool:
        """Whether the policy changes the pool's size."""
        return self.policy == "autoscaling"

    # -- the run -------------------------------------------------------------------------

    def build(self) -> tuple[Workload, Policy, dict[str, Any]]:
        """The workload, the policy and ``sim.run``'s other arguments (ValueError: the
        settings cannot run)."""
        rate = self.load * self.workers / self.mean_service
        tasks = Workload.poisson(
            rate,
            self.distribution(),
            self.tasks,
            priorities=self.priorities(),
            seed=self.seed,
        )
        if self.hot_share > 0:
            tasks = tasks.with_affinity(self.workers, self.hot_share, seed=self.seed)
        return tasks, self.make_policy(), {"faults": self.faults(), "recovery": self.recovery()}

    def distribution(self) -> dists.Distribution:
        """The service distribution."""
        mean = self.mean_service
        if self.service == "exponential":
            return dists.Exponential(mean)
        if self.service == "deterministic":
            return dists.Deterministic(mean)
        if self.service == "lognormal":
            return dists.LogNormal(mean, self.cv)
        if self.service == "hyperexponential":
            return dists.HyperExponential(mean, self.cv)
        raise ValueError(f"service must be one of {', '.join(SERVICES)}, got {self.service!r}")

    def priorities(self) -> dict[int, float] | None:
        """Class shares (None: one class)."""
        if self.urgent_share <= 0 or self.urgent_share >= 1:
            return None
        return {0: self.urgent_share, 1: 1.0 - self.urgent_share}

    def make_policy(self) -> Policy:
        """A fresh policy object with its options: the registered factory's own object
        while the options are as it makes them, else its class built with them."""
        made = policy_factory(self.policy)()
        as_made = self.policy_options in ({}, policy_defaults(self.policy))
        if as_made and not self.inner_options:
            return made
        return type(made)(**self.resolved_options())

    def resolved_options(self) -> dict[str, Any]:
        """The policy's options as its class takes them: an inner policy's name made a
        policy object, and 0 for an option whose default is None (off) made None."""
        optional = {p.name for p in policy_parameters(self.policy) if p.default is None}
        options: dict[str, Any] = {}
        for name, value in self.policy_options.items():
            if isinstance(value, str) and name in optional and value in policy_names():
                wrapped = self.inner()
                assert wrapped is not None
                value = wrapped.make_policy()
            elif name in optional and value == 0:
                value = None
            options[name] = value
        return options

    def inner(self) -> Settings | None:
        """The settings of the policy this one wraps (named in ``policy_options``), or
        None."""
        optional = {p.name for p in policy_parameters(self.policy) if p.default is None}
        for key, value in self.policy_options.items():
            if key in optional and isinstance(value, str) and value in policy_names():
                return replace(
                    self, policy=value, policy_options=self.inner_options, inner_options={}
                )
        return None

    def faults(self) -> FaultPlan:
        """The FaultPlan (rates of 0 are none)."""
        return FaultPlan(
            crash_mtbf=self.crash_mtbf or None,
            hang_mtbf=self.hang_mtbf or None,
            hang_duration=self.hang_duration,
            task_failure_prob=self.task_failure_prob,
        )

    def recovery(self) -> Recovery:
        """How the pool answers the faults."""
        return Recovery(
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            restart_delay=self.restart_delay,
            max_attempts=self.max_attempts,
        )

    # -- theory --------------------------------------------------------------------------

    def exact_latency(self) -> dict[int, float]:
        """Exact mean latency (seconds) by priority class where theory gives one: M/M/c for
        a shared FIFO queue, M/G/1 for one worker, non-preemptive priority M/M/c and, on
        one worker, M/G/1 (Cobham); only without faults, affinity or scaling, and only for
        policies that serve by arrival or by class. Empty where none applies."""
        if self.faults().injects_worker_faults or self.task_failure_prob > 0:
            return {}
        if self.hot_share > 0 or self.scales or self.load >= 1.0:
            return {}
        rate, mean = self.load * self.workers / self.mean_service, self.mean_service
        exponential = self.service == "exponential"
        shares = self.priorities()
        if self.policy == "priority" and self.resolved_options().get("aging") is not None:
            return {}  # aging lets waiting tasks overtake: no classical formula
        if self.policy == "priority" and shares and (exponential or self.workers == 1):
            rates = [rate * shares[0], rate * shares[1]]
            if exponential:
                waits = theory.priority_mmc_wait(rates, 1.0 / mean, self.workers)
            else:
                scv = self.distribution().scv
                waits = theory.priority_mg1_wait(rates, [mean, mean], [scv, scv])
            return {cls: wait + mean for cls, wait in enumerate(waits)}
        if self.policy not in ("fifo", "priority") or (self.policy == "priority" and shares):
            return {}
        if exponential:
            sojourn = theory.mmc_sojourn(rate, 1.0 / mean, self.workers)
        elif self.workers == 1:
            sojourn = theory.mg1_wait(rate, mean, self.distribution().scv) + mean
        else:
            return {}
        return {cls: sojourn for cls in (0, 1)} if shares else {0: sojourn}


def policy_defaults(name: str) -> dict[str, Any]:
    """Policy ``name``'s parameters as the explorer's controls hold them, for the object
    its registered factory makes: the object's attribute of the parameter's name where it
    keeps one of the parameter's kind (else the signature's default); None is 0 (off) and
    an inner policy its registered name. Parameters with neither are left out."""
    made = policy_factory(name)()
    values: dict[str, Any] = {}
    for parameter in policy_parameters(name):
        default = parameter.default
        value = getattr(made, parameter.name, default)
        if default is not inspect.Parameter.empty and not _same_kind(value, default):
            value = default
        if value is inspect.Parameter.empty:
            continue
        values[parameter.name] = control_value(value)
    return values


def control_value(value: Any) -> Any:
    """``value`` as a control holds it: None is 0 (off), a policy its registered name."""
    if value is None:
        return 0.0
    if isinstance(value, Policy):
        kind = type(value)
        return next((n for n in policy_names() if type(policy_factory(n)()) is kind), "fifo")
    return value


def _same_kind(value: Any, default: Any) -> bool:
    if default is None:
        return value is None or isinstance(value, float | int | Policy)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def policy_parameters(name: str) -> list[inspect.Parameter]:
    """The parameters of a registered policy's class (annotations resolved), in order."""
    cls = type(policy_factory(name)())
    signature = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # a user's policy with annotations that cannot be resolved
        hints = {}
    return [
        parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
        for parameter in list(signature.parameters.values())[1:]
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
