"""Writing experiment files atomically, and what goes into metadata.json."""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pandas as pd

from pool.overhead import Overhead

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("simpy", "numpy", "pandas", "pyarrow", "matplotlib", "scipy", "tqdm")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place, so a
    killed run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; results are not
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` encoded as a Parquet file, without its index."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` as Parquet, atomically."""
    write_bytes(parquet_bytes(frame), path)


def write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path``, atomically (for a file encoded elsewhere, e.g. a cell's
    Parquet file encoded by a Dask worker)."""
    atomic_write(path, lambda target: _write_bytes(target, data))


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` as CSV, atomically."""
    atomic_write(path, lambda target: frame.to_csv(target, index=False))


def write_json(data: dict[str, Any], path: Path) -> None:
    """Write ``data`` to ``path`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda target: _write_text(target, text + "\n"))


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def code_version() -> str:
    """A hash of the project's Python sources: results from other code are not reused."""
    digest = hashlib.sha1()
    for package in ("pool", "sim", "real", "experiments"):
        for source in sorted((ROOT / package).rglob("*.py")):
            digest.update(source.relative_to(ROOT).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def git_sha() -> str | None:
    """The checked-out commit, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def metadata(
    config: dict[str, Any],
    cells: list[dict[str, Any]],
    overhead: Overhead,
    version: str,
    charts: list[str],
) -> dict[str, Any]:
    """Everything needed to know how a result folder was made."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "config": config,
        "cells": cells,
        "calibration": overhead.as_dict(),
        "code_version": version,
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "packages": versions,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "host": platform.node(),
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "charts": charts,
    }
