"""The notebooks run headless, top to bottom, in a kernel of this very interpreter, and are
committed without outputs.

Each notebook is executed in memory with nbclient (never written back). The kernel is a
``python3`` kernelspec written into a temporary JUPYTER_PATH whose argv is
``sys.executable``, so the notebooks import the poolbench of this checkout and not whatever
a user-level kernelspec points at. Parameters are overridden the way papermill does it: a
cell inserted after the cell tagged ``parameters``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = (
    "01_explore_policies.ipynb",
    "02_predicted_vs_measured.ipynb",
    "03_failure_recovery.ipynb",
    "04_plan_your_pool.ipynb",
)
CELL_TIMEOUT = 120  # seconds per cell
PROBE = "import sys\nprint(sys.prefix)\nprint(sys.executable)"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A ``python3`` kernelspec running this interpreter, first on JUPYTER_PATH; runtime
    files and IPython's history go to temporary folders too."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "data" / "kernels" / "python3"
    spec.mkdir(parents=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (poolbench tests)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root / "data"))
        patch.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        patch.setenv("IPYTHONDIR", str(root / "ipython"))
        patch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws figures
        yield


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _execute(name: str, **parameters: object) -> nbformat.NotebookNode:
    """Run notebook ``name`` with ``parameters`` overridden; return it with its outputs."""
    notebook = _read(name)
    cells = notebook.cells
    index = next(i for i, cell in enumerate(cells) if "parameters" in cell.metadata.get("tags", []))
    if parameters:
        source = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
        injected = nbformat.v4.new_code_cell(source)
        injected.metadata["tags"] = ["injected-parameters"]
        cells.insert(index + 1, injected)
    cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    return [output for cell in code for output in cell.outputs]


def _check_ran(notebook: nbformat.NotebookNode, min_images: int) -> None:
    """No error output, the figures drawn, and the kernel was this interpreter."""
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= min_images
    probe = notebook.cells[-1].outputs
    lines = "".join(o.text for o in probe if o.output_type == "stream").splitlines()
    assert lines[0] == sys.prefix, f"the kernel ran {lines[1]}, not {sys.executable}"


def _stream_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in _outputs(notebook) if o.output_type == "stream")


# ----------------------------------------------------------------------------- committed


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_stripped_and_valid(name: str) -> None:
    notebook = _read(name)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.cells[0].cell_type == "markdown"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    for cell in code:
        assert cell.outputs == [], f"{name}: a code cell carries outputs"
        assert cell.execution_count is None, f"{name}: a code cell has an execution count"


# ----------------------------------------------------------------------------- execution


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_env")
def test_explore_policies_runs() -> None:
    notebook = _execute("01_explore_policies.ipynb")
    _check_ran(notebook, min_images=4)
    # It opens with the explorer: its app is the output of the cell after the parameters.
    explorer = notebook.cells[3]
    assert "sim.explore(" in explorer.source
    views = [
        o
        for o in explorer.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(views) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_env")
def test_predicted_vs_measured_runs_its_tiny_grid(tmp_path: Path) -> None:
    notebook = _execute("02_predicted_vs_measured.ipynb", RESULTS_DIR=str(tmp_path / "none"))
    _check_ran(notebook, min_images=2)
    assert "running 2 short cells here" in _stream_text(notebook)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_env")
def test_predicted_vs_measured_reads_saved_results(tmp_path: Path) -> None:
    from experiments import predicted_vs_measured as pvm
    from experiments.framework import run_experiment

    cell = {"policy": "fifo", "load": 0.5, "workers": 2, "service": "exponential", "seconds": 1.0}
    tiny = dataclasses.replace(pvm.EXPERIMENT, grid=lambda quick: [cell])
    folder = run_experiment(tiny, tmp_path, quick=True, seed=0, reps=1, progress=False)
    notebook = _execute("02_predicted_vs_measured.ipynb", RESULTS_DIR=str(folder))
    _check_ran(notebook, min_images=2)
    assert "Saved results from" in _stream_text(notebook)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_env")
def test_failure_recovery_runs() -> None:
    notebook = _execute("03_failure_recovery.ipynb")
    _check_ran(notebook, min_images=1)


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_env")
def test_plan_your_pool_runs_the_whole_loop() -> None:
    notebook = _execute("04_plan_your_pool.ipynb")
    _check_ran(notebook, min_images=1)
    check = next(cell for cell in notebook.cells if "checks.append" in cell.source)
    assert any("measured_p95" in o.get("data", {}).get("text/html", "") for o in check.outputs)
