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
from sim.explorer.settings import SERVICES, Settings, policy_defaults, policy_parameters

_STYLE = {"description_width": "150px"}
_LAYOUT = widgets.Layout(width="360px")


#: Per setting: its label, the widget (slider: released to update; number: typed) and
#: its bounds (and a slider's step).
_NUMBERS: dict[str, tuple[str, type[widgets.Widget], float, float, float | None]] = {
    "workers": ("workers", widgets.IntSlider, 1, 32, 1),
    "load": ("load (utilisation)", widgets.FloatSlider, 0.05, 1.5, 0.01),
    "mean_service": ("mean service (ms)", widgets.BoundedFloatText, 0.01, 1e5, None),
    "cv": ("service cv", widgets.FloatSlider, 0.0, 4.0, 0.1),
    "tasks": ("tasks", widgets.IntSlider, 1000, 100_000, 1000),
    "urgent_share": ("class 0 share", widgets.FloatSlider, 0.0, 1.0, 0.05),
    "hot_share": ("affinity to worker 0", widgets.FloatSlider, 0.0, 1.0, 0.05),
    "crash_mtbf": ("crash MTBF (s, 0 none)", widgets.BoundedFloatText, 0.0, 1e6, None),
    "hang_mtbf": ("hang MTBF (s, 0 none)", widgets.BoundedFloatText, 0.0, 1e6, None),
    "hang_duration": ("hang (s)", widgets.BoundedFloatText, 0.001, 1e4, None),
    "task_failure_prob": ("task failure prob.", widgets.FloatSlider, 0.0, 0.5, 0.01),
    "heartbeat_interval": ("heartbeat (s)", widgets.BoundedFloatText, 0.001, 60.0, None),
    "heartbeat_timeout": ("heartbeat timeout (s)", widgets.BoundedFloatText, 0.001, 600.0, None),
    "restart_delay": ("restart delay (s)", widgets.BoundedFloatText, 0.0, 600.0, None),
    "max_attempts": ("max attempts", widgets.IntSlider, 1, 10, 1),
    "seed": ("seed", widgets.BoundedIntText, 0, 2**31 - 1, None),
}


def _text(kind: type[widgets.Widget], description: str, **options: Any) -> widgets.Widget:
    return kind(description=description, style=_STYLE, layout=_LAYOUT, **options)


def _choice(description: str, options: list[str], value: str) -> widgets.Widget:
    return _text(widgets.Dropdown, description, options=options, value=value)


def setting_controls(settings: Settings) -> dict[str, widgets.Widget]:
    """A widget per setting (but the policy's own parameters), holding its value.
    ``mean_service`` is shown in milliseconds."""
    made = {
        "policy": _choice("policy", list(policy_names()), settings.policy),
        "service": _choice("service", list(SERVICES), settings.service),
    }
    for name, (label, kind, low, high, step) in _NUMBERS.items():
        value = getattr(settings, name) * (1e3 if name == "mean_service" else 1)
        options: dict[str, Any] = {"value": value, "min": low, "max": high}
        if step is not None:  # a slider
            options |= {"step": step, "continuous_update": False}
        made[name] = _text(kind, label, **options)
    return made


def read_settings(
    controls: dict[str, widgets.Widget],
    options: dict[str, widgets.Widget],
    inner: dict[str, widgets.Widget],
) -> Settings:
    """The settings the widgets hold now (``options``: the policy's parameters, ``inner``:
    those of the policy it wraps)."""
    values = {name: control.value for name, control in controls.items()}
    values["mean_service"] = values["mean_service"] / 1e3
    return Settings(
        **values,
        policy_options={n: w.value for n, w in options.items()},
        inner_options={n: w.value for n, w in inner.items()},
    )


def inner_parameter(name: str) -> str | None:
    """The parameter of policy ``name`` that takes the policy it wraps, or None."""
    return next((p.name for p in policy_parameters(name) if _mentions(p.annotation, Policy)), None)


def policy_controls(name: str) -> dict[str, widgets.Widget]:
    """A widget per parameter of policy ``name`` of a kind a widget can hold (a choice, a
    bool, a number, a text, an inner policy), set as its registered factory makes it."""
    values = policy_defaults(name)
    made: dict[str, widgets.Widget] = {}
    for parameter in policy_parameters(name):
        if parameter.name in values:
            widget = _parameter_widget(parameter, values[parameter.name])
            if widget is not None:
                made[parameter.name] = widget
    return made


def _parameter_widget(parameter: inspect.Parameter, value: Any) -> widgets.Widget | None:
    annotation, label = parameter.annotation, parameter.name.replace("_", " ")
    choices = _literal_choices(annotation)
    if choices and value in choices:
        return _text(widgets.Dropdown, label, options=choices, value=value)
    if _mentions(annotation, Policy):
        inner = [n for n in policy_names() if n != "autoscaling"]
        return _text(widgets.Dropdown, label, options=inner, value=value)
    if isinstance(value, bool):
        return widgets.Checkbox(value=value, description=label, style=_STYLE)
    if isinstance(value, str):
        return _text(widgets.Text, label, value=value, continuous_update=False)
    if isinstance(value, int) and parameter.default is not None:
        return _text(widgets.IntText, label, value=value)
    if isinstance(value, float | int):
        shown = f"{label} (0: none)" if parameter.default is None else label
        return _text(widgets.FloatText, shown, value=float(value))
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
