"""napari plugin: reader, writer, manifest, ``tomodiff view``, and a 3D screenshot.

Runs headless under ``xvfb-run -a`` (see .ci/run); skipped where napari is not installed.
"""

import os

import numpy as np
import pytest

from tomodiff.io import ProjectData, read_project, write_project

napari = pytest.importorskip("napari")

if not os.environ.get("DISPLAY"):
    pytest.skip("no X display: run the suite under xvfb-run -a", allow_module_level=True)


def _ball(n=24):
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    r = np.sqrt(x**2 + y**2 + z**2)
    return ((r < n / 3).astype(np.float32) + 0.5 * (r < n / 6)).astype(np.float32)


@pytest.fixture
def project(tmp_path):
    ref = _ball()
    rng = np.random.default_rng(0)
    samples = ref[None] + 0.05 * rng.standard_normal((3, *ref.shape), dtype=np.float32)
    data = ProjectData(sinogram=rng.random((8, 24, 30), dtype=np.float32),
                       geometry={"kind": "parallel", "angles": list(np.linspace(0, np.pi, 8, endpoint=False)),
                                 "voxel_size": 0.5},
                       reference=ref,
                       reconstruction={"mean": samples.mean(0), "std": samples.std(0), "samples": samples},
                       provenance={"method": "pigdm"})
    return write_project(tmp_path / "recon.h5", data)


def test_reader_gives_named_layers_with_scale(project):
    from tomodiff.napari.reader import get_reader

    reader = get_reader(str(project))
    assert callable(reader)
    layers = {kw["name"]: (data, kw) for data, kw, kind in reader(str(project))}
    assert set(layers) == {"recon: reference", "recon: pigdm mean", "recon: |mean − reference|",
                           "recon: std over 3 samples", "recon: samples", "recon: sinogram"}
    assert layers["recon: pigdm mean"][1]["scale"] == (0.5, 0.5, 0.5)
    assert layers["recon: samples"][0].shape == (3, 24, 24, 24)
    std = layers["recon: std over 3 samples"][1]
    assert std["colormap"] == "magma" and std["blending"] == "additive" and std["metadata"]["n_samples"] == 3
    assert layers["recon: pigdm mean"][1]["metadata"]["data_consistency"] is None  # not in this file


def test_reader_says_whether_the_std_is_calibrated(tmp_path):
    from tomodiff.napari.layers import project_layers
    from tomodiff.napari.uncertainty import calibration_text
    from tomodiff.recon.calibration import lookup

    raw = np.full((4, 6, 6), 0.1, np.float32)
    _, calibrated = lookup("auto", "ct-slice", views=8, n_samples=3)
    _, uncalibrated = lookup("pigdm", "slice-64", views=8, n_samples=3)
    for name, record in (("cal", calibrated), ("raw", uncalibrated)):
        write_project(tmp_path / f"{name}.h5", ProjectData(
            reconstruction={"mean": raw, "std": record["k"] * raw, "std_raw": raw},
            provenance={"method": "dds", "n_samples": 3, "calibration": record}))
    layers = {kw["name"]: (data, kw) for data, kw, _ in project_layers(tmp_path / "cal.h5")}
    label = f"cal: std over 3 samples (calibrated ×{calibrated['k']:.2f})"
    assert set(layers) == {"cal: dds mean", label, "cal: raw std over 3 samples"}
    np.testing.assert_allclose(layers[label][0], calibrated["k"] * layers["cal: raw std over 3 samples"][0])
    meta = layers[label][1]["metadata"]
    assert meta["calibration"]["calibrated"] and calibration_text(meta["calibration"]).startswith("std: calibrated, k ")
    layers = {kw["name"]: kw for _, kw, _ in project_layers(tmp_path / "raw.h5")}
    assert set(layers) == {"raw: dds mean", "raw: std over 3 samples (raw, not calibrated)"}  # no second, equal std
    assert calibration_text(layers["raw: std over 3 samples (raw, not calibrated)"]["metadata"]["calibration"]) == \
        "std: raw sample spread, not calibrated for pigdm with slice-64"


def test_reader_opens_a_tiff_scan_folder(tmp_path):
    from tomodiff.ct import Geometry
    from tomodiff.io.tiff_stack import write_tiff_stack
    from tomodiff.napari.reader import get_reader

    rng = np.random.default_rng(0)
    counts = rng.integers(500, 900, (6, 3, 10)).astype(np.uint16)
    write_tiff_stack(tmp_path / "scan" / "proj", counts)
    write_tiff_stack(tmp_path / "scan" / "flat", np.full((2, 3, 10), 1000, np.uint16))
    write_tiff_stack(tmp_path / "scan" / "dark", np.full((1, 3, 10), 20, np.uint16))
    (tmp_path / "scan" / "angles.txt").write_text("0 30 60 90 120 150\n")
    assert get_reader(str(tmp_path / "scan" / "proj")) is None  # no angles: not a scan folder
    reader = get_reader(str(tmp_path / "scan"))
    (data, kwargs, kind), = reader(str(tmp_path / "scan"))
    assert kind == "image" and data.shape == (6, 3, 10) and kwargs["name"] == "scan: projections (−log)"
    geometry = Geometry.from_dict(kwargs["metadata"]["geometry"])
    assert geometry.n_angles == 6 and geometry.sino_shape == data.shape
    assert np.allclose(np.rad2deg(kwargs["metadata"]["angles_rad"]), [0, 30, 60, 90, 120, 150])
    np.testing.assert_allclose(data, -np.log((counts - 20.0) / (1000 - 20)), rtol=1e-5)
    from tomodiff.napari.view import build_viewer  # `tomodiff view scan/` too

    viewer = build_viewer([tmp_path / "scan"], show=False)
    try:
        assert [layer.name for layer in viewer.layers] == ["scan: projections (−log)"]
    finally:
        viewer.close()


def test_reader_declines_what_it_cannot_read(tmp_path):
    import h5py

    from tomodiff.napari.reader import get_reader

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.ones(3)
    (tmp_path / "text.h5").write_text("not hdf5")
    assert get_reader(str(other)) is None
    assert get_reader(str(tmp_path / "text.h5")) is None
    assert get_reader(str(tmp_path / "missing.h5")) is None


def test_reader_opens_a_dxchange_scan(shared_data):
    from tomodiff.napari.reader import get_reader

    path = str(shared_data / "aps_tooth" / "tooth.h5")
    (data, kwargs, kind), = get_reader(path)(path)
    assert data.shape == (181, 2, 640) and kind == "image" and len(kwargs["metadata"]["angles_rad"]) == 181


def test_writer_round_trip_keeps_the_rest_of_the_file(project, tmp_path):
    from tomodiff.napari.writer import write_reconstruction

    new = np.full((24, 24, 24), 0.25, np.float32)
    assert write_reconstruction(str(project), new, {"name": "edited"}) == [str(project)]
    back = read_project(project)
    np.testing.assert_array_equal(back.reconstruction["mean"], new)
    assert back.reference is not None and back.provenance["method"] == "pigdm"
    assert back.provenance["layer"] == "edited"
    fresh = tmp_path / "fresh.h5"
    write_reconstruction(str(fresh), new[0], {"name": "slice"})
    assert read_project(fresh).reconstruction["mean"].shape == (24, 24)


def test_manifest_is_valid_and_registered():
    from npe2 import PluginManifest

    mf = PluginManifest.from_distribution("tomodiff")
    assert {r.command for r in mf.contributions.readers} == {"tomodiff.get_reader"}
    assert {w.command for w in mf.contributions.writers} == {"tomodiff.write_reconstruction"}
    assert {s.key for s in mf.contributions.sample_data} == {"phantom", "sparse_view"}
    assert [w.command for w in mf.contributions.widgets] == ["tomodiff.reconstruction_widget"]
    assert all(r.accepts_directories for r in mf.contributions.readers)  # TIFF scan folders


def test_view_builds_the_expected_layers_in_grid(project, tmp_path):
    from tomodiff.napari.view import build_viewer

    other = write_project(tmp_path / "second.h5", ProjectData(reconstruction={"mean": _ball()},
                                                              provenance={"method": "fbp"}))
    viewer = build_viewer([project, other], show=False)
    try:
        names = [layer.name for layer in viewer.layers]
        assert "recon: pigdm mean" in names and "second: fbp mean" in names
        assert "recon: |mean − reference|" in names
        assert viewer.grid.enabled
    finally:
        viewer.close()
    with pytest.raises(FileNotFoundError):
        build_viewer([tmp_path / "missing.h5"], show=False)


def test_3d_screenshot_of_a_sparse_view_reconstruction(tmp_path):
    """``tomodiff view`` of the sample data in 3D: phantom | 16-view FBP side by side, cut open by a
    clipping plane, attenuated MIP. Saved to $TOMODIFF_SCREENSHOT_DIR for the README when set."""
    from tomodiff.napari import sample_data
    from tomodiff.napari.view import build_viewer

    (phantom, _, _), = sample_data.phantom()
    (_, sino_kw, _), (fbp, _, _) = sample_data.sparse_view_reconstruction()
    # no sinogram in the file: the grid then has exactly two cells
    path = write_project(tmp_path / "sparse16.h5", ProjectData(
        geometry=sino_kw["metadata"]["geometry"], reference=phantom, reconstruction={"mean": fbp},
        provenance={"method": "fbp"}))
    viewer = build_viewer([path], grid=True, ndisplay=3, show=True, error_map=False)
    try:
        viewer.window.resize(1000, 560)
        assert [layer.name for layer in viewer.layers] == ["sparse16: reference", "sparse16: fbp mean"]
        for layer in viewer.layers:
            assert tuple(layer.scale) == (sample_data.VOXEL_SIZE,) * 3
            centre = np.mean(layer.extent.world, axis=0)  # clipping planes live in world coordinates
            layer.rendering, layer.attenuation, layer.contrast_limits = "attenuated_mip", 0.3, (0.0, 0.6)
            layer.experimental_clipping_planes = [{"position": tuple(centre), "normal": (0, 1, 0), "enabled": True}]
        viewer.reset_view()
        viewer.camera.angles = (20, 35, 70)
        shot = viewer.screenshot(canvas_only=True, flash=False)
    finally:
        viewer.close()
    from skimage.io import imsave

    imsave(tmp_path / "render3d.png", shot)
    gray = shot[..., :3].mean(-1)
    assert shot.ndim == 3 and gray.std() > 5, "screenshot is blank"
    half = gray.shape[1] // 2
    for side in (gray[:, :half], gray[:, half:]):  # the phantom and the reconstruction both rendered
        assert (side > 50).mean() > 0.01
    out = os.environ.get("TOMODIFF_SCREENSHOT_DIR")
    if out:  # keep a copy (the README image)
        os.makedirs(out, exist_ok=True)
        imsave(os.path.join(out, "napari_render3d.png"), shot)
