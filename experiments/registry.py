"""The experiments by name."""

from __future__ import annotations

import importlib

from experiments.definition import Experiment

NAMES = (
    "theory",
    "predicted_vs_measured",
    "failure_recovery",
    "autoscaling",
    "work_stealing",
    "gil",
    "real_work",
    "plan_check",
)


def available() -> list[str]:
    """Names of the experiments whose module exists."""
    found = []
    for name in NAMES:
        try:
            importlib.import_module(f"experiments.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"experiments.{name}":
                raise  # the module exists but something it imports is missing
            continue
        found.append(name)
    return found


def get(name: str) -> Experiment:
    """The experiment called ``name``; ValueError listing the valid names otherwise."""
    if name not in available():
        raise ValueError(f"unknown experiment {name!r}; choose one of: {', '.join(available())}")
    module = importlib.import_module(f"experiments.{name}")
    experiment: Experiment = module.EXPERIMENT
    return experiment
