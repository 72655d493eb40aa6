"""Chart helpers shared by the experiments (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from experiments import storage

QUANTILES = tuple(round(q, 2) for q in np.linspace(0.01, 0.99, 99))
#: The panels of a parity chart of a pool's main figures: metric -> axis label.
MAIN_METRICS = {
    "throughput": "throughput (tasks/s)",
    "mean_latency": "mean latency (s)",
    "p95_latency": "p95 latency (s)",
}
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
            for axis in (ax.xaxis, ax.yaxis):  # minor labels on a log axis overlap
                axis.set_minor_formatter(NullFormatter())
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


def _short(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3g}"


def suptitle(figure: Figure, title: str) -> None:
    """A suptitle a fixed 0.08 in from the top, so tight_layout keeps panels clear of it
    however tall the figure."""
    figure.suptitle(title, y=1.0 - 0.08 / figure.get_figheight())


# -- estimates against an exact reference, and predicted/measured lines ------------------


def estimates_against_exact(
    points: pd.DataFrame,
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    log_y: bool = True,
    estimate_label: str = "estimate",
    relative_panel: bool = False,
) -> Path:
    """Estimates with confidence intervals against exact curves, one panel per ``panel``.

    ``points`` has columns panel, series, x, estimate, low, high (low/high may be NaN:
    no error bar); ``curves`` maps (panel, series) to the exact curve's (xs, ys). Each
    series has one colour: markers with error bars for the estimates, a line for the
    exact values. ``relative_panel`` adds a last panel with every estimate's relative
    error (estimate - exact) / exact and its interval, from a column ``exact``."""
    panels = list(dict.fromkeys(points["panel"]))
    count = len(panels) + int(relative_panel)
    columns = min(3, max(1, count))
    rows = int(np.ceil(count / columns)) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.7 * rows), squeeze=False)
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        part = points[points["panel"] == panel]
        names = list(dict.fromkeys(part["series"]))
        for color, series in zip(COLORS, names, strict=False):
            prefix = f"{series}: " if len(names) > 1 else ""
            if (panel, series) in curves:
                xs, ys = curves[(panel, series)]
                ax.plot(xs, ys, "-", color=color, linewidth=1.2, label=f"{prefix}exact")
            dots = part[part["series"] == series].sort_values("x")
            ax.errorbar(
                **_error_bars(dots, 1.0, 0.0),
                fmt="o",
                markersize=4,
                capsize=3,
                color=color,
                label=f"{prefix}{estimate_label} (95% CI)",
            )
        ax.set_title(str(panel), fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    if relative_panel:
        # x positions by rank, each group of estimates spread across its slot
        ax = axes.ravel()[len(panels)]
        levels = np.sort(points["x"].unique())
        groups = list(points.groupby(["panel", "series"], sort=False))
        for k, ((panel, series), dots) in enumerate(groups):
            dots = dots.sort_values("x").assign(x=lambda d: np.searchsorted(levels, d["x"]))
            offset = (k - (len(groups) - 1) / 2) * 0.7 / max(1, len(groups))
            exact = dots["exact"].to_numpy(dtype=float)
            alone = points.loc[points["panel"] == panel, "series"].nunique() == 1
            ax.errorbar(
                **_error_bars(dots, 1.0 / exact, -1.0, offset),
                fmt="o",
                markersize=3,
                capsize=2,
                color=COLORS[k % len(COLORS)],
                label=str(panel) if alone else f"{panel}: {series}",
            )
        ax.axhline(0.0, color="grey", linewidth=1)
        ax.set_xticks(np.arange(len(levels)), [f"{v:g}" for v in levels])
        ax.set_title("relative error (estimate - exact) / exact, 95% CI", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative error")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=6, loc="lower left")
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    suptitle(figure, title)
    return save(figure, path)


def _error_bars(
    dots: pd.DataFrame, scale: float | np.ndarray, shift: float, offset: float = 0.0
) -> dict[str, np.ndarray]:
    """Arguments of ``errorbar`` for markers at ``estimate * scale + shift`` with bars to
    ``low`` and ``high`` (scaled alike), shifted right by ``offset``."""
    estimate = dots["estimate"].to_numpy(dtype=float) * scale + shift
    low = dots["low"].to_numpy(dtype=float) * scale + shift
    high = dots["high"].to_numpy(dtype=float) * scale + shift
    return {
        "x": dots["x"].to_numpy(dtype=float) + offset,
        "y": estimate,
        "yerr": np.vstack([np.nan_to_num(estimate - low), np.nan_to_num(high - estimate)]),
    }


def predicted_measured_lines(
    summary: pd.DataFrame,
    x: str,
    hue: str,
    metric: str,
    path: Path,
    title: str,
    ylabel: str,
    extra: dict[str, str] | None = None,
    log2_x: bool = False,
    log_y: bool = False,
) -> Path:
    """``metric`` against column ``x``, one colour per value of ``hue``: predicted dashed
    (open markers), measured solid. ``summary`` is :func:`definition.summarize` output.
    ``extra`` (metric -> axis label) adds a panel per further metric, drawn the same way
    from whichever of predicted/measured it has. ``log2_x``: a base-2 log x axis (for
    counts such as 1, 2, 4, 8 workers); ``log_y``: a log y axis for the first panel (for
    values spanning decades)."""
    panels = {metric: ylabel, **(extra or {})}
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (name, label) in zip(axes[0], panels.items(), strict=True):
        rows = summary[summary["metric"] == name].sort_values(x)
        for color, (group, part) in zip(COLORS, rows.groupby(hue, sort=True), strict=False):
            for column, style, face in (
                ("predicted", "--", "white"),
                ("measured", "-", color),
            ):
                if column not in part or part[column].isna().all():
                    continue
                ax.plot(
                    part[x],
                    part[column],
                    style,
                    marker="o",
                    color=color,
                    markerfacecolor=face,
                    label=f"{hue} {group}: {column}",
                )
        if log2_x:
            ax.set_xscale("log", base=2)
        values = sorted(rows[x].unique())
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(x)
        ax.set_ylabel(label)
        if log_y and name == metric:
            ax.set_yscale("log")
            ax.set_ylim(top=ax.get_ylim()[1] * 4)  # headroom for the legend
        else:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the legend
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncols=2, loc="upper left")
    suptitle(figure, title)
    return save(figure, path)


def paired_bars(
    table: pd.DataFrame, metrics: dict[str, str], path: Path, title: str, log_y: bool = False
) -> Path:
    """Predicted (hatched) and measured bars side by side, one panel per metric
    (``metrics``: name -> axis label); ``table`` has columns label, metric, predicted,
    measured. Each bar is written out in full (no exponents); a missing value (NaN, such
    as the recovery time of a fault never detected) shows as "n/a" at zero. ``log_y``: a
    log y axis, for values spanning decades. Panels widen with the number of labels and
    stack when they get wide."""
    labels = max(1, int(table["label"].nunique()))
    columns = max(1, min(3, 12 // labels, len(metrics)))
    rows_count = int(np.ceil(len(metrics) / columns))
    width = max(4.6, 0.9 * labels + 1.5)
    figure, axes = plt.subplots(
        rows_count, columns, figsize=(width * columns, 0.9 + 3.6 * rows_count), squeeze=False
    )
    for ax, (metric, axis_label) in zip(axes.ravel(), metrics.items(), strict=False):
        rows = table[table["metric"] == metric]
        positions = np.arange(len(rows))
        for offset, column, hatch, color in (
            (-0.2, "predicted", "//", COLORS[1]),
            (0.2, "measured", None, COLORS[0]),
        ):
            values = rows[column].to_numpy(dtype=float)
            # A log axis cannot show a zero-height bar: there a missing value is left out.
            heights = values if log_y else np.nan_to_num(values)
            bars = ax.bar(
                positions + offset, heights, 0.4, label=column, color=color, hatch=hatch, alpha=0.85
            )
            text = [_short(v) if np.isnan(v) or abs(v) < 100 else f"{v:.0f}" for v in values]
            ax.bar_label(bars, labels=text, fontsize=7)
        if log_y:
            ax.set_yscale("log")
            low, high = ax.get_ylim()
            ax.set_ylim(low, high * 3)
        else:
            _zero_based(ax, rows[["predicted", "measured"]].to_numpy(dtype=float))
        ax.set_xticks(positions, rows["label"].tolist(), fontsize=8)
        ax.set_title(axis_label, fontsize=10)
        ax.grid(alpha=0.3, axis="y", which="both")
    # One legend, in a row along the top of the first panel, where the headroom is.
    axes[0][0].legend(fontsize=8, loc="upper right", ncols=2)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    suptitle(figure, title)
    return save(figure, path)


def _zero_based(ax: Axes, values: np.ndarray) -> None:
    """A y axis from zero with room for the bar labels (0 to 1 if every value is zero or
    missing); values below zero get symmetric margins instead."""
    if np.nanmin(values, initial=0.0) < 0:
        ax.margins(y=0.15)
        return
    top = float(np.nanmax(values, initial=0.0))
    ax.set_ylim(0, 1.3 * top if top > 0 else 1.0)
