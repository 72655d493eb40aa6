"""The explorer checked in a real browser: Voilà serves a notebook that opens
``sim.explore()``, headless Chromium loads it, and the page is saved as
``docs/explorer.png`` once the figure has been drawn.

Run from the repository root, once (neither tool is a dependency of poolbench)::

    apt-get install chromium                     # Debian's Chromium: /usr/bin/chromium
    .venv/bin/pip install voila playwright       # Playwright drives that Chromium
    .venv/bin/python docs/explorer_screenshot.py

Exit code 0 and the path written, or 1 with what went wrong.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "explorer.png"
CHROMIUM = "/usr/bin/chromium"
#: The explorer as the screenshot shows it: priority classes, a pinned run with 4
#: workers (dashed) and the current one with 5, and a crash now and then.
CELL = """import sim
from sim.explorer import Settings

explorer = sim.explore(Settings(policy="priority", load=0.8, crash_mtbf=30.0))
explorer.pin()
explorer.controls["workers"].value = 5
explorer"""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def notebook(folder: Path) -> Path:
    """A one-cell notebook that opens the explorer."""
    path = folder / "explorer.ipynb"
    cell = {"cell_type": "code", "execution_count": None, "id": "explorer", "metadata": {}}
    cell |= {"outputs": [], "source": CELL}
    document = {
        "cells": [cell],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(document))
    return path


def main() -> int:
    """Serve, load, wait for the figure, save."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as folder:
        page_file = notebook(Path(folder))
        server = subprocess.Popen(
            [sys.executable, "-m", "voila", str(page_file), "--no-browser", f"--port={port}"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(3.0)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1180, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                page.wait_for_selector("img.widget-image", timeout=120_000)
                page.wait_for_timeout(1000)  # the table and the image settle
                page.screenshot(path=str(OUT), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
