"""Time series of a run for the experiments' charts: tidy rows with a ``time`` column
(binned completions, queue length, busy and live workers, latency), events (crashes,
detections, restarts, scale decisions), a grid of predicted/measured series, and the
pairing of predicted with measured events."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments import storage
from experiments.charts import COLORS, save, suptitle
from pool.results import RunResult

#: Time-series metrics :func:`series_rows` can compute from a run.
SERIES = ("completions", "queued", "busy", "workers", "latency")


def series_rows(
    result: RunResult, backend: str, metrics: tuple[str, ...], width: float
) -> list[dict[str, object]]:
    """Tidy rows of a run's time series in bins of ``width`` s from 0 to its last task's end.

    Each row has ``time`` (the bin's centre, s), ``metric`` and ``value``:
    ``completions``: tasks completed in the bin; ``queued``, ``busy``, ``workers``: the
    time-average of the timeline's level over the bin; ``latency``: mean latency (s) of
    the tasks that arrived in the bin and completed (bins without such tasks are left out).
    """
    unknown = sorted(set(metrics) - set(SERIES))
    if unknown:
        raise ValueError(f"metrics must be among {', '.join(SERIES)}; got {unknown}")
    tasks = result.tasks
    done = tasks[tasks["status"] == "done"]
    last = float(np.nanmax(tasks["end"].to_numpy())) if done.size else 0.0
    bins = max(1, int(np.ceil(last / width - 1e-9)))
    edges = np.arange(bins + 1) * width
    centres = np.round((edges[:-1] + edges[1:]) / 2, 9)
    rows: list[dict[str, object]] = []

    def add(metric: str, values: np.ndarray, keep: np.ndarray | None = None) -> None:
        for index in np.nonzero(keep if keep is not None else np.ones(bins, bool))[0]:
            rows.append(
                {
                    "backend": backend,
                    "metric": metric,
                    "time": float(centres[index]),
                    "value": float(values[index]),
                }
            )

    for metric in metrics:
        if metric == "completions":
            add(metric, np.histogram(done["end"].to_numpy(), bins=edges)[0].astype(float))
        elif metric == "latency":
            index = np.floor(done["arrival"].to_numpy() / width).astype(np.int64)
            inside = (index >= 0) & (index < bins)
            counts = np.bincount(index[inside], minlength=bins)
            sums = np.bincount(index[inside], done["latency"].to_numpy()[inside], minlength=bins)
            add(metric, sums / np.maximum(counts, 1), counts > 0)
        else:
            timeline = result.timeline
            add(
                metric,
                _bin_averages(timeline["time"].to_numpy(), timeline[metric].to_numpy(), edges),
            )
    return rows


def _bin_averages(times: np.ndarray, levels: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Time-averages over each bin of ``edges`` of a step function (``levels`` from
    ``times`` on, 0 before the first)."""
    area = np.concatenate([[0.0], np.cumsum(levels[:-1] * np.diff(times))])

    def integral(x: np.ndarray) -> np.ndarray:
        index = np.searchsorted(times, x, side="right") - 1
        before = index < 0
        index = np.maximum(index, 0)
        value = area[index] + levels[index] * (x - times[index])
        return np.where(before, 0.0, value)

    if times.size == 0:
        return np.zeros(len(edges) - 1)
    whole = integral(edges)
    result: np.ndarray = np.diff(whole) / np.diff(edges)
    return result


def event_rows(result: RunResult, backend: str, kinds: tuple[str, ...]) -> list[dict[str, object]]:
    """Tidy rows of a run's events of ``kinds``: ``metric`` is the kind, ``value`` its time
    (s) and ``event`` its ordinal among events of that kind (0, 1, ...)."""
    events = result.events
    rows: list[dict[str, object]] = []
    for kind in kinds:
        times = events.loc[events["kind"] == kind, "time"].to_numpy()
        rows += [
            {"backend": backend, "metric": kind, "value": float(t), "event": k}
            for k, t in enumerate(times)
        ]
    return rows


def series_grid(
    panels: list[tuple[str, pd.DataFrame]],
    metrics: dict[str, str],
    path: Path,
    title: str,
    markers: dict[str, str] | None = None,
) -> Path:
    """Time series, predicted (dashed) against measured (solid): one row of panels per
    cell (``panels``: title and its rows), one column per metric (``metrics``: name ->
    axis label), means over replications. ``markers`` (event kind -> colour) draws
    a vertical line at each predicted event of that kind (rows from :func:`event_rows`)."""
    columns, count = len(metrics), max(1, len(panels))
    figure, axes = plt.subplots(
        count, columns, figsize=(5.6 * columns, 1.0 + 2.8 * count), squeeze=False
    )
    for row, (label, part) in zip(axes, panels, strict=False):
        for ax, (metric, axis_label) in zip(row, metrics.items(), strict=True):
            for backend, style, color in (("sim", "--", COLORS[1]), ("real", "-", COLORS[0])):
                series = part[(part["backend"] == backend) & (part["metric"] == metric)]
                if series.empty:
                    continue
                mean = series.groupby("time")["value"].mean()
                name = "predicted" if backend == "sim" else "measured"
                ax.plot(mean.index, mean.to_numpy(), style, color=color, linewidth=1.3, label=name)
            for kind, color in (markers or {}).items():
                times = _marker_times(part, kind)
                for k, instant in enumerate(times):
                    ax.axvline(instant, color=color, linewidth=1, label=kind if k == 0 else None)
            ax.set_title(f"{label}: {metric}", fontsize=9)
            ax.set_xlabel("time (s)")
            ax.set_ylabel(axis_label)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7, loc="upper left")
    for ax in axes.ravel()[len(panels) * columns :]:
        ax.set_visible(False)
    suptitle(figure, title)
    return save(figure, path)


def _marker_times(part: pd.DataFrame, kind: str) -> list[float]:
    events = part[part["metric"] == kind]
    for backend in ("sim", "real"):
        chosen = events[events["backend"] == backend]
        if not chosen.empty:
            return sorted(chosen.groupby("event")["value"].mean().tolist())
    return []


def nearest_events(
    results: pd.DataFrame, kinds: tuple[str, ...], keys: list[str], tolerance: float, path: Path
) -> Path:
    """Pair each predicted event of ``kinds`` (rows from :func:`event_rows`) with the
    nearest measured event of the same kind in the same cell (``keys``) and replication;
    ``within`` says whether they are at most ``tolerance`` s apart. Events at one instant
    (a decision that adds or retires several slots) count as one, their number in
    ``*_slots``; ``*_decisions`` count such instants in the run. Written as CSV."""
    events = results[results["metric"].isin(kinds)]
    rows = []
    for values, part in events.groupby([*keys, "replication"], sort=True):
        labels = dict(zip([*keys, "replication"], values, strict=True))
        for kind in kinds:
            predicted = _instants(part, kind, "sim")
            measured = _instants(part, kind, "real")
            times = measured.index.to_numpy(dtype=float)
            for instant, slots in zip(
                predicted.index.to_numpy(dtype=float), predicted.to_numpy(), strict=True
            ):
                nearest = float(times[np.argmin(np.abs(times - instant))]) if times.size else np.nan
                gap = round(nearest - instant, 4)
                rows.append(
                    {
                        **labels,
                        "kind": kind,
                        "predicted_time": instant,
                        "predicted_slots": int(slots),
                        "measured_time": nearest,
                        "measured_slots": int(measured.get(nearest, 0)),
                        "difference": gap,
                        "within": bool(abs(gap) <= tolerance),
                        "predicted_decisions": len(predicted),
                        "measured_decisions": len(measured),
                    }
                )
    storage.write_csv(pd.DataFrame(rows), path)
    return path


def _instants(part: pd.DataFrame, kind: str, backend: str) -> pd.Series:
    """Event instants of ``kind`` (rounded to 0.1 ms) and how many events each holds."""
    chosen = part.loc[(part["metric"] == kind) & (part["backend"] == backend), "value"]
    return chosen.round(4).value_counts().sort_index()
