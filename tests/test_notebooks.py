"""Execute the notebooks (01 and 03, small sizes) with nbclient; each must run without error.

They need the shipped 2D prior ``slice-64`` and the ``nbclient`` / ``ipykernel`` packages; skipped,
saying which, when either is missing. ``TOMODIFF_TEST_PRIOR=/path/to/prior.pt`` runs them against
another prior file (passed to the notebooks as ``TOMODIFF_PRIOR``). The committed notebooks must
carry no outputs (they are written by ``notebooks/build_notebooks.py``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FILES = ["01_image_tasks.ipynb", "03_custom_guidance.ipynb"]
PRIOR = os.environ.get("TOMODIFF_TEST_PRIOR", "slice-64")


def _prior_available() -> bool:
    if PRIOR.endswith(".pt"):
        return os.path.isfile(PRIOR)
    from tomodiff.priors import available

    return PRIOR in available()


@pytest.mark.parametrize("name", FILES)
def test_committed_notebook_has_no_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name}: strip the outputs"


@pytest.mark.parametrize("name", FILES)
def test_notebook_executes(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="install nbformat (dev extra) to execute notebooks")
    nbclient = pytest.importorskip("nbclient", reason="install nbclient (dev extra) to execute notebooks")
    pytest.importorskip("ipykernel", reason="install ipykernel to execute notebooks")
    if not _prior_available():
        pytest.skip(f"the 2D prior {PRIOR!r} is not installed (tomodiff/priors/weights/slice-64.pt ships with "
                    "the trained prior; TOMODIFF_TEST_PRIOR=/path/to/prior.pt tests another file)")
    if PRIOR.endswith(".pt"):
        monkeypatch.setenv("TOMODIFF_PRIOR", os.path.abspath(PRIOR))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert seconds < 90, f"{name} took {seconds:.0f} s; keep notebooks small"
