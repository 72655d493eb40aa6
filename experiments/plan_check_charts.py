"""plan_check's accuracy table and chart: the plan's p95 against the real pool's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments import storage
from experiments.charts import save

TOLERANCE = 0.15  # measured p95 within this of the prediction at the recommended size


def checks(results: pd.DataFrame) -> pd.DataFrame:
    """One row per mix, replication, load and checked size, with the targets judged."""
    checked = results[results["backend"].isin(["predicted", "measured"])]
    slo = results[results["metric"] == "slo_p95_latency"].set_index(["mix", "replication"])
    keys = ["mix", "replication", "load", "role", "workers"]
    wide = checked.pivot_table(
        index=keys, columns=["backend", "metric"], values="value", aggfunc="first"
    )
    rows = []
    for key, values in wide.iterrows():
        entry: dict[str, Any] = dict(zip(keys, tuple(key), strict=True))  # type: ignore[arg-type, unused-ignore]
        bound = float(slo.loc[(entry["mix"], entry["replication"]), "value"])
        predicted = float(values[("predicted", "p95_latency")])
        high = float(values[("predicted", "p95_latency_high")])
        measured = float(values[("measured", "p95_latency")])
        entry.update(
            slo=bound,
            predicted_p95=predicted,
            predicted_p95_high=high,
            measured_p95=measured,
            rel_error=(predicted - measured) / measured if np.isfinite(predicted) else np.inf,
            measured_meets=measured <= bound,
            predicted_meets=high <= bound,
        )
        if entry["role"] == "recommended":
            entry["target_met"] = entry["measured_meets"] and abs(entry["rel_error"]) <= TOLERANCE
        else:  # below / largest: predicted to miss; measured to miss, or the SLO in the CI
            low = float(values[("predicted", "p95_latency_low")])
            borderline = low <= bound <= high
            entry["target_met"] = (not entry["predicted_meets"]) and (
                not entry["measured_meets"] or borderline
            )
        rows.append(entry)
    return pd.DataFrame(rows)


def draw(results: pd.DataFrame, folder: Path) -> list[Path]:
    """``accuracy.csv`` and ``plan_check.png`` (bars per checked size, the SLO dashed)."""
    table = checks(results)
    accuracy = folder / "accuracy.csv"
    storage.write_csv(table, accuracy)
    mixes = sorted(table["mix"].unique()) if len(table) else []
    figure, axes = plt.subplots(
        1, max(1, len(mixes)), figsize=(5.5 * max(1, len(mixes)), 3.8), squeeze=False
    )
    for ax, mix in zip(axes[0], mixes, strict=False):
        part = table[table["mix"] == mix].sort_values(["load", "role"], ascending=[True, False])
        labels = [f"x{r.load:g}\n{r.role} ({r.workers})" for r in part.itertuples()]
        x = np.arange(len(part))
        shown = np.where(np.isfinite(part["predicted_p95"]), part["predicted_p95"], np.nan)
        ax.bar(x - 0.2, shown, 0.4, label="predicted (plan)")
        high = np.where(np.isfinite(part["predicted_p95_high"]), part["predicted_p95_high"], np.nan)
        ax.errorbar(x - 0.2, shown, yerr=[np.zeros(len(x)), high - shown], fmt="none", ecolor="k")
        ax.bar(x + 0.2, part["measured_p95"], 0.4, label="measured (real pool)")
        for bound in part["slo"].unique():
            ax.axhline(bound, color="black", linestyle="--", linewidth=1)
        ax.set_xticks(x, labels, fontsize="small")
        ax.set_yscale("log")
        ax.set_title(f"{mix} (SLO dashed)")
        ax.set_ylabel("p95 latency (s)")
        ax.legend(fontsize="small")
    figure.suptitle("Plan checked: the recommended pool size and one below, measured")
    return [save(figure, folder / "plan_check.png"), _curves(results, folder), accuracy]


def _curves(results: pd.DataFrame, folder: Path) -> Path:
    """The plan's p95 against workers per load (lines, 95% band) and the real pool's
    measured p95 at the checked sizes (points); first replication of each mix."""
    first = results[results["replication"] == results["replication"].min()]
    mixes = sorted(first["mix"].unique())
    figure, axes = plt.subplots(1, len(mixes), figsize=(5.5 * len(mixes), 3.8), squeeze=False)
    for ax, mix in zip(axes[0], mixes, strict=True):
        part = first[first["mix"] == mix]
        planned = part[part["backend"] == "plan"].pivot_table(
            index=["load", "workers"], columns="metric", values="value"
        )
        for load, curve in planned.groupby(level="load"):
            curve = curve.droplevel("load")
            curve = curve[np.isfinite(curve["p95_latency"])]
            line = ax.plot(curve.index, curve["p95_latency"], label=f"plan, load x{load:g}")[0]
            ax.fill_between(
                curve.index,
                curve["p95_latency_low"],
                curve["p95_latency_high"],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
            seen = part[
                (part["backend"] == "measured")
                & (part["metric"] == "p95_latency")
                & (part["load"] == load)
            ]
            ax.scatter(
                seen["workers"],
                seen["value"],
                color=line.get_color(),
                zorder=3,
                label=f"measured, load x{load:g}",
            )
        recorded = part[part["backend"] == "recorded"]
        ax.scatter(
            recorded["workers"],
            recorded["value"],
            marker="*",
            s=140,
            color="black",
            zorder=4,
            label="recorded pool (load x1)",
        )
        bound = part.loc[part["metric"] == "slo_p95_latency", "value"]
        if len(bound):
            ax.axhline(
                float(bound.iloc[0]), color="black", linestyle="--", linewidth=1, label="SLO"
            )
        ax.set_yscale("log")
        ax.set_xlabel("workers")
        ax.set_ylabel("p95 latency (s)")
        ax.set_title(mix)
        ax.legend(fontsize="x-small")
    figure.suptitle("The plan's curve (lines) and the real pool at the checked sizes (points)")
    return save(figure, folder / "plan_curves.png")
