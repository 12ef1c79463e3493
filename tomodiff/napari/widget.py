"""The reconstruction widget: reconstruct a sinogram layer (or file) in a worker thread.

The work itself (:func:`run_job`) is plain Python, testable without Qt: it reads the problem from a
layer's data and metadata (``geometry``, ``sigma_y``, as :func:`~tomodiff.napari.layers.sinogram_layer`
stores them) or from a file, loads the prior, and calls :func:`tomodiff.recon.reconstruct`.

Progress and cancellation go through ``reconstruct``'s ``callback(done, total)`` (after every
iteration of SIRT/CGLS/TV and every diffusion step; FBP runs in one go): the callback reports
the count to the GUI thread through a Qt signal, and raises :class:`Cancelled` once the Cancel button
has set the job's event, which unwinds ``reconstruct`` at its next iteration. Between stages
(reading, loading the prior, reconstructing) the event is checked too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton,
                              SpinBox)

from .. import priors
from ..ct import Geometry, Projector
from ..io import read_project
from ..io.kind import file_kind
from ..recon import reconstruct
from .. import methods
from .layers import result_layers, scan_layers, sinogram_layer
from .uncertainty import Chi2Plot, calibration_text, chi2_text, is_std_layer, std_label, style_std_overlay

SLAB, OVERLAP = 32, 4  # reconstruct's defaults for diffusion slabs


class Cancelled(Exception):
    """Raised inside the worker when the user cancelled the run."""


@dataclass
class Job:
    """What to reconstruct and how. ``data``/``metadata``/``name`` come from a layer; or ``path``."""

    method: str
    data: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    name: str = ""
    path: Path | None = None
    prior: str = "ct-slice"
    steps: int = 50
    n_samples: int = 1
    device: str = "cpu"
    seed: int = 0
    std_overlay: bool = True


@dataclass
class Result:
    """A finished run: the layers to add and a one-line summary."""

    layers: list
    summary: str


def devices() -> list[str]:
    """Torch devices on this machine: ``cpu`` and every CUDA GPU (and ``mps`` on Apple silicon)."""
    out = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def problem_from_layer(data, metadata: dict, name: str = "layer"):
    """``(y (1, 1, *sino_shape) float32 tensor, Geometry, sigma_y or None)`` from a sinogram layer."""
    geometry = (metadata or {}).get("geometry")
    if not geometry:
        raise ValueError(f"layer {name!r} holds no CT geometry in its metadata: open a tomodiff project file "
                         f"or a DXchange/NXtomo scan with the tomodiff reader, or pick a file")
    geometry = Geometry.from_dict(geometry)
    sino = np.asarray(data, dtype=np.float32)
    if sino.shape != geometry.sino_shape:
        raise ValueError(f"layer {name!r} has shape {sino.shape} but its geometry expects a sinogram "
                         f"{geometry.sino_shape} (angles, [rows,] columns)")
    return torch.from_numpy(np.ascontiguousarray(sino))[None, None], geometry, metadata.get("sigma_y")


def layer_from_file(path) -> tuple:
    """The sinogram layer tuple of a project file (its sinogram) or a DXchange/NXtomo scan."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = file_kind(path)
    if kind == "scan":
        return scan_layers(path)[0]
    if kind != "project":
        raise ValueError(f"{path}: not a tomodiff project file nor a DXchange/NXtomo scan")
    data = read_project(path)
    if data.sinogram is None:
        raise ValueError(f"{path}: this project file holds no sinogram to reconstruct")
    return sinogram_layer(data.sinogram, data.geometry, data.provenance.get("sigma_y"), name=f"{path.stem}: sinogram")


def run_job(job: Job, *, cancel: threading.Event, progress: Callable[[int, int], None] = lambda done, total: None,
            load_prior: Callable | None = None) -> Result:
    """Reconstruct ``job`` (blocking). ``progress(done, total)`` is called from this thread;
    :class:`Cancelled` is raised soon after ``cancel`` is set. ``load_prior(name, device)`` defaults
    to :func:`tomodiff.priors.load`."""
    def check():
        if cancel.is_set():
            raise Cancelled()

    # 1. the problem
    methods.get(job.method)  # a clear error for an unknown method
    if job.data is None:
        if job.path is None:
            raise ValueError("no sinogram: pick a sinogram layer or a file")
        data, kwargs, _ = layer_from_file(job.path)
        name, metadata = Path(job.path).stem, kwargs["metadata"]
    else:
        data, metadata, name = job.data, job.metadata, job.name.partition(": ")[0]
    y, geometry, sigma_y = problem_from_layer(data, metadata, name)
    known = sigma_y is not None
    if not known:  # as `tomodiff reconstruct`: 1% of the largest line integral (diffusion; TV: its old weight)
        sigma_y = 0.01 * float(y.abs().max())
    dev = torch.device(job.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {job.device}: torch sees no CUDA GPU on this machine")
    check()

    # 2. the prior
    prior = None
    if methods.get(job.method).diffusion:
        try:
            prior = (priors.load if load_prior is None else load_prior)(job.prior, device=dev)
        except (KeyError, OSError, RuntimeError) as err:
            detail = err.args[0] if isinstance(err, KeyError) and err.args else err
            raise RuntimeError(f"{job.method} needs a prior, and prior {job.prior!r} could not be loaded: "
                               f"{detail}") from err
        check()

    # 3. the reconstruction; its callback reports progress and lets Cancel abort it
    progress(0, 0)

    def tick(done, total):
        check()
        progress(done, total)

    options = {}
    if job.method in ("sirt", "cgls", "tv"):
        options["n_iter"] = job.steps
    A = Projector(geometry, device=dev)
    noise = sigma_y if known or methods.get(job.method).diffusion else 0.0  # TV weighs by a known noise level only
    r = reconstruct(A, y.to(dev), method=job.method, prior=prior, steps=job.steps, n_samples=job.n_samples,
                    sigma_y=noise, seed=job.seed, slab=SLAB, overlap=OVERLAP, progress=False, callback=tick,
                    scale=(metadata or {}).get("mu_max") or "auto", **options)
    check()
    mean = r.mean[0, 0].detach().cpu().numpy()
    std = None if r.std is None else r.std[0, 0].detach().cpu().numpy()
    meta = {"method": job.method, "source": name, "sigma_y": sigma_y, "residual": r.residual, "nfe": r.nfe,
            "seconds": r.seconds, "geometry": geometry.to_dict(),
            "data_consistency": r.provenance.get("data_consistency")}
    n_samples = job.n_samples if methods.get(job.method).diffusion else None
    label = f"{job.method} ({job.prior})" if methods.get(job.method).diffusion else job.method
    layers = result_layers(name, label, mean, std, voxel_size=geometry.voxel_size, metadata=meta,
                           n_samples=n_samples, std_overlay=job.std_overlay, calibration=r.calibration)
    nfe = f", NFE {r.nfe}" if methods.get(job.method).diffusion else ""
    spread = f", {std_label(n_samples, r.calibration)}" if std is not None else ""
    summary = f"{job.method}: done in {r.seconds:.1f} s{nfe}{spread}, residual {r.residual:.3g}"
    return Result(layers=layers, summary=summary)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err.args[0] if isinstance(err, KeyError) and err.args else err}"


class ReconstructionWidget(Container):
    """Dock widget: sinogram layer or file, method, prior, steps, samples, device; Reconstruct/Cancel,
    a progress bar and a status line. Adds the mean (and std) layers when a run finishes."""

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.worker = None  # the running napari worker, or None
        self.load_prior = None  # override of tomodiff.priors.load (tests pass analytic priors)
        self._method_priors = {m.prior for m in methods.METHODS.values() if m.prior is not None}
        self._cancel = threading.Event()
        self._relay = _progress_relay(self._on_progress)

        self.source = ComboBox(label="sinogram", choices=self._sinogram_choices, nullable=True,
                               tooltip="an image layer opened from a tomodiff file (geometry in its metadata); "
                                       "empty: use the file below")
        self.file = FileEdit(label="or file", mode="r", filter="*.h5 *.hdf5 *.hdf *.nxs *.nx", nullable=True,
                             value=None)
        self.method = ComboBox(label="method", choices=list(methods.names()), value="sirt")
        self.prior = LineEdit(label="prior", value="ct-slice", tooltip="a shipped prior (tomodiff.priors.available())")
        self.steps = SpinBox(label="steps", min=1, max=100_000, value=50,
                             tooltip="diffusion steps per slab; iterations for sirt, cgls and tv")
        self.n_samples = SpinBox(label="samples", min=1, max=256, value=4,
                                 tooltip="posterior samples (mean and std over them)")
        self.device = ComboBox(label="device", choices=devices())
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.std_overlay = CheckBox(text="std as overlay on the mean", value=True,
                                    tooltip="show the posterior std as a coloured additive layer over the mean")
        self.run_button = PushButton(text="Reconstruct")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.status = Label(label="status", value="ready")
        self.status.native.setWordWrap(True)  # long error messages wrap instead of widening the dock
        self.samples_info = Label(label="samples", value="")
        self.samples_info.native.setWordWrap(True)  # the calibration's note is a long line
        self.chi2 = Label(label="data fit", value=chi2_text(None))
        self.chi2.native.setWordWrap(True)
        self.chi2_plot = Chi2Plot()
        self.extend([self.source, self.file, self.method, self.prior, self.steps, self.n_samples, self.device,
                     self.seed, self.std_overlay, self.run_button, self.cancel_button, self.progress, self.status,
                     self.samples_info, self.chi2])
        self.native.layout().addWidget(self.chi2_plot.native)  # χ² per view of the selected reconstruction

        self.method.changed.connect(self._method_changed)
        self.std_overlay.changed.connect(self._overlay_changed)
        napari_viewer.layers.selection.events.active.connect(self._show_uncertainty)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._refresh_sources)
        self._method_changed(self.method.value)
        self._refresh_sources()

    # ---------------------------------------------------------------- inputs
    def _sinogram_choices(self, _widget=None):
        from napari.layers import Image  # optional: napari (run_job and Job work without it)

        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and (layer.metadata or {}).get("geometry")]

    def _refresh_sources(self, _event=None):
        self.source.reset_choices()
        layers = [c for c in self.source.choices if c is not None]
        if self.source.value is None and layers:
            self.source.value = layers[-1]  # the newest sinogram

    def _method_changed(self, method):
        m = methods.get(method)
        diffusion = m.diffusion
        self.prior.enabled = self.n_samples.enabled = self.std_overlay.enabled = diffusion
        if diffusion and (m.prior is not None or self.prior.value in self._method_priors):
            self.prior.value = m.prior or "ct-slice"  # cfg runs with its conditional prior, the others with ct-slice
        self.steps.enabled = method != "fbp"

    def job(self) -> Job:
        """The current inputs as a :class:`Job` (the layer's data is taken now, in the GUI thread)."""
        common = dict(method=self.method.value, prior=self.prior.value.strip(), steps=int(self.steps.value),
                      n_samples=int(self.n_samples.value), device=self.device.value, seed=int(self.seed.value),
                      std_overlay=bool(self.std_overlay.value))
        layer = self.source.value
        if layer is not None:
            return Job(data=np.asarray(layer.data), metadata=dict(layer.metadata), name=layer.name, **common)
        return Job(path=self.file.value, **common)

    # ---------------------------------------------------------------- running
    def start(self, _=None):
        """Start a reconstruction in a worker thread (ignored while one is running)."""
        from napari.qt.threading import create_worker  # optional: napari

        if self.worker is not None:
            return
        self._cancel = threading.Event()
        job = self.job()
        self.worker = create_worker(run_job, job, cancel=self._cancel, progress=self._relay.progressed.emit,
                                    load_prior=self.load_prior, _start_thread=False,
                                    _connect={"returned": self._done, "errored": self._failed,
                                              "finished": self._finished})
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.progress.max, self.progress.value = 0, 0  # busy until the first report
        self._set_status(f"running {job.method}…")
        self.worker.start()

    def cancel(self, _=None):
        """Ask the running reconstruction to stop at its next iteration (or stage)."""
        if self.worker is not None:
            self._cancel.set()
            self._set_status("cancelling…")

    def _overlay_changed(self, on: bool):
        for layer in self.viewer.layers:
            if is_std_layer(layer):
                style_std_overlay(layer, on)

    def _show_uncertainty(self, _event=None):
        """Describe the selected layer's reconstruction: samples behind its std, χ² per view."""
        layer = self.viewer.layers.selection.active
        meta = dict(getattr(layer, "metadata", None) or {})
        if meta.get("kind") not in ("mean", "std"):
            return  # keep showing the last reconstruction's numbers while other layers are selected
        n = meta.get("n_samples")
        self.samples_info.value = f"{layer.name.partition(': ')[0]}: " + (
            f"{std_label(n)} (posterior samples); {calibration_text(meta.get('calibration'))}" if n
            else "no std (a single estimate)")
        self.chi2.value = chi2_text(meta)
        self.chi2_plot.show(meta)

    def _on_progress(self, done: int, total: int):
        if total > 0:
            self.progress.max = total
            self.progress.value = min(done, total)

    def _done(self, result: Result):
        if self._cancel.is_set():  # finished just as Cancel was pressed: the user asked for nothing
            self._set_status("cancelled")
            return
        for data, kwargs, _ in result.layers:
            self.viewer.add_image(data, **kwargs)
        if self.progress.max == 0:  # FBP: no iterations were reported
            self.progress.max = 1
        self.progress.value = self.progress.max
        self._set_status(result.summary)

    def _failed(self, err: BaseException):
        if isinstance(err, Cancelled):
            self._set_status("cancelled")
            return
        from napari.utils.notifications import show_error  # optional: napari

        message = f"tomodiff reconstruction failed: {_describe(err)}"
        self._set_status(message, error=True)
        show_error(message)

    def _finished(self):
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
        if self.progress.max == 0:  # stop the busy indicator
            self.progress.max = 1

    def _set_status(self, text: str, *, error: bool = False):
        self.status.value = text
        self.status.native.setStyleSheet("color: #e05050;" if error else "")


def _progress_relay(slot):
    """A QObject whose ``progressed(int, int)`` signal, emitted from any thread, runs ``slot`` in the GUI thread."""
    from qtpy.QtCore import QObject, Signal, Slot  # optional: Qt

    class Relay(QObject):
        progressed = Signal(int, int)

        @Slot(int, int)
        def deliver(self, done, total):  # a slot of an object living in the GUI thread: a queued call
            slot(done, total)

    relay = Relay()
    relay.progressed.connect(relay.deliver)
    return relay
