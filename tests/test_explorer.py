"""The explorer (``sim.explore()``), driven in code as a person would drive it: widget
values set, outputs read. What must change changes; what cannot run says why and keeps
the last good figure; nothing raises into the notebook."""

from __future__ import annotations

import html
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sim
from pool import FIFO
from pool.registry import _FACTORIES, register_policy
from sim.explorer import Explorer, Settings

#: Small runs: the behaviour is the same, the suite stays quick.
SMALL = Settings(tasks=4000)


@pytest.fixture
def explorer(tmp_path: Path) -> Explorer:
    return sim.explore(SMALL, folder=tmp_path / "exported")


def p95(explorer: Explorer) -> float:
    assert explorer.result is not None
    return explorer.result.summary()["p95_latency"]


def test_it_opens_on_a_good_run_with_the_exact_theory(explorer: Explorer) -> None:
    assert explorer.message == ""
    assert explorer.png.startswith(b"\x89PNG")
    assert "tasks simulated in" in explorer.status.value
    assert "brought into" not in explorer.status.value
    # FIFO, exponential services, no faults: M/M/4, so an exact mean is shown.
    assert "exact" in explorer.table.value
    dotted = [line for line in explorer.figure().axes[0].lines if line.get_linestyle() == ":"]
    assert len(dotted) >= 1


def test_more_workers_lower_the_p95(explorer: Explorer) -> None:
    explorer.controls["workers"].value = 2
    fewer = p95(explorer)
    explorer.controls["workers"].value = 8
    assert p95(explorer) < fewer


def test_crashes_bring_retries_and_drop_the_theory(explorer: Explorer) -> None:
    assert explorer.result is not None and explorer.result.summary()["retried"] == 0
    explorer.controls["crash_mtbf"].value = 2.0
    assert explorer.result.summary()["retried"] > 0
    assert "crash" in explorer.figure().axes[1].get_legend_handles_labels()[1]
    assert "exact" not in explorer.table.value  # no theory with faults
    assert "detection time (ms)" in explorer.table.value


def test_pin_keeps_the_run_as_a_second_set_of_curves(explorer: Explorer) -> None:
    def dashed() -> int:
        return sum(line.get_linestyle() == "--" for line in explorer.figure().axes[0].lines)

    assert dashed() == 0
    explorer.pin()
    explorer.controls["load"].value = 0.5
    assert dashed() == 2  # one per priority class
    assert "pinned" in explorer.table.value and "now" in explorer.table.value
    explorer.unpin()
    assert dashed() == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"load": 1.2}, "queue grows without end"),
        ({"service": "lognormal", "cv": 0.0}, "needs cv > 0"),
        ({"heartbeat_timeout": 0.01}, "heartbeat timeout below"),
    ],
)
def test_impossible_settings_say_why_and_keep_the_last_figure(
    explorer: Explorer, change: dict[str, Any], message: str
) -> None:
    good, result = explorer.png, explorer.result
    with explorer.hold():
        for name, value in change.items():
            explorer.controls[name].value = value
    assert message in explorer.message
    assert message in html.unescape(explorer.status.value)
    assert explorer.png == good and explorer.result is result


def test_autoscaling_bounds_that_cross_are_refused(explorer: Explorer) -> None:
    explorer.controls["policy"].value = "autoscaling"
    assert explorer.message == ""
    assert {"min_workers", "max_workers", "inner"} <= set(explorer.policy_controls)
    explorer.policy_controls["min_workers"].value = 9
    assert "min workers (9) above max workers (8)" in explorer.message
    explorer.policy_controls["min_workers"].value = 2
    explorer.controls["load"].value = 1.2  # a scaling pool may start overloaded
    assert explorer.message == ""


@pytest.mark.parametrize("name", ["fifo", "priority", "work-stealing", "autoscaling", "jsq"])
def test_every_policy_runs_with_its_own_parameters(explorer: Explorer, name: str) -> None:
    explorer.controls["policy"].value = name
    assert explorer.message == ""
    assert explorer.settings().make_policy().name.startswith(name.split("-")[0])


class TunedFIFO(FIFO):
    """A user's policy with parameters of its own."""

    def __init__(self, patience: float = 0.5, mode: str = "calm") -> None:
        super().__init__()
        if patience < 0:
            raise ValueError("patience must be >= 0")
        self.patience, self.mode = patience, mode


@pytest.fixture
def user_policy() -> Iterator[str]:
    register_policy("tuned-fifo", TunedFIFO)
    yield "tuned-fifo"
    del _FACTORIES["tuned-fifo"]


def test_a_users_registered_policy_gets_controls_for_its_parameters(
    user_policy: str, tmp_path: Path
) -> None:
    explorer = sim.explore(SMALL, folder=tmp_path)
    assert user_policy in explorer.controls["policy"].options
    explorer.controls["policy"].value = user_policy
    assert set(explorer.policy_controls) == {"patience", "mode"}
    assert explorer.policy_controls["mode"].value == "calm"
    explorer.policy_controls["patience"].value = -1.0
    assert "patience must be >= 0" in explorer.message  # the policy's own check
    explorer.policy_controls["patience"].value = 2.0
    explorer.policy_controls["mode"].value = "brisk"
    policy = explorer.settings().make_policy()
    assert isinstance(policy, TunedFIFO) and (policy.patience, policy.mode) == (2.0, "brisk")


def test_a_policy_registered_after_opening_joins_the_choice_at_the_next_update(
    tmp_path: Path,
) -> None:
    explorer = sim.explore(SMALL.replace(policy="work-stealing"), folder=tmp_path)
    explorer.policy_controls["victim"].value = "longest"
    register_policy("late-fifo", TunedFIFO)
    try:
        assert "late-fifo" not in explorer.controls["policy"].options
        runs = explorer.result
        explorer.controls["workers"].value = 5
        assert "late-fifo" in explorer.controls["policy"].options
        # The choice and its own settings stay, and the run is of them.
        assert explorer.controls["policy"].value == "work-stealing"
        assert explorer.policy_controls["victim"].value == "longest"
        assert explorer.result is not runs and explorer.message == ""
        assert explorer.settings().make_policy().victim == "longest"
        explorer.controls["policy"].value = "late-fifo"
        assert set(explorer.policy_controls) == {"patience", "mode"}
    finally:
        del _FACTORIES["late-fifo"]
    explorer.controls["workers"].value = 4  # dropped from the registry, still chosen
    assert explorer.controls["policy"].value == "late-fifo"
    assert "late-fifo" in explorer.controls["policy"].options


def test_export_writes_code_that_reproduces_the_run_and_the_figure(
    explorer: Explorer, tmp_path: Path
) -> None:
    with explorer.hold():
        explorer.controls["policy"].value = "work-stealing"
        explorer.controls["hot_share"].value = 0.6
        explorer.controls["hang_mtbf"].value = 3.0
        explorer.policy_controls["placement"].value = "affinity"
    code, image = explorer.export()
    assert image.read_bytes() == explorer.png
    namespace = runpy.run_path(str(code))
    assert explorer.result is not None
    assert namespace["result"].summary() == explorer.result.summary()


@pytest.mark.parametrize(
    ("changes", "classes"),
    [
        ({}, {0, 1}),  # M/M/4 FIFO: one value for both classes
        ({"workers": 1, "service": "deterministic"}, {0, 1}),  # M/D/1 through M/G/1
        ({"policy": "priority"}, {0, 1}),  # priority M/M/4
        ({"policy": "priority", "workers": 1, "service": "lognormal", "cv": 2.0}, {0, 1}),
        ({"policy": "work-stealing"}, set()),  # no exact result
        ({"service": "lognormal", "cv": 2.0}, set()),  # M/G/4: none
        ({"task_failure_prob": 0.1}, set()),
    ],
)
def test_the_exact_theory_is_given_where_one_exists(
    changes: dict[str, Any], classes: set[int]
) -> None:
    settings = SMALL.replace(**changes)
    exact = settings.exact_latency()
    assert set(exact) == classes
    if classes and settings.policy == "fifo":
        assert exact[0] == exact[1]
    if settings.policy == "priority":
        assert exact[0] < exact[1]  # the urgent class waits less


def test_more_workers_share_the_same_arrivals_unless_told_otherwise(explorer: Explorer) -> None:
    assert explorer.result is not None
    before = explorer.result.summary()
    explorer.controls["workers"].value = 8  # from 4: the same arrivals, half the load
    assert explorer.controls["load"].value == pytest.approx(0.35)
    after = explorer.result.summary()
    assert after["throughput"] == pytest.approx(before["throughput"], rel=0.05)
    assert after["p95_latency"] < before["p95_latency"]
    explorer.hold_rate.value = False
    explorer.controls["workers"].value = 4  # the load stays: half the arrivals
    assert explorer.controls["load"].value == pytest.approx(0.35)
    assert explorer.result.summary()["throughput"] < 0.6 * before["throughput"]


def test_export_while_the_settings_cannot_run_writes_the_run_shown(
    explorer: Explorer, tmp_path: Path
) -> None:
    explorer.controls["policy"].value = "autoscaling"
    assert explorer.result is not None
    shown = explorer.result.summary()
    explorer.policy_controls["min_workers"].value = 10  # cannot run: a message
    assert explorer.message
    code, image = explorer.export(tmp_path / "out")
    assert image.read_bytes() == explorer.png
    assert runpy.run_path(str(code))["result"].summary() == shown


class Fragile(FIFO):
    """A user's policy whose own check raises something else than ValueError."""

    def __init__(self, n: int = 1) -> None:
        super().__init__()
        if n > 5:
            raise RuntimeError("n above 5 breaks this policy")
        self.n = n


def test_whatever_a_users_policy_raises_becomes_a_message(tmp_path: Path) -> None:
    register_policy("fragile", Fragile)
    try:
        explorer = sim.explore(SMALL.replace(policy="fragile"), folder=tmp_path)
        good = explorer.png
        explorer.policy_controls["n"].value = 9
        assert "RuntimeError: n above 5" in explorer.message
        assert explorer.png == good
    finally:
        del _FACTORIES["fragile"]


def test_a_policy_made_by_its_factory_keeps_what_the_factory_gave(tmp_path: Path) -> None:
    from pool import PowerOfD

    register_policy("power-of-3", lambda: PowerOfD(d=3))
    try:
        explorer = sim.explore(SMALL.replace(policy="power-of-3"), folder=tmp_path)
        assert explorer.policy_controls["d"].value == 3
        policy = explorer.settings().make_policy()
        assert isinstance(policy, PowerOfD) and policy.d == 3
        code, _ = explorer.export()
        assert "PowerOfD(d=3)" in code.read_text()
    finally:
        del _FACTORIES["power-of-3"]


def test_priority_with_aging_has_no_exact_value_and_opens_from_settings(tmp_path: Path) -> None:
    settings = SMALL.replace(policy="priority", policy_options={"aging": None})
    explorer = sim.explore(settings, folder=tmp_path)
    assert explorer.message == "" and "exact" in explorer.table.value
    assert "brought into" not in explorer.status.value  # None shown as 0: no range moved
    explorer.policy_controls["aging"].value = 0.005
    assert explorer.message == ""
    assert explorer.settings().exact_latency() == {}
    assert "exact" not in explorer.table.value


def test_an_arrival_rate_that_cannot_be_held_is_said(explorer: Explorer) -> None:
    explorer.controls["load"].value = 0.2
    explorer.controls["workers"].value = 32  # 0.2 x 4 / 32 = 0.025: below the slider
    assert explorer.controls["load"].value == 0.05
    assert explorer.message == ""
    assert "could not be held" in explorer.status.value
    explorer.controls["workers"].value = 1  # 0.05 x 32 = 1.6: above it, and overloaded
    assert "could not be held" in explorer.status.value and explorer.message


def test_the_table_keeps_the_pinned_runs_classes(explorer: Explorer) -> None:
    explorer.pin()
    explorer.controls["urgent_share"].value = 0.0  # one class now
    assert "class 1 mean latency" in explorer.table.value


def test_the_explorer_leaves_the_notebooks_matplotlib_backend_alone(tmp_path: Path) -> None:
    script = (
        "import matplotlib\n"
        "from sim.explorer import Explorer, Settings\n"
        f"Explorer(Settings(tasks=1000), {str(tmp_path)!r})\n"
        "print(matplotlib.get_backend())\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(Path(sim.__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "svg"


def test_the_policy_autoscaling_wraps_gets_its_own_controls_and_export(
    explorer: Explorer,
) -> None:
    with explorer.hold():
        explorer.controls["policy"].value = "autoscaling"
        explorer.controls["hot_share"].value = 0.5
    assert explorer.inner_controls == {}  # FIFO inside: nothing of its own
    explorer.policy_controls["inner"].value = "work-stealing"
    assert {"placement", "victim", "amount"} <= set(explorer.inner_controls)
    explorer.inner_controls["placement"].value = "affinity"
    assert explorer.message == ""
    policy = explorer.settings().make_policy()
    assert policy.inner.placement == "affinity"  # type: ignore[attr-defined]
    assert explorer.result is not None and explorer.result.summary()["stolen"] > 0
    code, _ = explorer.export()
    assert "inner=WorkStealing(placement='affinity'" in code.read_text()
    assert runpy.run_path(str(code))["result"].summary() == explorer.result.summary()
    explorer.controls["policy"].value = "fifo"
    assert explorer.inner_controls == {} and explorer.message == ""


def test_settings_outside_the_controls_are_said_and_a_failed_export_is_not_raised(
    tmp_path: Path,
) -> None:
    explorer = sim.explore(SMALL.replace(workers=64), folder=tmp_path / "out")
    assert explorer.controls["workers"].value == 32
    assert "brought into the controls' ranges: workers" in html.unescape(explorer.status.value)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    explorer.folder = blocker / "inside"  # a folder that cannot be made
    explorer.export_button.click()
    assert "cannot export" in explorer.status.value


@pytest.mark.parametrize("raises", [False, True])
def test_the_garbage_collector_pauses_for_a_model_run_and_comes_back(
    explorer: Explorer, monkeypatch: pytest.MonkeyPatch, raises: bool
) -> None:
    import gc

    import sim.explorer.app as app

    seen: list[bool] = []
    model_run = sim.run

    def run(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        if raises:
            raise RuntimeError("the model failed")
        return model_run(*args, **kwargs)

    monkeypatch.setattr(app.sim, "run", run)
    assert gc.isenabled()
    explorer.controls["workers"].value = 3
    assert seen == [False] and gc.isenabled()
    assert ("RuntimeError: the model failed" in explorer.message) == raises
    gc.disable()  # a caller who turned it off keeps it off
    try:
        explorer.controls["workers"].value = 5
        assert seen == [False, False] and not gc.isenabled()
    finally:
        gc.enable()
