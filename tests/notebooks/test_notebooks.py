"""Execute every notebook in notebooks/ and check what it really shows.

Each notebook runs top to bottom in a fresh ``python3`` kernel (jupyter_client starts
the native kernel with this interpreter) in a temporary working directory. A test
checks that no cell failed, that images were shown, and that cells tagged with
``metadata.lightflow_test`` show PNGs of the stated size (``png_size: [w, h]``) or a
widget (``widget: true``). Another test checks the notebooks are stored with cleared
outputs. The execution times are printed (``pytest -s``) and their total checked
against the 10-minute limit of issue 7.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
TOTAL_LIMIT_S = 600.0
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PREFIX_CHECK = "import sys; print('KERNEL_PREFIX=' + sys.prefix)"

TIMES: dict[str, float] = {}


def _kernel_env() -> dict[str, str]:
    """The kernel's environment: this checkout importable, one thread per op by default."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _pngs(cell: nbformat.NotebookNode) -> list[Image.Image]:
    images = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if "image/png" in data:
            images.append(Image.open(io.BytesIO(base64.b64decode(data["image/png"]))))
    return images


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.fixture(scope="module", autouse=True)
def report_times():
    yield
    if TIMES:
        print("\nnotebook execution times:")
        for name, seconds in TIMES.items():
            print(f"  {name:40} {seconds:6.1f} s")
        print(f"  {'total':40} {sum(TIMES.values()):6.1f} s")


def test_there_are_notebooks() -> None:
    assert PATHS, f"no notebooks found in {NOTEBOOKS}"


def test_notebooks_are_stored_without_outputs() -> None:
    for path in PATHS:
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
                 and (cell.outputs or cell.execution_count is not None)]
        assert not dirty, f"{path.name}: clear the outputs of cells {dirty}"
        assert "widgets" not in nb.metadata, f"{path.name}: stored widget state; clear it"


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PREFIX_CHECK))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute(env=_kernel_env())
    TIMES[path.name] = time.perf_counter() - started

    # the kernel ran on this interpreter's environment (the venv), not another python
    prefix_cell = nb.cells.pop()
    assert f"KERNEL_PREFIX={sys.prefix}" in _text(prefix_cell), _text(prefix_cell)

    errors = [o for cell in nb.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"

    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code_cells), "a cell did not run"
    assert any(_pngs(cell) for cell in code_cells), f"{path.name} shows no image"

    checked = 0
    for i, cell in enumerate(nb.cells):
        expect = cell.metadata.get("lightflow_test")
        if not expect:
            continue
        checked += 1
        where = f"{path.name}, cell {i}"
        if "png_size" in expect:
            images = _pngs(cell)
            assert images, f"{where}: no image/png output"
            for image in images:
                assert list(image.size) == list(expect["png_size"]), (
                    f"{where}: image is {image.size}, expected {tuple(expect['png_size'])}")
                extrema = image.convert("L").getextrema()
                assert extrema[0] != extrema[1], f"{where}: the image is one flat colour"
        if expect.get("widget"):
            outputs = cell.get("outputs", [])
            assert any(WIDGET_MIME in o.get("data", {}) for o in outputs), (
                f"{where}: no widget output")
    assert checked, f"{path.name}: no cell is tagged with metadata.lightflow_test"


def test_total_time_within_limit() -> None:
    """Runs after the notebooks (file order); meaningful when all of them ran."""
    if len(TIMES) < len(PATHS):
        pytest.skip("not every notebook ran in this session")
    total = sum(TIMES.values())
    assert total < TOTAL_LIMIT_S, f"notebooks took {total:.0f} s together (limit 600 s)"
