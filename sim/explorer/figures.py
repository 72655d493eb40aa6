"""What the explorer shows of a run: the latency CDF per priority class, the timeline, the
summary table; a run reduced to a :class:`Snapshot` so that a pinned one costs nothing
to draw again. Drawn on a matplotlib ``Figure`` of its own (not pyplot's: the notebook's
backend is left alone) into PNG bytes (an ipywidgets Image shows them, "Export" writes
them)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

from pool.results import RunResult

#: Points of each CDF and of the timeline: enough for the eye, cheap to draw.
CDF_POINTS = 200
TIMELINE_POINTS = 400
#: Events marked on the timeline, with their colours.
MARKED = {
    "crash": "red",
    "hang": "purple",
    "detected": "grey",
    "restart": "green",
    "scale_up": "tab:blue",
    "scale_down": "tab:orange",
}
SHOWN = {
    "throughput": ("throughput (tasks/s)", 1.0),
    "mean_latency": ("mean latency (ms)", 1e3),
    "p50_latency": ("p50 latency (ms)", 1e3),
    "p95_latency": ("p95 latency (ms)", 1e3),
    "p99_latency": ("p99 latency (ms)", 1e3),
    "utilization": ("utilization", 1.0),
    "retried": ("retried attempts", 1.0),
    "failed": ("failed tasks", 1.0),
    "lost": ("lost tasks", 1.0),
    "detection_time": ("detection time (ms)", 1e3),
    "recovery_time": ("recovery time (s)", 1.0),
}
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Snapshot:
    """A run as the explorer draws it: latency quantiles (ms) per priority class, the
    timeline sampled on a grid (s; workers, busy, queued), marked events, the summary
    and the mean latency (s) per class."""

    label: str
    cdf: dict[int, tuple[Array, Array]]
    grid: Array
    levels: dict[str, Array]
    events: dict[str, Array]
    summary: dict[str, float]
    class_means: dict[int, float]


def snapshot(result: RunResult, label: str) -> Snapshot:
    """Reduce ``result`` to what the explorer draws."""
    tasks = result.tasks
    done = tasks["status"].to_numpy() == "done"
    latency, priority = tasks["latency"].to_numpy()[done], tasks["priority"].to_numpy()[done]
    by_class = {int(cls): latency[priority == cls] for cls in np.unique(priority)}
    probabilities = np.linspace(0.0, 1.0, CDF_POINTS)
    cdf = {
        cls: (np.quantile(part * 1e3, probabilities), probabilities)
        for cls, part in by_class.items()
    }
    timeline = result.timeline
    times = timeline["time"].to_numpy()
    grid = np.linspace(0.0, float(times.max()) if len(times) else 1.0, TIMELINE_POINTS)
    at = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, max(len(times) - 1, 0))
    levels = {
        column: timeline[column].to_numpy()[at].astype(float)
        for column in ("workers", "busy", "queued")
    }
    events = result.events
    marked = {
        kind: events.loc[events["kind"] == kind, "time"].to_numpy()
        for kind in MARKED
        if (events["kind"] == kind).any()
    }
    means = {cls: float(part.mean()) for cls, part in by_class.items()}
    return Snapshot(label, cdf, grid, levels, marked, result.summary(), means)


class Canvas:
    """One figure of two panels, made once and redrawn in place: its axes, ticks and
    labels are kept, so a redraw only replaces the curves (a new figure each time cost
    half of an update)."""

    def __init__(self) -> None:
        # Fixed margins: a layout engine would measure every label again on each redraw.
        self.figure = Figure(figsize=(11, 3.8), dpi=80)
        self.figure.subplots_adjust(left=0.06, right=0.99, bottom=0.13, top=0.93, wspace=0.18)
        self.cdf_axes, self.timeline_axes = self.figure.subplots(1, 2)
        cdf = self.cdf_axes
        cdf.set(xlabel="latency (ms)", ylabel="fraction of tasks", ylim=(0, 1))
        cdf.set_xscale("log")
        # Plain labels: minor ones and the log axis's math text cost most of a redraw.
        cdf.xaxis.set_minor_locator(NullLocator())
        cdf.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        self.timeline_axes.set(xlabel="time (s)", ylabel="tasks / workers")
        for axis in (cdf.yaxis, self.timeline_axes.xaxis, self.timeline_axes.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=5))  # each label is drawn text
        # Panel names as plain text: an axes title is placed anew on every draw.
        for axes, name in ((cdf, "Latency CDF"), (self.timeline_axes, "Timeline")):
            axes.text(0.5, 1.02, name, transform=axes.transAxes, ha="center", fontsize=11)

    def draw(self, current: Snapshot, pinned: Snapshot | None, exact: dict[int, float]) -> Figure:
        """The CDFs (current solid, pinned dashed, exact means dotted) and the timeline of
        the current run, in place of what was drawn before."""
        for axes in (self.cdf_axes, self.timeline_axes):
            for artist in [*axes.lines, *axes.collections]:
                artist.remove()
        cdf = self.cdf_axes
        for run, style in ((current, "-"), (pinned, "--")):
            if run is None:
                continue
            for cls, (latency, probability) in sorted(run.cdf.items()):
                cdf.plot(
                    latency, probability, style, color=f"C{cls}", label=f"class {cls}, {run.label}"
                )
        for cls, mean in sorted(exact.items()):
            cdf.axvline(
                mean * 1e3, linestyle=":", color=f"C{cls}", label=f"class {cls}, exact mean"
            )
        cdf.relim()
        cdf.autoscale_view(scaley=False)
        _keep_legend(cdf, "lower right", 1)
        self._timeline(current)
        return self.figure

    def png(self) -> bytes:
        """The figure as drawn now, as PNG."""
        buffer = io.BytesIO()
        # Light compression: the PNG is shown once, and zlib's default took a tenth of it.
        self.figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
        return buffer.getvalue()

    def _timeline(self, run: Snapshot) -> None:
        axes = self.timeline_axes
        for column, color in (("queued", "C3"), ("busy", "C0"), ("workers", "k")):
            axes.step(run.grid, run.levels[column], where="post", color=color, label=column)
        top = max(1.0, *(float(level.max()) for level in run.levels.values()))
        for kind, times in run.events.items():  # one collection per kind, however many
            axes.vlines(times, 0.0, top, color=MARKED[kind], linewidth=0.8, label=kind)
        axes.relim()
        axes.autoscale_view()
        _keep_legend(axes, "upper right", 2)


def _keep_legend(axes: Axes, place: Literal["lower right", "upper right"], columns: int) -> None:
    """A legend for what ``axes`` shows, made anew only when its entries change (a new
    legend is laid out again at every draw; one kept is not). Its keys are its own
    copies, so curves redrawn in their place need no new legend."""
    labels = [artist.get_label() for artist in [*axes.lines, *axes.collections]]
    if axes.legend_ is None or [t.get_text() for t in axes.legend_.get_texts()] != labels:
        axes.legend(fontsize=7, loc=place, ncols=columns)


def table(current: Snapshot, pinned: Snapshot | None, exact: dict[int, float]) -> pd.DataFrame:
    """The summary side by side: this run, the pinned one, and the exact value where
    theory gives one (the mean latency per priority class)."""
    rows: dict[str, dict[str, float]] = {}
    runs = [run for run in (current, pinned) if run is not None]
    for metric, (name, scale) in SHOWN.items():
        if any(metric in run.summary for run in runs):  # recovery figures: with faults
            rows[name] = {run.label: run.summary.get(metric, np.nan) * scale for run in runs}
    classes = set(current.class_means) | set(exact)
    if pinned is not None:
        classes |= set(pinned.class_means)
    for cls in sorted(classes):
        name = f"class {cls} mean latency (ms)"
        rows[name] = {run.label: run.class_means.get(cls, np.nan) * 1e3 for run in runs}
        if cls in exact:
            rows[name]["exact"] = exact[cls] * 1e3
    return pd.DataFrame(rows).T
