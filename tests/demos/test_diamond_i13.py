"""The measured Diamond I13 scan as a sparse-view problem (needs shared/data)."""

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector
from tomodiff.demos import diamond_i13
from tomodiff.recon import psnr


@pytest.fixture(scope="module")
def scan(shared_data):
    return diamond_i13.load(shared_data / diamond_i13.RELATIVE_PATH)


def test_problem_shapes_and_sparse_angles(scan):
    assert scan.y.shape == (1, 1, 91, diamond_i13.N_ROWS, 160) and scan.y.dtype == torch.float32
    assert scan.geometry.volume_shape == (diamond_i13.N_ROWS, 64, 64)
    y8, g8 = scan.sparse(8)
    assert g8.n_angles == 12 and y8.shape[2] == 12
    assert np.allclose(g8.angles, scan.geometry.angles[::8])


def test_reference_and_prior_scaling(scan):
    ref = scan.reference(n_iter=50)
    assert ref.shape == (diamond_i13.N_ROWS, 64, 64) and float(ref.min()) >= 0
    y, g = scan.sparse(4)
    s, sigma_y = diamond_i13.prior_scaling(Projector(g), y)
    # the scale comes from the sparse scan alone but lands near the full-angle reference's top values
    assert 0.7 < s / float(torch.quantile(ref.flatten(), 0.999)) < 1.3
    # air noise is a small fraction of the sample's line integrals, and not zero
    assert 0 < sigma_y < 0.05 * float(y.max())


def test_sparse_sirt_is_closer_to_the_reference_than_sparse_fbp(scan):
    from tomodiff.recon import fbp, sirt

    ref = scan.reference(n_iter=50).numpy()
    y, g = scan.sparse(8)
    A = Projector(g)
    p_fbp = psnr(fbp(A, y)[0, 0].numpy(), ref, data_range=float(ref.max()))
    p_sirt = psnr(sirt(A, y, n_iter=50, nonneg=True, progress=False)[0, 0].numpy(), ref, data_range=float(ref.max()))
    assert p_sirt > p_fbp + 3


def test_missing_file_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TOMODIFF_SHARED_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="TOMODIFF_SHARED_DATA"):
        diamond_i13.find_raw()


def test_rows_outside_the_detector(shared_data):
    with pytest.raises(ValueError, match="outside the detector"):
        diamond_i13.load(shared_data / diamond_i13.RELATIVE_PATH, row0=130, n_rows=8)
