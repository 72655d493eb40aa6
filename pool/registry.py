"""Policies by name: the built-ins and any a user registers, usable everywhere a name is.

``register_policy("mine", MyPolicy)`` makes ``"mine"`` work in ``sim.run``, ``real.run``,
``ThreadedPool``, ``pool.plan``, experiment grids and the command lines, as the
built-in names do. A factory makes a fresh policy object with default parameters (a
policy object drives one pool at a time). Register at import of the module that defines
the policy, so that worker processes which import it know the name too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pool.policies import FIFO, Policy, Priority

_FACTORIES: dict[str, Callable[[], Policy]] = {}
_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


def register_policy(name: str, factory: Callable[[], Policy], *, replace: bool = False) -> None:
    """Make ``name`` (lower case, digits and dashes) resolve to ``factory()``.

    A name already taken is refused unless ``replace``; the factory is called once now,
    so a factory that does not make a :class:`pool.Policy` is refused at once.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"name must be lower case letters, digits and dashes; got {name!r}")
    if name in _FACTORIES and not replace:
        raise ValueError(f"policy name {name!r} is taken; pass replace=True to replace it")
    if not callable(factory):
        raise ValueError(f"factory must be callable, got {factory!r}")
    made = factory()
    if not isinstance(made, Policy):
        raise ValueError(f"factory for {name!r} made {made!r}, not a pool.Policy")
    _FACTORIES[name] = factory


def policy_names() -> tuple[str, ...]:
    """Every name :func:`resolve` accepts, built-ins first."""
    return tuple(_FACTORIES)


def policy_factory(name: str) -> Callable[[], Policy]:
    """The factory registered as ``name``."""
    try:
        return _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"policy must be one of {', '.join(_FACTORIES)} or a Policy; got {name!r}"
        ) from None


def resolve(policy: str | Policy) -> Policy:
    """A fresh policy object for a registered name, or a policy object as it is."""
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, str):
        raise ValueError(
            f"policy must be one of {', '.join(_FACTORIES)} or a Policy; got {policy!r}"
        )
    return policy_factory(policy)()


def _work_stealing() -> Policy:
    from pool.work_stealing import WorkStealing

    return WorkStealing()


def _autoscaling() -> Policy:
    from pool.autoscaling import Autoscaling

    return Autoscaling()


for _name, _factory in (
    ("fifo", FIFO),
    ("priority", Priority),
    ("work-stealing", _work_stealing),
    ("autoscaling", _autoscaling),
):
    register_policy(_name, _factory)
