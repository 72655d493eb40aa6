"""How fast the explorer follows a control: one update of ``sim.explore()``, split into
simulating and drawing, for 20,000-task runs of several kinds.

Run from the repository root::

    .venv/bin/python -m benchmarks.explorer_speed               # 20,000 tasks, 7 rounds
    .venv/bin/python -m benchmarks.explorer_speed --tasks 2000 --rounds 2

Per scenario, the explorer is opened on its settings and a control is moved back and
forth ``--rounds`` times (workers 4 <-> 5): each move is one update, timed as the explorer
times it (the model run; then the snapshot, the figure as PNG and the table). The table
gives the median seconds of each part and of the whole; the target is a whole update
under 0.5 s. Figures go to ``benchmarks/results/explorer_speed.json``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks._common import OneLineParser, int_at_least, load_average, machine, write_report
from sim.explorer import Explorer, Settings

PROG = "python -m benchmarks.explorer_speed"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "explorer_speed.json"
TARGET_SECONDS = 0.5
SCENARIOS: dict[str, dict[str, Any]] = {
    "fifo": {},
    "priority, lognormal cv 2": {"policy": "priority", "service": "lognormal", "cv": 2.0},
    "work stealing, affinity 0.6": {"policy": "work-stealing", "hot_share": 0.6},
    "crashes and hangs": {"crash_mtbf": 5.0, "hang_mtbf": 10.0, "task_failure_prob": 0.02},
    "autoscaling": {"policy": "autoscaling", "load": 0.9},
}


def measure(settings: Settings, rounds: int, folder: Path) -> dict[str, float]:
    """Median seconds of the parts of one update, over ``rounds`` moves of a control."""
    explorer = Explorer(settings, folder)
    simulate, draw = [], []
    for k in range(rounds):
        explorer.controls["workers"].value = 5 if k % 2 == 0 else 4
        assert explorer.message == "", explorer.message
        simulate.append(explorer.seconds["simulate"])
        draw.append(explorer.seconds["draw"])
    whole = [s + d for s, d in zip(simulate, draw, strict=True)]
    return {
        "simulate_s": statistics.median(simulate),
        "draw_s": statistics.median(draw),
        "update_s": statistics.median(whole),
        "update_max_s": max(whole),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module)."""
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int_at_least(1000), default=20_000)
    parser.add_argument("--rounds", type=int_at_least(1), default=7)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    started, load = datetime.now(timezone.utc).isoformat(timespec="seconds"), load_average()
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, changes in tqdm(SCENARIOS.items(), desc="scenarios", unit="scenario"):
            settings = Settings(tasks=args.tasks, **changes)
            figures[name] = measure(settings, args.rounds, Path(folder))
    print(f"{'scenario':<30}{'simulate s':>12}{'draw s':>10}{'update s':>10}")
    for name, row in figures.items():
        print(f"{name:<30}{row['simulate_s']:>12.3f}{row['draw_s']:>10.3f}{row['update_s']:>10.3f}")
    within = all(row["update_s"] < TARGET_SECONDS for row in figures.values())
    print(f"every median update under {TARGET_SECONDS} s: {within}")
    report = {
        "benchmark": "explorer_speed",
        "tasks": args.tasks,
        "rounds": args.rounds,
        "target_update_s": TARGET_SECONDS,
        "scenarios": figures,
        "all_within_target": within,
        "machine": machine(started, load),
    }
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
