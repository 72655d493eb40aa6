"""The explorer's widgets: one per setting, and one per parameter of the chosen policy
(found from its class's signature, so a policy registered by a user gets its own too).
Sliders update on release (``continuous_update=False``): a drag is one run, not fifty."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import ipywidgets as widgets

from pool.policies import Policy
from pool.registry import policy_names
from sim.explorer.settings import SERVICES, Settings, policy_parameters

_STYLE = {"description_width": "150px"}
_LAYOUT = widgets.Layout(width="360px")


def _slider(kind: type[widgets.Widget], description: str, **options: Any) -> widgets.Widget:
    return kind(
        description=description,
        continuous_update=False,
        style=_STYLE,
        layout=_LAYOUT,
        **options,
    )


def _text(kind: type[widgets.Widget], description: str, **options: Any) -> widgets.Widget:
    return kind(description=description, style=_STYLE, layout=_LAYOUT, **options)


def setting_controls(settings: Settings) -> dict[str, widgets.Widget]:
    """A widget per setting (but the policy's own parameters), holding its value.
    ``mean_service`` is shown in milliseconds."""
    s = settings
    return {
        "policy": widgets.Dropdown(
            options=list(policy_names()),
            value=s.policy,
            description="policy",
            style=_STYLE,
            layout=_LAYOUT,
        ),
        "workers": _slider(widgets.IntSlider, "workers", value=s.workers, min=1, max=32),
        "load": _slider(
            widgets.FloatSlider, "load (utilisation)", value=s.load, min=0.05, max=1.5, step=0.01
        ),
        "mean_service": _text(
            widgets.BoundedFloatText,
            "mean service (ms)",
            value=s.mean_service * 1e3,
            min=0.01,
            max=1e5,
        ),
        "service": widgets.Dropdown(
            options=list(SERVICES),
            value=s.service,
            description="service",
            style=_STYLE,
            layout=_LAYOUT,
        ),
        "cv": _slider(widgets.FloatSlider, "service cv", value=s.cv, min=0.0, max=4.0, step=0.1),
        "tasks": _slider(
            widgets.IntSlider, "tasks", value=s.tasks, min=1000, max=100_000, step=1000
        ),
        "urgent_share": _slider(
            widgets.FloatSlider,
            "class 0 share",
            value=s.urgent_share,
            min=0.0,
            max=1.0,
            step=0.05,
        ),
        "hot_share": _slider(
            widgets.FloatSlider,
            "affinity to worker 0",
            value=s.hot_share,
            min=0.0,
            max=1.0,
            step=0.05,
        ),
        "crash_mtbf": _text(
            widgets.BoundedFloatText,
            "crash MTBF (s, 0 none)",
            value=s.crash_mtbf,
            min=0.0,
            max=1e6,
        ),
        "hang_mtbf": _text(
            widgets.BoundedFloatText,
            "hang MTBF (s, 0 none)",
            value=s.hang_mtbf,
            min=0.0,
            max=1e6,
        ),
        "hang_duration": _text(
            widgets.BoundedFloatText, "hang (s)", value=s.hang_duration, min=0.001, max=1e4
        ),
        "task_failure_prob": _slider(
            widgets.FloatSlider,
            "task failure prob.",
            value=s.task_failure_prob,
            min=0.0,
            max=0.5,
            step=0.01,
        ),
        "heartbeat_interval": _text(
            widgets.BoundedFloatText,
            "heartbeat (s)",
            value=s.heartbeat_interval,
            min=0.001,
            max=60.0,
        ),
        "heartbeat_timeout": _text(
            widgets.BoundedFloatText,
            "heartbeat timeout (s)",
            value=s.heartbeat_timeout,
            min=0.001,
            max=600.0,
        ),
        "restart_delay": _text(
            widgets.BoundedFloatText,
            "restart delay (s)",
            value=s.restart_delay,
            min=0.0,
            max=600.0,
        ),
        "max_attempts": _slider(
            widgets.IntSlider, "max attempts", value=s.max_attempts, min=1, max=10
        ),
        "seed": _text(widgets.BoundedIntText, "seed", value=s.seed, min=0, max=2**31 - 1),
    }


def read_settings(
    controls: dict[str, widgets.Widget], options: dict[str, widgets.Widget]
) -> Settings:
    """The settings the widgets hold now (``options``: the policy's parameters)."""
    values = {name: control.value for name, control in controls.items()}
    values["mean_service"] = values["mean_service"] / 1e3
    return Settings(**values, policy_options={n: w.value for n, w in options.items()})


def policy_controls(name: str) -> dict[str, widgets.Widget]:
    """A widget per parameter of policy ``name`` that has a default of a kind a widget
    can hold (a choice, a bool, a number, an inner policy), set to that default."""
    made: dict[str, widgets.Widget] = {}
    for parameter in policy_parameters(name):
        widget = _parameter_widget(parameter)
        if widget is not None:
            made[parameter.name] = widget
    return made


def _parameter_widget(parameter: inspect.Parameter) -> widgets.Widget | None:
    default, annotation = parameter.default, parameter.annotation
    label = parameter.name.replace("_", " ")
    if default is inspect.Parameter.empty:
        return None
    choices = _literal_choices(annotation)
    if choices:
        return widgets.Dropdown(options=choices, value=default, description=label, style=_STYLE)
    if _mentions(annotation, Policy):
        inner = [n for n in policy_names() if n != "autoscaling"]
        return widgets.Dropdown(options=inner, value="fifo", description=label, style=_STYLE)
    if isinstance(default, bool):
        return widgets.Checkbox(value=default, description=label, style=_STYLE)
    if isinstance(default, int):
        return _text(widgets.IntText, label, value=default)
    if isinstance(default, str):
        return _text(widgets.Text, label, value=default, continuous_update=False)
    if isinstance(default, float) or (default is None and _mentions(annotation, float)):
        shown = f"{label} (0: none)" if default is None else label
        return _text(widgets.FloatText, shown, value=0.0 if default is None else default)
    return None


def _literal_choices(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return []


def _mentions(annotation: Any, kind: type) -> bool:
    """Whether ``annotation`` is ``kind`` or a union holding it."""
    if annotation is kind:
        return True
    return any(argument is kind for argument in typing.get_args(annotation))
