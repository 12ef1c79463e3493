"""Execute the notebooks (01–05, small sizes) with nbclient; each must run without error.

They need the shipped 2D prior ``slice-64`` and the ``nbclient`` / ``ipykernel`` packages; skipped,
saying which, when either is missing. ``TOMODIFF_TEST_PRIOR=/path/to/prior.pt`` runs them against
another prior file (passed to the notebooks as ``TOMODIFF_PRIOR``). Notebook 04 also needs the
Diamond I13 scan (``diamond_i13_24737/24737_raw.npz`` under ``$TOMODIFF_SHARED_DATA``, else
``../shared/data`` beside the repository) and is skipped without it.

Each notebook is a jupytext pair: the percent-format ``.py`` (the file to edit and review) and the
``.ipynb`` that ``jupytext --sync notebooks/*.py`` writes from it. The pairs must be in sync and the
committed ``.ipynb`` must carry no outputs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FILES = ["01_image_tasks.ipynb", "02_sparse_view_ct_3d.ipynb", "03_custom_guidance.ipynb",
         "04_real_data_diamond_i13.ipynb", "05_volume_rendering.ipynb"]
PRIOR = os.environ.get("TOMODIFF_TEST_PRIOR", "slice-64")
# real data used by a notebook: file name -> path relative to the shared data folder
NEEDS_DATA = {"04_real_data_diamond_i13.ipynb": "diamond_i13_24737/24737_raw.npz"}


def _shared_data() -> Path:
    """The shared data folder, as the notebooks find it ($TOMODIFF_SHARED_DATA or ../../shared/data)."""
    return Path(os.environ.get("TOMODIFF_SHARED_DATA", NOTEBOOKS.parents[1] / "shared" / "data"))


def _prior_available() -> bool:
    if PRIOR.endswith(".pt"):
        return os.path.isfile(PRIOR)
    from tomodiff.priors import available

    return PRIOR in available()


def test_every_notebook_is_a_jupytext_pair():
    ipynb = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    scripts = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
    assert ipynb == scripts == sorted(Path(f).stem for f in FILES), "each notebook needs its .py and .ipynb"


@pytest.mark.parametrize("name", FILES)
def test_pair_is_in_sync(name):
    jupytext = pytest.importorskip("jupytext", reason="install jupytext (dev extra) to check the notebook pairs")
    nb = json.loads((NOTEBOOKS / name).read_text())
    assert nb["metadata"].get("jupytext", {}).get("formats") == "ipynb,py:percent", f"{name}: not paired"
    script = NOTEBOOKS / name.replace(".ipynb", ".py")
    text = jupytext.read(script, fmt="py:percent")
    cells = [(c["cell_type"], "".join(c["source"])) for c in nb["cells"]]
    expected = [(c.cell_type, c.source) for c in text.cells]
    for i, (got, want) in enumerate(zip(cells, expected)):
        assert got == want, (f"{name} cell {i} differs from {script.name}: run "
                             f"`jupytext --sync notebooks/{script.name}` and commit both")
    assert len(cells) == len(expected), f"{name}: {len(cells)} cells, {script.name}: {len(expected)}; run jupytext --sync"


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
    if name in NEEDS_DATA and not (_shared_data() / NEEDS_DATA[name]).is_file():
        pytest.skip(f"{name} needs {_shared_data() / NEEDS_DATA[name]} (set TOMODIFF_SHARED_DATA to the folder "
                    "that holds it)")
    if PRIOR.endswith(".pt"):
        monkeypatch.setenv("TOMODIFF_PRIOR", os.path.abspath(PRIOR))
    if "TOMODIFF_SHARED_DATA" in os.environ:  # a relative path must not depend on the kernel's working dir
        monkeypatch.setenv("TOMODIFF_SHARED_DATA", os.path.abspath(os.environ["TOMODIFF_SHARED_DATA"]))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert seconds < 90, f"{name} took {seconds:.0f} s; keep notebooks small"
