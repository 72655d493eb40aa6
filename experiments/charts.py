"""Chart helpers shared by the experiments (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments import storage

QUANTILES = tuple(round(q, 2) for q in np.linspace(0.01, 0.99, 99))
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def save(figure: Figure, path: Path) -> Path:
    """Save ``figure`` as a PNG at ``path`` atomically and close it."""
    figure.tight_layout()
    storage.atomic_write(path, lambda target: figure.savefig(target, dpi=110, format="png"))
    plt.close(figure)
    return path


def parity(
    summary: pd.DataFrame, metrics: dict[str, str], hue: str, path: Path, title: str
) -> Path:
    """Measured against predicted, one panel per metric, with the line y = x."""
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.0))
    for ax, (metric, label) in zip(np.atleast_1d(axes), metrics.items(), strict=True):
        rows = summary[summary["metric"] == metric]
        for color, (group, part) in zip(COLORS, rows.groupby(hue, sort=True), strict=False):
            ax.scatter(part["predicted"], part["measured"], s=22, color=color, label=str(group))
        low = float(np.nanmin(rows[["predicted", "measured"]].to_numpy())) if len(rows) else 0
        high = float(np.nanmax(rows[["predicted", "measured"]].to_numpy())) if len(rows) else 1
        ax.plot([low, high], [low, high], color="grey", linewidth=1, linestyle="--")
        ax.set_xlabel(f"predicted {label}")
        ax.set_ylabel(f"measured {label}")
        if metric != "throughput":
            ax.set_xscale("log")
            ax.set_yscale("log")
    np.atleast_1d(axes)[0].legend(title=hue, fontsize=8)
    figure.suptitle(title)
    return save(figure, path)


def quantile_rows(latencies: np.ndarray, backend: str) -> list[dict[str, object]]:
    """Tidy rows holding the latency quantiles (seconds) a CDF chart needs."""
    if latencies.size == 0:
        return []
    values = np.quantile(latencies, QUANTILES)
    return [
        {"backend": backend, "metric": f"latency_q{q:.2f}", "value": float(v)}
        for q, v in zip(QUANTILES, values, strict=True)
    ]


def cdf_overlay(
    results: pd.DataFrame, panels: list[tuple[str, pd.DataFrame]], path: Path, title: str
) -> Path:
    """Latency CDFs, predicted (dashed) against measured (solid), one panel per cell."""
    columns = min(3, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / columns)) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False)
    for ax, (label, part) in zip(axes.ravel(), panels, strict=False):
        for backend, style in (("sim", "--"), ("real", "-")):
            quantiles = part[
                (part["backend"] == backend) & part["metric"].str.startswith("latency_q")
            ]
            if quantiles.empty:
                continue
            mean = quantiles.groupby("metric")["value"].mean()
            levels = [float(name.removeprefix("latency_q")) for name in mean.index]
            name = "predicted" if backend == "sim" else "measured"
            ax.plot(mean.to_numpy() * 1e3, levels, style, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of tasks")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(title)
    return save(figure, path)
