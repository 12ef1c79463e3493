"""Seeded procedural 3D phantoms ``(Z, Y, X)`` in [0, 1] (1 = densest) and their 2D slices.

Families (``FAMILIES``): ``shepp_logan`` (modified 3D Shepp–Logan, randomly perturbed),
``ellipsoids`` (random ellipsoids in a body), ``foam`` (cylinder with spherical voids) and
``texture`` (smooth density gradients with trabecular / textured inclusions, which piecewise-constant
regularisers such as TV represent poorly).

Parameters are drawn from the seed alone, independent of resolution; the larger in-plane dimension
(Y or X) of the volume spans the normalised interval [-1, 1] with isotropic voxels (objects lie in
the unit ball, so a thin ``(Z, Y, X)`` volume is a central slab and a tall one has empty ends). So ``generate(f, (64,)*3, s)``
and ``generate(f, (128,)*3, s)`` are the same object at two resolutions, and
``generate_slices(f, (64, 64), s, z=[...])`` are exact slices of it.

Seeds: training draws phantoms with seeds in ``TRAIN_SEEDS``, the benchmark set uses
``BENCHMARK_SEEDS``; the two ranges are disjoint (a test checks it).

The benchmark set (held-out phantoms and real-CT crops: ``manifest.json`` and one HDF5 file per
volume) ships inside this package, in :data:`BENCHMARK_SET`, where
:func:`tomodiff.io.volumes.load_volume` finds its volumes by name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import _render
from .families import FAMILY_FUNCS

FAMILIES: tuple[str, ...] = tuple(FAMILY_FUNCS)
TRAIN_SEEDS = range(0, 1_000_000_000)
BENCHMARK_SEEDS = range(2_000_000_000, 2_000_100_000)
# Package data (pyproject's package-data), so that an installed copy has it too: the same files as
# the checkout's top-level phantoms/, where benchmarks/make_benchmark_set.py writes them.
BENCHMARK_SET = Path(__file__).resolve().parent / "benchmark_set"

__all__ = ["FAMILIES", "TRAIN_SEEDS", "BENCHMARK_SEEDS", "BENCHMARK_SET", "draw_params", "render", "generate",
           "generate_slices", "axial_slices", "training_slices", "training_seed"]


def _check_family(family: str) -> None:
    if family not in FAMILY_FUNCS:
        raise ValueError(f"unknown phantom family {family!r}; choose from {FAMILIES}")


def draw_params(family: str, seed: int) -> dict:
    """The family's parameters for ``seed`` (a JSON-serialisable dict, resolution independent)."""
    _check_family(family)
    return FAMILY_FUNCS[family][0](np.random.default_rng(int(seed)))


def render(family: str, params: dict, shape, z=None) -> torch.Tensor:
    """Render ``params`` on the grid of ``shape`` = (Z, Y, X); ``z`` overrides the z coordinates
    (normalised units, see :func:`tomodiff.phantoms._render.grid`). Returns float32 (Z, Y, X)."""
    _check_family(family)
    return FAMILY_FUNCS[family][1](params, _render.grid(shape, z))


def generate(family: str, shape, seed: int) -> torch.Tensor:
    """A ``(Z, Y, X)`` float32 volume in [0, 1] of the given family, deterministic in ``seed``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"generate: shape must be (Z, Y, X), got {shape}")
    return render(family, draw_params(family, seed), shape)


def generate_slices(family: str, shape2d, seed: int, z) -> torch.Tensor:
    """Axial slices ``(len(z), Y, X)`` of the phantom ``seed`` at heights ``z`` (normalised units;
    the object lies within z in [-1, 1])."""
    Y, X = (int(s) for s in shape2d)
    z = np.atleast_1d(np.asarray(z, dtype=np.float64))
    return render(family, draw_params(family, seed), (max(Y, X), Y, X), z=z)


def axial_slices(volume: torch.Tensor) -> torch.Tensor:
    """``(Z, Y, X)`` volume -> ``(Z, 1, Y, X)`` batch of axial slices (a view, no copy)."""
    if volume.dim() != 3:
        raise ValueError(f"axial_slices: expected (Z, Y, X), got {tuple(volume.shape)}")
    return volume.unsqueeze(1)


def training_seed(run_seed: int, step: int, index: int) -> int:
    """Phantom seed of sample ``index`` at ``step`` of a training run: always inside ``TRAIN_SEEDS``."""
    ss = np.random.SeedSequence([int(run_seed), int(step), int(index)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % np.uint64(len(TRAIN_SEEDS))) + TRAIN_SEEDS.start


def training_slices(n: int, size: int, run_seed: int, step: int, *, families=FAMILIES,
                    per_phantom: int = 4, z_max: float = 0.9) -> torch.Tensor:
    """A batch ``(n, 1, size, size)`` of axial slices for training, deterministic in (run_seed, step).

    Each phantom (family cycling through ``families``, seed from :func:`training_seed`) gives
    ``per_phantom`` slices at uniform random heights in [-z_max, z_max].
    """
    out = []
    rng = np.random.default_rng([int(run_seed), int(step), 7])
    k = 0
    while sum(len(o) for o in out) < n:
        fam = families[int(rng.integers(len(families)))]
        m = min(per_phantom, n - sum(len(o) for o in out))
        z = np.sort(rng.uniform(-z_max, z_max, m))
        out.append(generate_slices(fam, (size, size), training_seed(run_seed, step, k), z))
        k += 1
    return torch.cat(out).unsqueeze(1)
