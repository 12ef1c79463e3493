"""Slab stores: the one checkpoint format (a directory of slab files tagged with the run's key)."""

import pytest
import torch

from tomodiff.recon.slab_store import DirectoryStore


def test_a_store_of_another_run_is_refused_naming_what_differs(tmp_path):
    store = DirectoryStore(tmp_path / "s", {"method": "pigdm", "steps": 4})
    store.put(0, torch.ones(1, 1, 1, 2, 3, 3), 7)
    assert store.has(0) and store.get(0)["nfe"] == 7
    assert torch.equal(store.get(0)["samples"], torch.ones(1, 1, 1, 2, 3, 3))
    assert DirectoryStore(tmp_path / "s", {"method": "pigdm", "steps": 4}).has(0)  # the same run resumes
    with pytest.raises(ValueError, match=r"other arguments or data \(differs in: steps\)"):
        DirectoryStore(tmp_path / "s", {"method": "pigdm", "steps": 8})
    store.remove()
    assert not (tmp_path / "s").exists()


def test_a_checkpoint_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file; checkpoints are directories"):
        DirectoryStore(tmp_path / "f", {})
