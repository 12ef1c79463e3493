"""Real-CT training data: checked reading of every format, and the augmented multi-scale crops."""

import numpy as np
import pytest
import torch

from tomodiff.training.ct_data import VolumeDataError, Volume, intensity_jitter, load_volumes, random_slice_crop


def test_corpus_npz_is_scaled_and_keeps_its_spacing(tmp_path):
    vol = (np.arange(4 * 8 * 8).reshape(4, 8, 8) * 100).astype(np.uint16)
    np.savez(tmp_path / "c.npz", volume=vol, spacing_zyx=np.array([2.5, 1.0, 1.0], np.float32))
    (v,) = load_volumes(tmp_path / "c.npz")
    assert v.name == "c" and v.spacing == (2.5, 1.0, 1.0)
    np.testing.assert_allclose(v.data.numpy(), vol / 65535.0, rtol=1e-6)


def test_directory_of_npy_and_h5(tmp_path):
    import h5py

    np.save(tmp_path / "a.npy", np.full((3, 4, 5), 0.5, np.float32))
    with h5py.File(tmp_path / "b.h5", "w") as h:
        h["g/vol"] = np.zeros((2, 4, 4), np.float32)
        h["flat"] = np.zeros(4)
    vols = load_volumes(tmp_path)
    assert [v.shape for v in vols] == [(3, 4, 5), (2, 4, 4)]


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 4), np.float32), "expected a 3D"),
    (np.array([[["a"]]]), "not numeric"),
    (np.full((2, 2, 2), np.nan, np.float32), "NaN"),
    (np.full((2, 2, 2), 1200.0, np.float32), "far outside"),
])
def test_bad_volumes_name_the_file_and_the_problem(tmp_path, array, message):
    f = tmp_path / "bad.npy"
    np.save(f, array)
    with pytest.raises(VolumeDataError, match=message) as err:
        load_volumes(f)
    assert "bad.npy" in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        load_volumes(tmp_path / "missing.npy")
    with pytest.raises(FileNotFoundError, match="no volume files"):
        load_volumes(tmp_path)


def test_nifti_is_read_in_zyx_order(tmp_path):
    nib = pytest.importorskip("nibabel")
    a = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)  # NIfTI order (x, y, z)
    img = nib.Nifti1Image(a, np.diag([0.5, 0.6, 2.0, 1.0]))
    nib.save(img, tmp_path / "v.nii.gz")
    (v,) = load_volumes(tmp_path / "v.nii.gz")
    assert v.shape == (7, 6, 5) and v.spacing == pytest.approx((2.0, 0.6, 0.5))
    np.testing.assert_allclose(v.data.numpy(), a.transpose(2, 1, 0))


def test_planes_need_size_and_square_pixels():
    iso = Volume("iso", torch.zeros(70, 80, 90), (1.0, 1.0, 1.0))
    assert iso.planes(64) == [0, 1, 2]
    thick = Volume("thick", torch.zeros(70, 80, 90), (4.0, 1.0, 1.0))
    assert thick.planes(64) == [0]
    slab = Volume("slab", torch.zeros(10, 80, 90))
    assert slab.planes(64) == [0]


def test_crops_are_deterministic_and_rescaled():
    z = torch.linspace(0, 1, 128)
    vol = Volume("ramp", (z[:, None, None] * 0 + z[None, :, None] * 0.5 + z[None, None, :] * 0.5).contiguous())
    a = random_slice_crop(vol, 32, np.random.default_rng(3))
    b = random_slice_crop(vol, 32, np.random.default_rng(3))
    assert a.shape == (1, 32, 32) and torch.equal(a, b)
    # with a 4x region the ramp across a crop spans about 4x more intensity than with a 1x region
    spans = {}
    for s in (1.0, 4.0):
        crops = [random_slice_crop(vol, 32, np.random.default_rng(i), scale_range=(s, s), orient=False)
                 for i in range(8)]
        spans[s] = np.mean([float(c.max() - c.min()) for c in crops])
    assert spans[4.0] / spans[1.0] == pytest.approx(4.0, rel=0.1)


def test_too_small_volume_is_an_error():
    with pytest.raises(VolumeDataError, match="no plane"):
        random_slice_crop(Volume("tiny", torch.zeros(8, 16, 16)), 32, np.random.default_rng(0))


def test_intensity_jitter_scales_or_windows():
    x = torch.full((1, 4, 4), 0.5)
    outs = {round(float(intensity_jitter(x, np.random.default_rng(i)).mean()), 4) for i in range(40)}
    assert len(outs) > 10 and min(outs) >= 0.4 - 1e-6 and max(outs) <= 1.0
