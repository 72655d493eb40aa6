"""The chart of a plan: the SLO metric against pool size, per policy, at each load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from experiments.charts import save


def plan_chart(answer: Any, path: Path) -> Path:
    """One panel per load: each policy's SLO metric (mean, 95% CI band) against workers,
    the SLO as a dashed line, and the recommended size ringed. Unstable sizes are left out."""
    metric, bound = next(iter(answer.slo.items()))
    loads = sorted(answer.table["load_scale"].unique())
    figure, axes = plt.subplots(
        1, len(loads), figsize=(4.2 * len(loads), 3.6), sharey=True, squeeze=False
    )
    chosen = answer.recommendation.set_index(["policy", "load_scale"])["workers"]
    for ax, scale in zip(axes[0], loads, strict=True):
        cells = answer.table[answer.table["load_scale"] == scale]
        for policy, rows in cells.groupby("policy", sort=True):
            rows = rows[np.isfinite(rows[metric])].sort_values("workers")
            line = ax.plot(rows["workers"], rows[metric], marker=".", label=policy)[0]
            ax.fill_between(
                rows["workers"],
                rows[f"{metric}_low"],
                rows[f"{metric}_high"],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
            size = chosen.get((policy, scale))
            if size is not None and not (isinstance(size, float) and math.isnan(size)):
                best = rows[rows["workers"] == size]
                ax.scatter(
                    best["workers"],
                    best[metric],
                    s=120,
                    facecolors="none",
                    edgecolors=line.get_color(),
                    linewidths=1.5,
                    zorder=3,
                )
        ax.axhline(bound, color="black", linestyle="--", linewidth=1, label=f"SLO {bound:g} s")
        ax.set_yscale("log")
        ax.set_xlabel("workers")
        ax.set_title(f"load x{scale:g}")
    axes[0][0].set_ylabel(f"{metric} (s), predicted")
    axes[0][-1].legend(fontsize="small")
    figure.suptitle("plan: smallest pool meeting the SLO (ringed)")
    figure.tight_layout()
    return save(figure, path)
