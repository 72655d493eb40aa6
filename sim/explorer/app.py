"""The explorer: an ipywidgets app over the model (``sim.explore()``).

Every change of a control runs the model once (:meth:`Explorer.update`) and redraws the
latency CDF per priority class, the timeline and the summary table. Settings that cannot
run show a one-line message and keep the last good figure: nothing raises into the
notebook. "Pin" keeps the current run as a dashed overlay; "Export" writes the Python
code of the current run and its figure as PNG.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import html
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

import sim
from pool.registry import policy_names
from pool.results import RunResult
from sim.explorer import controls as make
from sim.explorer.export import python_code
from sim.explorer.figures import Canvas, Snapshot, snapshot, table
from sim.explorer.settings import Settings, control_value

#: Which controls go in which tab.
TABS = {
    "Pool": ("policy", "workers"),
    "Load": ("load", "mean_service", "service", "cv", "tasks", "urgent_share", "hot_share"),
    "Faults": (
        "crash_mtbf",
        "hang_mtbf",
        "hang_duration",
        "task_failure_prob",
        "heartbeat_interval",
        "heartbeat_timeout",
        "restart_delay",
        "max_attempts",
        "seed",
    ),
}


class Explorer:
    """The app. ``controls`` (by setting name) and ``policy_controls`` (by parameter of
    the chosen policy) are its widgets; ``app`` is the whole; ``result`` the last good
    run, ``message`` what is wrong with the current settings (empty when nothing);
    ``seconds`` how long the last update took to simulate and to draw."""

    def __init__(self, settings: Settings | None = None, folder: str | Path = "explorer") -> None:
        settings = settings if settings is not None else Settings()
        self.folder = Path(folder)
        self.controls = make.setting_controls(settings)
        self.policy_controls: dict[str, widgets.Widget] = {}
        #: The parameters of the policy the chosen one wraps (autoscaling's inner policy).
        self.inner_controls: dict[str, widgets.Widget] = {}
        self.policy_box = widgets.VBox()
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%"))
        self.table = widgets.HTML()
        self.status = widgets.HTML()
        self.pin_button = widgets.Button(description="Pin", tooltip="keep this run to compare")
        self.unpin_button = widgets.Button(description="Unpin")
        self.export_button = widgets.Button(description="Export", tooltip="code and PNG")
        self.hold_rate = widgets.Checkbox(
            value=True,
            description="hold the arrival rate when workers change (the load follows)",
            indent=False,
            layout=widgets.Layout(width="460px"),
        )
        self.result: RunResult | None = None
        self.current: Snapshot | None = None
        self.pinned: Snapshot | None = None
        self.message = ""
        #: The settings of the run shown (what "Export" writes).
        self.good = settings
        self._note = ""
        self.seconds = {"simulate": 0.0, "draw": 0.0}
        self._held = 0  # nested holds: update when the outermost ends
        self._exact: dict[int, float] = {}
        self._png = b""
        self.canvas = Canvas()
        self._set_policy_controls(settings.policy, settings.policy_options, settings.inner_options)
        for name, control in self.controls.items():
            changed = {"policy": self._policy_changed, "workers": self._workers_changed}
            control.observe(changed.get(name, self._changed), names="value")
        self.pin_button.on_click(lambda _: self.pin())
        self.unpin_button.on_click(lambda _: self.unpin())
        self.export_button.on_click(lambda _: self._export_clicked())
        self.app = self._layout()
        held = self.settings()
        moved = [
            name
            for name in self.controls
            if not _same(getattr(held, name), getattr(settings, name))
        ]
        if moved:  # a value outside a control's range was brought into it
            self._note = f"brought into the controls' ranges: {', '.join(moved)}"
        self.update()

    def _layout(self) -> widgets.Widget:
        pages = []
        for name, names in TABS.items():
            boxes: list[widgets.Widget] = [self.controls[n] for n in names]
            if name == "Pool":
                boxes += [self.hold_rate, self.policy_box]
            pages.append(widgets.VBox(boxes))
        tabs = widgets.Tab(children=pages, titles=list(TABS))
        buttons = widgets.HBox([self.pin_button, self.unpin_button, self.export_button])
        return widgets.VBox([tabs, buttons, self.status, self.image, self.table])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.app)  # type: ignore[no-untyped-call]

    # -- changes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Change several controls, then update once."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held:
            self.update()

    def _changed(self, _change: Any) -> None:
        if not self._held:
            self.update()

    def _workers_changed(self, change: Any) -> None:
        """With ``hold_rate``, the same arrivals over more (fewer) workers: the load,
        arrivals over what the workers serve, moves the other way."""
        load = self.controls["load"]
        self._note = ""
        with self.hold():
            if self.hold_rate.value and change["old"]:
                wanted = round(load.value * change["old"] / change["new"], 4)
                load.value = min(load.max, max(load.min, wanted))
                if load.value != wanted:
                    self._note = (
                        f"the arrival rate could not be held: load {wanted:g} is out of"
                        f" [{load.min:g}, {load.max:g}], {load.value:g} instead"
                    )

    def _policy_changed(self, change: Any) -> None:
        with self.hold():
            self._set_policy_controls(str(change["new"]), {}, {})

    def _set_policy_controls(
        self, name: str, values: dict[str, Any], inner: dict[str, Any]
    ) -> None:
        self.policy_controls = make.policy_controls(name)
        wraps = make.inner_parameter(name)
        self._fill(self.policy_controls, values, wraps)
        wrapped = self.policy_controls.get(wraps) if wraps else None
        self._set_inner_controls(None if wrapped is None else str(wrapped.value), inner)

    def _inner_changed(self, change: Any) -> None:
        with self.hold():
            self._set_inner_controls(str(change["new"]), {})

    def _set_inner_controls(self, name: str | None, values: dict[str, Any]) -> None:
        """The controls of the wrapped policy ``name`` (none when there is none), shown
        indented below the chosen policy's own."""
        self.inner_controls = {} if name is None else make.policy_controls(name)
        for control in self.inner_controls.values():
            control.description = f"inner {control.description}"
        self._fill(self.inner_controls, values, None)
        shown = [*self.policy_controls.values(), *self.inner_controls.values()]
        self.policy_box.children = tuple(shown)

    def _fill(
        self, controls: dict[str, widgets.Widget], values: dict[str, Any], wraps: str | None
    ) -> None:
        """Set ``controls`` to ``values`` where given and watch them (the one named
        ``wraps`` rebuilds the wrapped policy's controls)."""
        for parameter, control in controls.items():
            if parameter in values:
                control.value = control_value(values[parameter])
            changed = self._inner_changed if parameter == wraps else self._changed
            control.observe(changed, names="value")

    def _list_policies(self) -> None:
        """Policies registered since the explorer opened join the choice (one that was
        dropped from the registry meanwhile stays while it is chosen)."""
        choice = self.controls["policy"]
        names = list(policy_names())
        if choice.value not in names:
            names.append(choice.value)
        if list(choice.options) == names:
            return
        chosen = choice.value
        # A Dropdown given new options picks the first: put the choice back unheard.
        choice.unobserve(self._policy_changed, names="value")
        try:
            choice.options = names
            choice.value = chosen
        finally:
            choice.observe(self._policy_changed, names="value")

    def settings(self) -> Settings:
        """The settings the controls hold now."""
        return make.read_settings(self.controls, self.policy_controls, self.inner_controls)

    # -- runs ----------------------------------------------------------------------------

    def update(self) -> None:
        """Run the model on the current settings and redraw; on settings that cannot run
        (or anything that fails on the way), say why and keep the last good figure."""
        self._list_policies()
        settings = self.settings()
        started = time.perf_counter()
        try:
            problem = settings.problem()
            if problem is None:
                workload, policy, options = settings.build()
                with _collector_paused():
                    result = sim.run(
                        workload, policy, settings.workers, seed=settings.seed, **options
                    )
                simulated = time.perf_counter()
                current, exact = snapshot(result, "now"), settings.exact_latency()
        except Exception as error:  # nothing may raise into the notebook
            problem = f"{type(error).__name__}: {error}"
        if problem is not None:
            self.message = problem
            shown = f"{problem}; {self._note}" if self._note else problem
            self.status.value = f"<span style='color:#b00'>{html.escape(shown)}</span>"
            self._note = ""
            return
        self.result, self.current, self._exact, self.message = result, current, exact, ""
        self.good = settings
        self._redraw()
        self.seconds = {"simulate": simulated - started, "draw": time.perf_counter() - simulated}
        self.status.value = (
            f"{len(workload):,} tasks simulated in {self.seconds['simulate']:.2f} s,"
            f" drawn in {self.seconds['draw']:.2f} s"
        ) + (f"; {html.escape(self._note)}" if self._note else "")
        self._note = ""

    def _redraw(self) -> None:
        assert self.current is not None
        self.canvas.draw(self.current, self.pinned, self._exact)
        self._png = self.canvas.png()
        self.image.value = self._png
        frame = table(self.current, self.pinned, self._exact)
        self.table.value = frame.to_html(float_format=lambda v: f"{v:,.3g}", na_rep="")

    def pin(self) -> None:
        """Keep the current run as the dashed overlay to compare the next ones against."""
        if self.current is not None:
            self.pinned = dataclasses.replace(self.current, label="pinned")
            self._redraw()

    def unpin(self) -> None:
        """Drop the pinned run."""
        self.pinned = None
        if self.current is not None:
            self._redraw()

    def _export_clicked(self) -> None:
        try:
            self.export()
        except OSError as error:  # a folder it cannot write: said, not raised
            self.status.value = (
                f"<span style='color:#b00'>cannot export: {html.escape(str(error))}</span>"
            )

    def export(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """Write the Python code and the figure of the run shown (the last good one, if
        the current settings cannot run) into ``folder`` (default: the explorer's);
        return their paths."""
        target = Path(folder) if folder is not None else self.folder
        target.mkdir(parents=True, exist_ok=True)
        code, image = target / "explorer_run.py", target / "explorer_run.png"
        code.write_text(python_code(self.good))
        image.write_bytes(self._png)
        self.status.value = f"exported {html.escape(str(code))} and {html.escape(str(image))}"
        return code, image

    def figure(self) -> Figure:
        """The figure shown now, as a matplotlib Figure (to inspect or save otherwise)."""
        return self.canvas.figure

    @property
    def png(self) -> bytes:
        """The figure shown now, as PNG."""
        return self._png


def _same(shown: Any, given: Any) -> bool:
    """Whether a control shows the value it was given (floats: up to rounding)."""
    if isinstance(shown, float) and isinstance(given, float | int):
        return math.isclose(shown, given, rel_tol=1e-9)
    return bool(shown == given)


def explore(settings: Settings | None = None, folder: str | Path = "explorer") -> Explorer:
    """An interactive explorer of the model for Jupyter (display it, or its ``app``):
    choose the policy and its parameters, the pool, the load, the service, the priority
    mix and affinity skew, faults and recovery; see the latency CDF per class (with the
    exact mean where theory has one), the timeline and the summary; pin a run to compare
    against; export the code and the figure (into ``folder``)."""
    return Explorer(settings, folder)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one model run (as it was after it).
    A run makes and drops objects by the tens of thousands; with the collector on, every
    few runs one of them ends in a full collection, which walks every object the notebook
    holds (0.13-0.17 s of an update here). What the run leaves is collected afterwards
    with the young objects, at no such cost; a run is bounded (100,000 tasks at most)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
