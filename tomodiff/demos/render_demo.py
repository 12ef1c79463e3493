"""The volume-rendering demo: an object seen by a few cameras, its emission and absorption recovered.

An object's density ``v`` in [0, 1] (the corpus's engine block, or a procedural phantom where the
corpus is absent) becomes absorption ``κ = v`` and emission ``e = v²`` (dense parts glow), on a
``size³`` grid two world units wide, so that κ = 1 gives an optical depth of 2 across the volume.
``views`` orthographic (or pinhole) cameras on an orbit at 20° elevation render it in front of a
back-light of 1, with Gaussian noise; :func:`tomodiff.recon.reconstruct` fits it with ``tv`` and,
where a prior is available, ``dps`` (the prior denoises each channel). Scored on ``views`` novel
cameras (azimuths half-way between the fitted ones, elevation −10°: views never fitted) and on the
volume itself, per channel. Each method's channels go to project files (``{method}_emission.h5``,
``{method}_absorption.h5``; the "sinogram" holds the fitted views) that ``tomodiff view`` opens.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io import ProjectData, write_project
from ..phantoms import generate
from ..recon import psnr, reconstruct
from ..render import EmissionAbsorption, orbit

DATA_ENV = "TOMODIFF_SHARED_DATA"
CORPUS_VOLUME = Path("ct_corpus") / "engine_block.npz"
FALLBACK = ("ellipsoids", 13)  # the bundled procedural phantom (family, seed)
WORLD_SIZE = 2.0  # the volume's edge, world units
ELEVATION, NOVEL_ELEVATION = math.radians(20.0), math.radians(-10.0)
BACK_LIGHT = 1.0
PINHOLE_DISTANCE = 4.0  # eye to origin, world units (the volume's bounding radius is ≈ 1.8)


@dataclass
class RenderResult:
    name: str
    volume: np.ndarray  # (2, Z, Y, X) emission, absorption (posterior mean for dps)
    psnr_emission: float
    psnr_absorption: float
    psnr_fitted_views: float
    psnr_novel_views: float
    seconds: float
    nfe: int
    paths: tuple = ()


def corpus_file(path=None) -> Path | None:
    """The engine block: ``path``, else ``$TOMODIFF_SHARED_DATA/ct_corpus/engine_block.npz``, else the
    shared data folder beside a source checkout; ``None`` when none exists."""
    if path is not None:
        return Path(path) if Path(path).is_file() else None
    roots = [os.environ.get(DATA_ENV), Path(__file__).resolve().parents[3] / "shared" / "data"]
    for root in roots:
        if root and (Path(root) / CORPUS_VOLUME).is_file():
            return Path(root) / CORPUS_VOLUME
    return None


def load_density(size: int = 32, path=None) -> tuple[torch.Tensor, str]:
    """Density ``(size, size, size)`` float32 in [0, 1] and where it came from.

    The corpus volume is zero-padded to a cube (keeping its aspect) and block-averaged to ``size``³;
    without it, the procedural phantom :data:`FALLBACK` is drawn at ``size``³.
    """
    file = corpus_file(path)
    if file is None:
        family, seed = FALLBACK
        return generate(family, (size,) * 3, seed).clamp(0, 1).float(), f"{family}:{seed} (procedural)"
    vol = torch.from_numpy(np.load(file)["volume"].astype(np.float32) / 65535.0)
    side = max(vol.shape)
    pads = []
    for n in reversed(vol.shape):
        pads += [(side - n) // 2, side - n - (side - n) // 2]
    cube = F.pad(vol, pads)[None, None]
    return F.adaptive_avg_pool3d(cube, size)[0, 0].clamp(0, 1), f"{file.stem} ({file})"


def emission_absorption(density: torch.Tensor) -> torch.Tensor:
    """``(1, 2, Z, Y, X)``: emission ``v²`` and absorption ``v`` (per world unit)."""
    return torch.stack([density * density, density])[None]


def cameras(views: int, kind: str = "orthographic", novel: bool = False):
    """``views`` cameras around the object; the novel ones sit half-way between, lower down."""
    offset = math.pi / views if novel else 0.0
    angles = [offset + 2 * math.pi * k / views for k in range(views)]
    distance = PINHOLE_DISTANCE if kind == "pinhole" else None
    return orbit(angles, elevation=NOVEL_ELEVATION if novel else ELEVATION, kind=kind, distance=distance)


def prior_trained_on(prior, name: str) -> bool:
    """Whether a prior's model card lists a training volume called ``name``."""
    config = ((getattr(prior, "info", None) or {}).get("training") or {}).get("config") or {}
    return any(Path(str(d)).stem == name for d in config.get("data", []))


def run_demo(*, size: int = 32, views: int = 8, noise: float = 0.01, camera: str = "orthographic",
             methods=("tv", "dps"), prior=None, steps: int = 20, samples: int = 1, seed: int = 0,
             volume_path=None, out_dir: Path | None = Path("out/render"), device="cpu", progress: bool = False):
    """Render, reconstruct with each method, score, write files.

    ``prior``: a loaded prior for ``dps`` (``None``: dps is skipped), warm-started from the tv result
    when tv ran first (as ``reconstruct`` would, without fitting TV twice). Returns ``(results, setup)``;
    ``setup["volume"]`` says which object was used.
    """
    unknown = set(methods) - {"tv", "dps"}
    if unknown:
        raise ValueError(f"the render demo runs tv and dps, got {sorted(unknown)}")
    density, source = load_density(size, volume_path)
    truth = emission_absorption(density).to(device)
    voxel = WORLD_SIZE / size
    R = EmissionAbsorption(truth.shape[2:], cameras(views, camera), voxel_size=voxel, background=BACK_LIGHT)
    R_novel = EmissionAbsorption(truth.shape[2:], cameras(views, camera, novel=True), voxel_size=voxel,
                                 background=BACK_LIGHT)
    with torch.no_grad():
        clean, novel_truth = R(truth), R_novel(truth)
    sigma_y = float(noise) * float(clean.max())
    y = clean + sigma_y * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    image_range = float(clean.max() - clean.min())
    truth_cpu, clean_cpu, novel_cpu = truth.cpu(), clean.cpu(), novel_truth.cpu()
    results, tv_fit = [], None
    for method in methods:
        if method == "dps" and prior is None:
            continue
        kw = {"prior": prior, "steps": steps, "n_samples": samples} if method == "dps" else {}
        if method == "dps" and tv_fit is not None:
            kw["x_init"] = tv_fit
        t0 = time.perf_counter()
        r = reconstruct(R, y, method=method, sigma_y=sigma_y, seed=seed, progress=progress, **kw)
        seconds = time.perf_counter() - t0
        x = r.mean
        if method == "tv":
            tv_fit = x
        with torch.no_grad():
            fitted, novel = R(x).cpu(), R_novel(x).cpu()
        x = x.cpu()
        res = RenderResult(
            method, x[0].numpy(),
            psnr_emission=float(psnr(x[0, 0], truth_cpu[0, 0], data_range=float(truth_cpu[0, 0].max()))),
            psnr_absorption=float(psnr(x[0, 1], truth_cpu[0, 1], data_range=float(truth_cpu[0, 1].max()))),
            psnr_fitted_views=float(psnr(fitted[0, 0], clean_cpu[0, 0], data_range=image_range)),
            psnr_novel_views=float(psnr(novel[0, 0], novel_cpu[0, 0], data_range=image_range)),
            seconds=seconds, nfe=r.nfe)
        if out_dir is not None:
            res.paths = _write(Path(out_dir), method, r, truth_cpu, y.cpu(), R, source, res, sigma_y)
        results.append(res)
    setup = {"volume": source, "shape": list(truth.shape[2:]), "views": views, "novel_views": views,
             "camera": camera, "elevation_deg": math.degrees(ELEVATION),
             "novel_elevation_deg": math.degrees(NOVEL_ELEVATION), "voxel_size": voxel, "back_light": BACK_LIGHT,
             "noise_relative": noise, "sigma_y": sigma_y, "seed": seed,
             # an empty volume's PSNR: the floor a reconstruction's volume PSNR should be read against
             "psnr_zero_volume": {c: float(psnr(0 * truth_cpu[0, i], truth_cpu[0, i],
                                                data_range=float(truth_cpu[0, i].max())))
                                  for i, c in enumerate(("emission", "absorption"))},
             "prior": getattr(prior, "name", None) if prior is not None else None,
             "prior_trained_on_volume": bool(prior is not None and prior_trained_on(prior, Path(source.split()[0]).stem))}
    return results, setup


def _write(out_dir: Path, method: str, r, truth, y, R, source, res: RenderResult, sigma_y) -> tuple:
    """One project file per channel; the fitted views as its "sinogram", the renderer as its geometry."""
    geometry = R.to_dict()
    paths = []
    for c, channel in enumerate(("emission", "absorption")):
        recon = {"mean": r.mean[0, c].cpu().numpy()}
        if r.std is not None:
            recon["std"] = r.std[0, c].cpu().numpy()
        if r.samples is not None:
            recon["samples"] = r.samples[:, 0, c].cpu().numpy()
        prov = {**r.provenance, "channel": channel, "volume": source, "sigma_y": sigma_y,
                "psnr": getattr(res, f"psnr_{channel}"), "psnr_novel_views": res.psnr_novel_views,
                "psnr_fitted_views": res.psnr_fitted_views, "seconds": res.seconds, "nfe": res.nfe}
        paths.append(write_project(out_dir / f"{method}_{channel}.h5", ProjectData(
            sinogram=y[0, 0].numpy(), geometry=geometry, reference=truth[0, c].numpy(), reconstruction=recon,
            provenance=prov)))
    return tuple(paths)


def command(*, views: int = 8, noise: float = 0.01, methods=("tv", "dps"), prior_name: str | None = None,
            steps: int | None = None, samples: int = 1, seed: int = 0, out_dir: Path = Path("out/render"),
            device="cpu", progress: bool = True) -> tuple[dict, list[str]]:
    """``tomodiff demo --task render``: :func:`run_demo` with the shipped prior for dps (skipped, saying
    so, when it is not installed); returns the JSON summary and the lines to print."""
    from ..priors import available, load  # start-up time
    from ..priors.registry import DEFAULT_PRIOR  # start-up time

    name, prior, notes = prior_name or DEFAULT_PRIOR, None, []
    if "dps" in methods:
        if name in available():
            prior = load(name, device=device, precision="auto")
        elif prior_name is not None:
            raise ValueError(f"--prior {prior_name}: no shipped prior of that name; available: "
                             f"{', '.join(available()) or 'none'}")
        else:
            notes.append(f"dps skipped: the prior {name!r} is not installed")
    results, setup = run_demo(views=views, noise=noise, methods=methods, prior=prior, steps=steps or 20,
                              samples=samples, seed=seed, out_dir=out_dir, device=device, progress=progress)
    if setup["prior_trained_on_volume"]:
        notes.append(f"note: {setup['volume'].split()[0]} is one of {name}'s training volumes, so dps's volume "
                     "PSNR is not a held-out score")
    summary = {"setup": setup, "notes": notes, "methods": {
        r.name: {"psnr_emission": round(r.psnr_emission, 3), "psnr_absorption": round(r.psnr_absorption, 3),
                 "psnr_fitted_views": round(r.psnr_fitted_views, 3), "psnr_novel_views": round(r.psnr_novel_views, 3),
                 "seconds": round(r.seconds, 2), "nfe": r.nfe, "files": [str(p) for p in r.paths]}
        for r in results}}
    lines = [(f"{setup['volume']}: {tuple(setup['shape'])} voxels, {views} {setup['camera']} cameras at "
             f"{setup['elevation_deg']:.0f}° elevation, back-light {setup['back_light']:g}, noise "
             f"{noise:.0%} of max; scored on {views} novel views at {setup['novel_elevation_deg']:.0f}°"),
             (f"{'method':<6} {'novel views':>11} {'fitted views':>12} {'emission':>9} {'absorption':>10} "
             f"{'time [s]':>8} {'NFE':>4}   (PSNR, dB)")]
    lines += [f"{r.name:<6} {r.psnr_novel_views:11.2f} {r.psnr_fitted_views:12.2f} {r.psnr_emission:9.2f} "
              f"{r.psnr_absorption:10.2f} {r.seconds:8.1f} {r.nfe:4d}" for r in results]
    zero = setup["psnr_zero_volume"]
    lines.append(f"{'zeros':<6} {'':>11} {'':>12} {zero['emission']:9.2f} {zero['absorption']:10.2f}   (an empty volume)")
    if "dps" in summary["methods"] and "tv" in summary["methods"]:
        notes.append("dps starts from the tv fit at sigma 0.05 (its time excludes the tv fit's)")
    lines += notes
    files = [str(p) for r in results for p in r.paths]
    if files:
        lines.append("open in napari: tomodiff view " + " ".join(files))
    return summary, lines
