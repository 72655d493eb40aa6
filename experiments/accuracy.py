"""Turning a pair of runs into tidy rows, and errors into a verdict against targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from experiments import storage
from experiments.charts import quantile_rows
from experiments.definition import Row
from pool.results import RunResult

METRICS = (
    "throughput",
    "mean_wait",
    "mean_latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "utilization",
    "completed",
    "failed",
    "lost",
    "duplicates",
    "retried",
    "stolen",
    "detection_time",
    "recovery_time",
)


def summary_rows(result: RunResult, backend: str, quantiles: bool = False) -> list[Row]:
    """Tidy rows of one run's summary (and its latency quantiles)."""
    summary = result.summary()
    rows: list[Row] = [
        {"backend": backend, "metric": name, "value": float(summary[name])}
        for name in METRICS
        if name in summary
    ]
    if quantiles:
        tasks = result.tasks
        done = tasks[tasks["status"] == "done"]
        rows += quantile_rows(done["latency"].to_numpy(), backend)
    return rows


def pair_rows(predicted: RunResult, measured: RunResult, quantiles: bool = False) -> list[Row]:
    """Rows of a predicted and a measured run of the same cell."""
    return summary_rows(predicted, "sim", quantiles) + summary_rows(measured, "real", quantiles)


def accuracy_table(summary: pd.DataFrame, targets: dict[str, float], path: Path) -> Path:
    """Per metric with a target: cells, mean and worst |rel_error|, and whether every cell
    is within the target. Written as CSV to ``path``."""
    rows = []
    for metric, target in targets.items():
        errors = summary.loc[summary["metric"] == metric, "rel_error"].abs().dropna()
        rows.append(
            {
                "metric": metric,
                "target": target,
                "cells": len(errors),
                "mean_abs_error": float(errors.mean()) if len(errors) else np.nan,
                "max_abs_error": float(errors.max()) if len(errors) else np.nan,
                "cells_within": int((errors <= target).sum()),
                "all_within": bool(len(errors) and (errors <= target).all()),
            }
        )
    storage.write_csv(pd.DataFrame(rows), path)
    return path
