"""napari sample data and the reconstruction widget, headless (run under ``xvfb-run -a``).

The widget runs real (tiny) reconstructions in napari worker threads: a 16³ phantom seen from 8
parallel-beam views. Diffusion runs use an exact analytic denoiser (the posterior mean under a
standard normal prior), so they need no trained weights.
"""

import os
import time

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

if not os.environ.get("DISPLAY"):
    pytest.skip("no X display: run the suite under xvfb-run -a", allow_module_level=True)

VOXEL = 0.5
TIMEOUT_MS = 30_000


def gaussian_denoiser(x, sigma):
    """E[x0 | x0 + σn = x] for x0 ~ N(0, I): an exact denoiser, no weights needed."""
    from tomodiff.priors import batch_sigma

    return x / (1 + batch_sigma(sigma, x) ** 2)


@pytest.fixture(scope="module")
def problem():
    """A 16³ Shepp–Logan phantom and its 8-view sinogram as a sinogram layer tuple."""
    from tomodiff import phantoms
    from tomodiff.ct.simulate import simulate_scan
    from tomodiff.napari.layers import sinogram_layer

    vol = phantoms.generate("shepp_logan", (16, 16, 16), 3)
    y, geometry, sigma_y = simulate_scan(vol, views=8, noise=0.01, seed=1, voxel_size=VOXEL)
    layer = sinogram_layer(y[0, 0].numpy(), geometry.to_dict(), sigma_y, name="tiny: sinogram")
    return vol.numpy(), layer


@pytest.fixture
def viewer(qtbot):
    v = napari.Viewer(show=False)
    yield v
    v.close()


@pytest.fixture
def widget(viewer, problem, qtbot):
    from tomodiff.napari.widget import ReconstructionWidget

    data, kwargs, _ = problem[1]
    viewer.add_image(data, **kwargs)
    w = ReconstructionWidget(viewer)
    viewer.window.add_dock_widget(w, name="tomodiff")
    yield w
    if w.worker is not None:  # never leave a thread running behind a closed viewer
        w.cancel()
        _wait(qtbot, w)


def _wait(qtbot, widget):
    """Run the Qt event loop until the widget's worker has finished and its signals are delivered."""
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)


def _names(viewer):
    return [layer.name for layer in viewer.layers]


def _rel_error(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_sample_data_gives_phantom_and_sparse_view_reconstruction(viewer):
    from tomodiff.ct import Geometry

    viewer.open_sample("tomodiff", "phantom")
    viewer.open_sample("tomodiff", "sparse_view")
    layers = {layer.name: layer for layer in viewer.layers}
    assert set(layers) == {"shepp_logan_64_a: phantom", "shepp_logan_64_a: 16-view sinogram",
                           "shepp_logan_64_a: fbp (16 views) mean"}
    phantom, fbp = layers["shepp_logan_64_a: phantom"], layers["shepp_logan_64_a: fbp (16 views) mean"]
    sino = layers["shepp_logan_64_a: 16-view sinogram"]
    assert phantom.data.shape == fbp.data.shape == (64, 64, 64)
    assert tuple(phantom.scale) == tuple(fbp.scale) == (0.5, 0.5, 0.5)
    assert tuple(fbp.contrast_limits) == (0.0, 1.0) and phantom.colormap.name == "gray"
    assert not sino.visible and sino.data.shape == (16, 64, 91)
    geometry = Geometry.from_dict(sino.metadata["geometry"])
    assert geometry.n_angles == 16 and geometry.voxel_size == 0.5 and sino.metadata["sigma_y"] > 0
    # a sparse-view reconstruction of that phantom: close to it, though not equal
    err = _rel_error(np.asarray(fbp.data), np.asarray(phantom.data))
    assert 0.05 < err < 0.6


def test_widget_opens_from_the_plugin_menu_on_the_sample_sinogram(viewer):
    from tomodiff.napari.widget import ReconstructionWidget

    viewer.open_sample("tomodiff", "sparse_view")
    _, w = viewer.window.add_plugin_dock_widget("tomodiff", "Reconstruct")
    assert isinstance(w, ReconstructionWidget)
    assert w.source.value.name == "shepp_logan_64_a: 16-view sinogram"  # ready to reconstruct again
    w.method.value = "fbp"
    assert not w.steps.enabled and not w.prior.enabled
    w.method.value = "pigdm"
    assert w.steps.enabled and w.prior.enabled and w.n_samples.enabled


def test_widget_lists_only_layers_with_geometry(widget, viewer):
    viewer.add_image(np.zeros((8, 8)), name="plain image")
    offered = [c.name for c in widget.source.choices if c is not None]
    assert offered == ["tiny: sinogram"] and widget.source.value.name == "tiny: sinogram"


def test_widget_runs_sirt_to_completion(widget, viewer, problem, qtbot):
    phantom = problem[0]
    widget.method.value, widget.steps.value = "sirt", 20
    widget.run_button.clicked.emit()
    assert widget.worker is not None and not widget.run_button.enabled
    _wait(qtbot, widget)
    assert "sirt: done" in widget.status.value
    assert _names(viewer) == ["tiny: sinogram", "tiny: sirt mean"]
    mean = viewer.layers["tiny: sirt mean"]
    assert mean.data.shape == (16, 16, 16) and tuple(mean.scale) == (VOXEL,) * 3
    assert mean.metadata["method"] == "sirt" and mean.metadata["geometry"]["voxel_size"] == VOXEL
    assert _rel_error(np.asarray(mean.data), phantom) < 0.6
    assert widget.progress.max == 20 and widget.progress.value == 20  # one report per iteration
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_widget_diffusion_run_adds_mean_and_std(widget, viewer, qtbot):
    widget.load_prior = lambda name, device=None: gaussian_denoiser
    widget.method.value, widget.steps.value, widget.n_samples.value = "pigdm", 4, 2
    widget.start()
    _wait(qtbot, widget)
    name = "tiny: pigdm (ct-slice)"  # the default prior's name labels the layers
    label = "std over 2 samples (raw, not calibrated)"  # a plain denoiser, 4 steps: no table entry
    assert _names(viewer)[1:] == [f"{name} mean", f"{name} {label}"], widget.status.value
    std = viewer.layers[f"{name} {label}"]
    assert std.colormap.name == "magma" and float(np.asarray(std.data).max()) > 0
    assert std.visible and std.blending == "additive"  # a coloured overlay on the mean
    assert tuple(std.scale) == (VOXEL,) * 3 and std.metadata["n_samples"] == 2
    assert std.metadata["calibration"]["calibrated"] is False
    assert widget.progress.max == 4  # one slab of 16 slices, 4 steps
    assert label in widget.status.value
    # the new layer is selected: the widget describes it, and says the std is not calibrated
    assert widget.samples_info.value == ("tiny: std over 2 samples (posterior samples); std: raw sample spread, "
                                         "not calibrated for pigdm (steps=4) with this prior")
    dc = viewer.layers[f"{name} mean"].metadata["data_consistency"]
    if dc is None:  # a reconstruct() that does not record χ² per view (read defensively)
        assert widget.chi2.value.endswith("not recorded for this reconstruction") and widget.chi2_plot.values == []
    else:
        assert len(dc["chi2_per_view"]) == 8 and widget.chi2_plot.values == dc["chi2_per_view"]
        assert widget.chi2.value.startswith(f"χ²/m {dc['chi2_per_m']:.3g} over 8 views")
    # the overlay switch hides and shows the std
    widget.std_overlay.value = False
    assert not std.visible
    widget.std_overlay.value = True
    assert std.visible and std.blending == "additive"


def test_widget_shows_chi2_per_view_of_the_selected_reconstruction(widget, viewer):
    dc = {"chi2_per_m": 1.5, "chi2_per_view": [0.9, 1.1, 3.0, 1.0], "sigma_y": 0.02}
    viewer.add_image(np.zeros((4, 4, 4)), name="file: pigdm mean",
                     metadata={"kind": "mean", "n_samples": 8, "data_consistency": dc})
    assert widget.chi2.value == "χ²/m 1.5 over 4 views (σ_y 0.02); worst view 2: 3"
    assert widget.chi2_plot.values == [0.9, 1.1, 3.0, 1.0]
    assert widget.samples_info.value == ("file: std over 8 samples (posterior samples); "
                                         "std: calibration not recorded (raw sample spread?)")
    viewer.add_image(np.zeros((4, 4)), name="plain")  # not a reconstruction: the last one stays shown
    assert widget.chi2_plot.values == [0.9, 1.1, 3.0, 1.0]
    viewer.add_image(np.zeros((4, 4, 4)), name="old: fbp mean",
                     metadata={"kind": "mean", "n_samples": None, "data_consistency": {"chi2_per_view": "bad"}})
    assert widget.chi2.value == "χ² per view: not recorded for this reconstruction"
    assert widget.chi2_plot.values == [] and widget.samples_info.value == "old: no std (a single estimate)"


def test_cancel_stops_the_run_and_leaves_the_viewer_usable(widget, viewer, problem, tmp_path, qtbot):
    from tomodiff.io import ProjectData, write_project

    widget.method.value, widget.steps.value = "sirt", 100_000  # minutes if not cancelled
    widget.start()
    qtbot.waitUntil(lambda: widget.progress.value >= 2 or widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.worker is not None and widget.progress.value >= 2, widget.status.value  # really iterating
    widget.cancel_button.clicked.emit()
    t0 = time.monotonic()
    _wait(qtbot, widget)
    assert time.monotonic() - t0 < 5, "cancel took too long"
    assert widget.status.value == "cancelled"
    assert _names(viewer) == ["tiny: sinogram"] and widget.progress.value < 100_000
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    # still usable: add a layer, then run again, this time from a file
    viewer.add_image(np.ones((4, 4)), name="added after cancel")
    data, kwargs, _ = problem[1]
    path = write_project(tmp_path / "scan.h5", ProjectData(sinogram=data, geometry=kwargs["metadata"]["geometry"],
                                                           provenance={"sigma_y": kwargs["metadata"]["sigma_y"]}))
    widget.source.value, widget.file.value, widget.method.value = None, path, "fbp"
    widget.start()
    _wait(qtbot, widget)
    assert _names(viewer) == ["tiny: sinogram", "added after cancel", "scan: fbp mean"], widget.status.value


def test_errors_are_reported_in_the_viewer_not_raised(widget, viewer, qtbot):
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        widget.method.value, widget.prior.value = "pigdm", "no-such-prior"
        widget.start()
        _wait(qtbot, widget)
        assert "prior 'no-such-prior' could not be loaded" in widget.status.value
        assert "no shipped prior named 'no-such-prior'" in widget.status.value
        assert any("no-such-prior" in str(n.message) for n in seen)
        assert _names(viewer) == ["tiny: sinogram"] and widget.run_button.enabled

        widget.source.value, widget.file.value, widget.method.value = None, None, "fbp"
        widget.start()
        _wait(qtbot, widget)
        assert "no sinogram: pick a sinogram layer or a file" in widget.status.value
    finally:
        notification_manager.notification_ready.disconnect(seen.append)


def test_problem_from_layer_rejects_layers_without_matching_geometry(problem):
    from tomodiff.napari.widget import problem_from_layer

    data, kwargs, _ = problem[1]
    y, geometry, sigma_y = problem_from_layer(data, kwargs["metadata"], "tiny")
    assert tuple(y.shape) == (1, 1, *geometry.sino_shape) and sigma_y == kwargs["metadata"]["sigma_y"]
    with pytest.raises(ValueError, match="no CT geometry"):
        problem_from_layer(data, {}, "plain")
    with pytest.raises(ValueError, match="geometry expects a sinogram"):
        problem_from_layer(data[:4], kwargs["metadata"], "cut")


def test_screenshot_of_mean_with_std_overlay_and_chi2(qtbot, tmp_path):
    """The widget after a 4-sample ΠGDM run with the shipped ``slice-64`` prior on two central slices
    of the sample phantom (16 views): the mean with the std overlaid, the sample count, χ² per view.
    Saved to $TOMODIFF_SCREENSHOT_DIR (the docs image) when set."""
    import torch
    from skimage.io import imsave

    from tomodiff.ct.simulate import simulate_scan
    from tomodiff.napari import sample_data
    from tomodiff.napari.layers import sinogram_layer
    from tomodiff.napari.widget import ReconstructionWidget
    from tomodiff.priors import available

    if "slice-64" not in available():
        pytest.skip("the shipped slice-64 prior is not installed")
    (phantom, _, _), = sample_data.phantom()
    vol = torch.from_numpy(np.ascontiguousarray(phantom[31:33]))  # 2 central axial slices, 64²
    y, geometry, sigma_y = simulate_scan(vol, views=16, noise=0.01, seed=0, voxel_size=sample_data.VOXEL_SIZE)
    viewer = napari.Viewer(show=True)  # screenshots are black unless the viewer is shown
    try:
        viewer.window.resize(1150, 720)
        sino, kwargs, _ = sinogram_layer(y[0, 0].numpy(), geometry.to_dict(), sigma_y, name="phantom: sinogram")
        viewer.add_image(sino, **kwargs)
        w = ReconstructionWidget(viewer)
        viewer.window.add_dock_widget(w, name="tomodiff", area="right")
        w.method.value, w.steps.value, w.n_samples.value = "pigdm", 10, 4
        w.start()
        _wait(qtbot, w)
        std = next((layer for layer in viewer.layers if "std over 4 samples" in layer.name), None)
        assert std is not None and std.visible and std.blending == "additive", w.status.value
        viewer.dims.set_point(0, float(np.mean(std.extent.world[:, 0])))
        qtbot.wait(500)  # let the shown window settle to its size before fitting the view
        viewer.reset_view()  # fits every layer, the hidden sinogram too: zoom in on the volume
        union, vol = viewer.layers.extent.world[:, -2:], std.extent.world[:, -2:]
        viewer.camera.center = tuple(vol.mean(0))
        viewer.camera.zoom *= 0.9 * float(np.max(union[1] - union[0]) / np.max(vol[1] - vol[0]))
        qtbot.wait(200)
        shot = viewer.screenshot(canvas_only=False, flash=False)
    finally:
        viewer.close()
    gray = shot[..., :3].mean(-1)
    assert shot.ndim == 3 and gray.std() > 5, "screenshot is blank"
    imsave(tmp_path / "uncertainty.png", shot)
    out = os.environ.get("TOMODIFF_SCREENSHOT_DIR")
    if out:
        os.makedirs(out, exist_ok=True)
        imsave(os.path.join(out, "napari_uncertainty.png"), shot)
