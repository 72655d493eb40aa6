"""The explorer's "Export": the Python code that reproduces its current run."""

from __future__ import annotations

from typing import Any

from pool.policies import Policy
from sim.explorer.settings import Settings

_DISTRIBUTIONS = {
    "exponential": "dists.Exponential({mean!r})",
    "deterministic": "dists.Deterministic({mean!r})",
    "lognormal": "dists.LogNormal({mean!r}, {cv!r})",
    "hyperexponential": "dists.HyperExponential({mean!r}, {cv!r})",
}


def python_code(settings: Settings) -> str:
    """A script that runs the model as ``settings`` say (``sim.run(...)`` lines) and
    prints its summary: the same run, bit for bit, as the explorer's."""
    policy = settings.make_policy()
    imports = {_import_line(policy)}
    inner = getattr(policy, "inner", None)
    if isinstance(inner, Policy):
        imports.add(_import_line(inner))
    wrapped = settings.inner()
    inner_options = wrapped.resolved_options() if wrapped is not None else {}
    rate = settings.load * settings.workers / settings.mean_service
    service = _DISTRIBUTIONS[settings.service].format(mean=settings.mean_service, cv=settings.cv)
    lines = [
        '"""A run of the poolbench model, exported by sim.explore()."""',
        "",
        "import sim",
        "from pool import FaultPlan, Recovery, Workload, dists",
        *sorted(imports),
        "",
        f"workload = Workload.poisson({rate!r}, {service}, {settings.tasks!r},"
        f" priorities={settings.priorities()!r}, seed={settings.seed!r})",
    ]
    if settings.hot_share > 0:
        lines.append(
            f"workload = workload.with_affinity({settings.workers!r}, {settings.hot_share!r},"
            f" seed={settings.seed!r})"
        )
    faults = settings.faults()
    recovery = settings.recovery()
    lines += [
        f"policy = {_constructor(policy, settings.resolved_options(), inner_options)}",
        f"faults = FaultPlan(crash_mtbf={faults.crash_mtbf!r},"
        f" hang_mtbf={faults.hang_mtbf!r}, hang_duration={faults.hang_duration!r},"
        f" task_failure_prob={faults.task_failure_prob!r})",
        f"recovery = Recovery(heartbeat_interval={recovery.heartbeat_interval!r},"
        f" heartbeat_timeout={recovery.heartbeat_timeout!r},"
        f" restart_delay={recovery.restart_delay!r}, max_attempts={recovery.max_attempts!r})",
        f"result = sim.run(workload, policy, {settings.workers!r}, faults=faults,"
        f" recovery=recovery, seed={settings.seed!r})",
        "print(result.summary())",
        "",
    ]
    return "\n".join(lines)


def _import_line(policy: Policy) -> str:
    cls = type(policy)
    return f"from {cls.__module__} import {cls.__name__}"


def _constructor(policy: Policy, options: dict[str, Any], inner: dict[str, Any]) -> str:
    """``Class(option=value, ...)`` for ``policy`` built with ``options`` (resolved), a
    policy it wraps built with ``inner``."""
    arguments = []
    for name, value in options.items():
        shown = _constructor(value, inner, {}) if isinstance(value, Policy) else repr(value)
        arguments.append(f"{name}={shown}")
    return f"{type(policy).__name__}({', '.join(arguments)})"
