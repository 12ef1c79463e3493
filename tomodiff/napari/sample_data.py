"""napari sample data (File > Open Sample > tomodiff): a phantom and its sparse-view reconstruction.

Both use the held-out benchmark phantom ``shepp_logan_64_a`` (regenerated when the ``phantoms/``
folder is not beside the package) at a voxel size of :data:`VOXEL_SIZE` mm. The reconstruction
sample also returns its 16-view sinogram (hidden) with the geometry in the layer's metadata, so the
reconstruction widget can reconstruct it again with another method.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import phantoms
from ..ct import Projector
from ..ct.simulate import simulate_scan
from ..io.volumes import load_volume
from ..recon import reconstruct
from .layers import result_layers, sinogram_layer

PHANTOM = "shepp_logan_64_a"
VOXEL_SIZE = 0.5  # mm: a 32 mm cube
VIEWS = 16
NOISE = 0.01  # relative measurement noise


def _phantom() -> tuple[np.ndarray, str]:
    try:
        vol, _ = load_volume(PHANTOM)
        return vol.numpy(), PHANTOM
    except FileNotFoundError:  # an installed package without the benchmark set beside it
        return phantoms.generate("shepp_logan", (64, 64, 64), 0).numpy(), "shepp_logan_64"


def _volume_kwargs(name: str) -> dict:
    return dict(name=name, colormap="gray", contrast_limits=[0.0, 1.0], scale=(VOXEL_SIZE,) * 3,
                metadata={"voxel_size": VOXEL_SIZE, "units": "mm"})


def phantom() -> list[tuple]:
    """The 64³ Shepp–Logan phantom (attenuation in [0, 1] per mm, voxel size 0.5 mm)."""
    vol, name = _phantom()
    return [(vol, _volume_kwargs(f"{name}: phantom"), "image")]


def sparse_view_reconstruction(views: int = VIEWS, *, seed: int = 0) -> list[tuple]:
    """FBP of the phantom from ``views`` noisy parallel-beam projections, plus that sinogram (hidden).

    Takes about a second: the projections are simulated with the pure-torch projector.
    """
    vol, name = _phantom()
    y, geometry, sigma_y = simulate_scan(torch.from_numpy(vol), views=views, noise=NOISE, seed=seed,
                                         voxel_size=VOXEL_SIZE, backend="torch")
    r = reconstruct(Projector(geometry, backend="torch"), y, method="fbp", progress=False)
    sino = sinogram_layer(y[0, 0].numpy(), geometry.to_dict(), sigma_y, name=f"{name}: {views}-view sinogram")
    (mean, kwargs, kind), = result_layers(f"{name}", f"fbp ({views} views)", r.mean[0, 0].numpy(), None,
                                          voxel_size=VOXEL_SIZE, contrast_limits=(0.0, 1.0),
                                          metadata={"method": "fbp", "views": views, "sigma_y": sigma_y,
                                                    "residual": r.residual})
    return [sino, (mean, kwargs, kind)]
