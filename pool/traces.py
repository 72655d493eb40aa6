"""Workload traces on disk: one row per task, read and written as .csv or .parquet.

A trace holds the columns of :data:`pool.tasks.TRACE_COLUMNS`. ``arrival`` and
``service`` (seconds) are required; the others default to a task of priority 0, no
computing (``cpu_fraction`` 0), no preferred worker (``affinity`` -1) and, where it
computes, pure Python (``gil_share`` 1). A bad value is reported with its column and the
first row that holds it, so a user can find it in their file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pool.tasks import Workload

#: Optional columns and the value a task has when its trace lacks the column.
DEFAULTS: dict[str, tuple[float, type]] = {
    "priority": (0, np.int64),
    "cpu_fraction": (0.0, np.float64),
    "affinity": (-1, np.int64),
    "gil_share": (1.0, np.float64),
}


def write_trace(workload: Workload, path: str | os.PathLike[str]) -> None:
    """Write ``workload`` to ``path`` (.csv or .parquet); :func:`read_trace` reads it back."""
    target = Path(path)
    frame = workload.to_frame()
    if target.suffix == ".csv":
        frame.to_csv(target, index=False, float_format="%.17g")
    elif target.suffix in (".parquet", ".pq"):
        frame.to_parquet(target, index=False)
    else:
        raise ValueError(f"path must end in .csv or .parquet, got {str(path)!r}")


def read_trace(source: str | os.PathLike[str] | pd.DataFrame) -> Workload:
    """A workload from a DataFrame or a .csv / .parquet file, rows sorted by arrival."""
    from pool.tasks import Workload

    frame = _read_frame(source)
    missing = [name for name in ("arrival", "service") if name not in frame.columns]
    if missing:
        raise ValueError(f"trace is missing column(s) {missing}; it needs arrival and service")
    if len(frame) == 0:
        raise ValueError("trace must contain at least one task")
    columns = {name: _column(frame, name, None, np.float64) for name in ("arrival", "service")}
    for name, (default, dtype) in DEFAULTS.items():
        columns[name] = _column(frame, name, default, dtype)
    order = np.argsort(columns["arrival"], kind="stable")
    return Workload(**{name: values[order] for name, values in columns.items()})


def first_bad_row(column: str, bad: np.ndarray[Any, Any], values: np.ndarray[Any, Any]) -> str:
    """' (first at row R: V)' for the first True of ``bad``, to end an error message."""
    row = int(np.flatnonzero(bad)[0])
    return f" (first at row {row}: {column}={values[row].item()!r})"


def _column(frame: pd.DataFrame, name: str, default: float | None, dtype: type) -> Any:
    if name not in frame.columns:
        return np.full(len(frame), default, dtype=dtype)
    raw = frame[name]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    missing = raw.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(f"trace column {name} has a missing value at row {row}")
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"trace column {name} must hold finite numbers; row {row} holds {raw.iloc[row]}"
        )
    return values.astype(dtype)


def _read_frame(source: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True)
    if not isinstance(source, str | os.PathLike):
        raise ValueError(f"trace source must be a path or a DataFrame, got {source!r}")
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"trace file {str(path)!r} does not exist")
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as error:  # any parser failure is a malformed trace
        raise ValueError(f"trace file {str(path)!r} could not be read: {error}") from None
    raise ValueError(f"trace file must end in .csv or .parquet, got {str(path)!r}")
