"""Real CT volumes as training data: checked reading, and multi-scale augmented slice crops.

``load_volumes(paths)`` reads ``(Z, Y, X)`` volumes from ``.npy``, ``.npz`` (the ``volume`` array of
the project's CT corpus, or every 3D array), ``.h5``/``.hdf5`` (every 3D dataset, or ``key``) and
NIfTI (``.nii``/``.nii.gz``, where nibabel is installed), each into a :class:`Volume` in [0, 1]
units with its voxel spacing in mm. Integer volumes are divided by their dtype's maximum (the
corpus stores ``uint16`` = value × 65535); float volumes must already be close to [0, 1].

``random_slice_crop`` draws one training slice the way ``ct-slice`` is trained: a random
orientation (axial, coronal or sagittal, the latter two only where the voxels are near-isotropic),
a random scale (a region of ``size·s`` pixels with ``s`` log-uniform in ``scale_range``, resampled
to ``size`` with an antialiasing filter, i.e. voxels ``s`` times coarser), a random flip / 90°
rotation and an intensity (gain, window) jitter. Everything is a function of the ``numpy``
generator passed in, so a batch is a function of ``(run_seed, step)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SUFFIXES = (".npy", ".npz", ".h5", ".hdf5", ".nii", ".nii.gz")
# float volumes may overshoot [0, 1] a little (reconstruction noise, gain jitter), not by scale factors
FLOAT_RANGE = (-0.25, 1.5)
FILL_LEVEL, MIN_FILL = 0.02, 0.05  # a crop is "near-empty" if < 5 % of its pixels exceed 0.02


class VolumeDataError(ValueError):
    """A training volume is unusable (wrong dimensionality, dtype, NaN, out of range)."""


@dataclass(frozen=True)
class Volume:
    """A training volume: ``data`` ``(Z, Y, X)`` float32 in [0, 1] units, ``spacing`` (z, y, x) in mm."""

    name: str
    data: torch.Tensor
    spacing: tuple = (1.0, 1.0, 1.0)

    @property
    def shape(self):
        return tuple(self.data.shape)

    def planes(self, size: int) -> list[int]:
        """Slicing axes whose planes are at least ``size``² and whose pixels are near-square:
        0 = axial (Y, X), 1 = coronal (Z, X), 2 = sagittal (Z, Y)."""
        out = []
        for axis in range(3):
            dims = [d for d in range(3) if d != axis]
            big = all(self.data.shape[d] >= size for d in dims)
            sp = [self.spacing[d] for d in dims]
            if big and max(sp) <= 1.15 * min(sp):
                out.append(axis)
        return out


def _expand(paths) -> list[Path]:
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.name.endswith(SUFFIXES))
        elif not p.exists():
            raise FileNotFoundError(f"training data file not found: {p}")
        else:
            files.append(p)
    if not files:
        raise FileNotFoundError(f"no volume files ({', '.join(SUFFIXES)}) in {paths}")
    return files


def _to_unit(a: np.ndarray, where: str) -> np.ndarray:
    """Check one array and map it to float32 [0, 1] units; errors name ``where``."""
    if a.dtype.kind not in "uif":
        raise VolumeDataError(f"{where}: dtype {a.dtype} is not numeric")
    if a.ndim != 3:
        raise VolumeDataError(f"{where}: expected a 3D (Z, Y, X) volume, got shape {a.shape}")
    if a.dtype.kind in "ui":
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise VolumeDataError(f"{where}: contains {int((~np.isfinite(a)).sum())} NaN/inf values")
    lo, hi = float(a.min()), float(a.max())
    if lo < FLOAT_RANGE[0] or hi > FLOAT_RANGE[1]:
        raise VolumeDataError(f"{where}: values {lo:.4g}..{hi:.4g} are far outside [0, 1]; rescale the volume "
                              f"to [0, 1] (e.g. clip((HU + 1000) / 2000, 0, 1)) before training")
    return a


def _read(f: Path, key: str | None) -> list[tuple[str, np.ndarray, tuple]]:
    """``(name, array, spacing)`` for every volume in one file."""
    name = f.name.split(".")[0]
    if f.suffix == ".npy":
        a = np.load(f, allow_pickle=False)
        if a.ndim == 4:  # a stack of volumes
            return [(f"{name}[{i}]", v, (1.0, 1.0, 1.0)) for i, v in enumerate(a)]
        return [(name, a, (1.0, 1.0, 1.0))]
    if f.suffix == ".npz":
        with np.load(f, allow_pickle=False) as z:
            if key or "volume" in z:
                k = key or "volume"
                if k not in z:
                    raise VolumeDataError(f"{f}: no array named {k!r} (has {sorted(z)})")
                sp = tuple(float(s) for s in z["spacing_zyx"]) if "spacing_zyx" in z else (1.0, 1.0, 1.0)
                return [(name, z[k], sp)]
            return [(f"{name}:{k}", z[k], (1.0, 1.0, 1.0)) for k in z if z[k].ndim >= 3]
    if f.name.endswith((".nii", ".nii.gz")):
        try:
            import nibabel  # optional: nibabel (NIfTI)
        except ImportError as err:
            raise VolumeDataError(f"{f}: reading NIfTI needs nibabel (pip install nibabel)") from err
        img = nibabel.load(str(f))
        a = np.asarray(img.dataobj)
        if a.ndim != 3:
            raise VolumeDataError(f"{f}: expected a 3D NIfTI volume, got shape {a.shape}")
        zooms = img.header.get_zooms()[:3]
        return [(name, np.ascontiguousarray(a.transpose(2, 1, 0)), tuple(float(z) for z in zooms[::-1]))]
    import h5py  # start-up time: h5py

    try:
        with h5py.File(f, "r") as h:
            found = []
            h.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 3 else None)
            names = [key] if key else found
            if key and key not in h:
                raise VolumeDataError(f"{f}: no dataset {key!r}")
            return [(f"{name}:{n}", h[n][()], (1.0, 1.0, 1.0)) for n in names]
    except OSError as err:
        raise VolumeDataError(f"{f}: not a readable HDF5 file ({err})") from err


def load_volumes(paths, key: str | None = None) -> list[Volume]:
    """Read and check every volume in ``paths`` (files or directories); see the module docstring."""
    vols = []
    for f in _expand(paths):
        for name, a, sp in _read(f, key):
            where = f"{f}" + (f" [{name}]" if ":" in name or "[" in name else "")
            vols.append(Volume(name, torch.from_numpy(np.ascontiguousarray(_to_unit(np.asarray(a), where))), sp))
    if not vols:
        raise VolumeDataError(f"no 3D volumes found in {paths}")
    return vols


def random_slice_crop(vol: Volume, size: int, rng: np.random.Generator, *, scale_range=(1.0, 4.0),
                      orient: bool = True, tries: int = 4) -> torch.Tensor:
    """One ``(1, size, size)`` training slice of ``vol`` (see the module docstring)."""
    axes = vol.planes(size) if orient else [0]
    if not axes or (not orient and min(vol.shape[1:]) < size):
        raise VolumeDataError(f"volume {vol.name} {vol.shape} has no plane of at least {size}² pixels")
    for attempt in range(tries):
        axis = axes[int(rng.integers(len(axes)))]
        h, w = (s for d, s in enumerate(vol.shape) if d != axis)
        lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
        region = min(int(round(size * float(np.exp(rng.uniform(lo, hi))))), h, w)
        i = int(rng.integers(vol.shape[axis]))
        y, x = int(rng.integers(h - region + 1)), int(rng.integers(w - region + 1))
        crop = vol.data.select(axis, i)[y:y + region, x:x + region]
        if (crop > FILL_LEVEL).float().mean() >= MIN_FILL or attempt == tries - 1:
            break
    if region != size:
        crop = F.interpolate(crop[None, None], size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)[0, 0]
    k = int(rng.integers(4))
    crop = torch.rot90(crop, k, dims=(0, 1))
    if rng.random() < 0.5:
        crop = crop.flip(1)
    return crop[None].contiguous()


def intensity_jitter(x: torch.Tensor, rng: np.random.Generator, gain=(0.8, 1.2),
                     p_window: float = 0.15) -> torch.Tensor:
    """Random gain, and sometimes a display window (values above a random level saturate at 1)."""
    x = x * float(rng.uniform(*gain))
    if rng.random() < p_window:
        top = float(rng.uniform(0.5, 1.0))
        x = (x / top).clamp(0, 1)
    return x


def random_slab_crop(vol: Volume, size: int, context: int, rng: np.random.Generator, *, scale_range=(1.0, 4.0),
                     thickness_range=(0.5, 2.0), tries: int = 4) -> torch.Tensor:
    """One ``(2k+1, size, size)`` training stack of adjacent slices of ``vol`` (k = ``context``), for
    a 2.5D prior.

    In-plane it is drawn as :func:`random_slice_crop` (orientation, scale ``s``, flip, rotation).
    Through the plane the slices are ``t`` in-plane pixels apart (in mm, so anisotropic voxels are
    handled), ``t`` log-uniform in ``thickness_range``: users' volumes have slices thinner and
    thicker than their pixels. The volume is smoothed along that axis by a Gaussian of width
    ``0.3·step`` before linear interpolation when the step exceeds a voxel, so coarse slices are
    slab averages as a scanner (or a block-averaged volume) gives them. The stack's order is
    reversed half the time. Slab ends beyond the volume repeat its edge slice.
    """
    from scipy.ndimage import gaussian_filter1d  # start-up time: scipy

    axes = vol.planes(size)
    if not axes:
        raise VolumeDataError(f"volume {vol.name} {vol.shape} has no plane of at least {size}² pixels")
    k = int(context)
    for attempt in range(tries):
        axis = axes[int(rng.integers(len(axes)))]
        in_plane = [d for d in range(3) if d != axis]
        h, w = (vol.shape[d] for d in in_plane)
        lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
        region = min(int(round(size * float(np.exp(rng.uniform(lo, hi))))), h, w)
        pixel_mm = float(np.mean([vol.spacing[d] for d in in_plane])) * region / size
        t_lo, t_hi = np.log(thickness_range[0]), np.log(thickness_range[1])
        step = pixel_mm * float(np.exp(rng.uniform(t_lo, t_hi))) / vol.spacing[axis]  # in voxels along axis
        n = vol.shape[axis]
        if k and 2 * k * step > n - 1:
            step = (n - 1) / (2 * k)
        centre = float(rng.uniform(k * step, n - 1 - k * step)) if n > 1 else 0.0
        y, x = int(rng.integers(h - region + 1)), int(rng.integers(w - region + 1))
        pos = centre + step * np.arange(-k, k + 1)
        i0 = max(0, int(np.floor(pos[0] - step)))
        i1 = min(n - 1, int(np.ceil(pos[-1] + step)))
        block = vol.data.narrow(axis, i0, i1 - i0 + 1).movedim(axis, 0)[:, y:y + region, x:x + region].numpy()
        if step > 1:
            block = gaussian_filter1d(block, 0.3 * step, axis=0, mode="nearest")
        p = np.clip(pos - i0, 0, block.shape[0] - 1)
        j = np.minimum(np.floor(p).astype(int), block.shape[0] - 2) if block.shape[0] > 1 else np.zeros(len(p), int)
        frac = (p - j)[:, None, None] if block.shape[0] > 1 else 0.0
        nxt = np.minimum(j + 1, block.shape[0] - 1)
        stack = torch.from_numpy(np.ascontiguousarray((1 - frac) * block[j] + frac * block[nxt], dtype=np.float32))
        if (stack[k] > FILL_LEVEL).float().mean() >= MIN_FILL or attempt == tries - 1:
            break
    if region != size:
        stack = F.interpolate(stack[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0]
    stack = torch.rot90(stack, int(rng.integers(4)), dims=(1, 2))
    if rng.random() < 0.5:
        stack = stack.flip(2)
    if rng.random() < 0.5:
        stack = stack.flip(0)
    return stack.contiguous()
