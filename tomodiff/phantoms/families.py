"""Phantom families: each draws its parameters from a seed and renders them on any grid.

A family is a pair of functions ``draw(rng) -> params`` (a JSON-serialisable dict, independent of
resolution) and ``render(params, grid) -> (Z, Y, X) float32`` (values in [0, 1], 1 = densest).
Coordinates are normalised: the larger in-plane dimension spans [-1, 1]; (x, y, z) order in params.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _render as R

# -- modified 3D Shepp-Logan -----------------------------------------------------------------------
# Kak & Slaney's 3D ellipsoids with contrast raised as in Toft's modified 2D phantom, so that the
# soft-tissue structures are visible: x0, y0, z0, a, b, c, phi (deg, about z), additive value.
_SHEPP = [
    (0.0, 0.0, 0.0, 0.69, 0.92, 0.90, 0, 1.0),
    (0.0, 0.0, 0.0, 0.6624, 0.874, 0.88, 0, -0.8),
    (-0.22, 0.0, -0.25, 0.41, 0.16, 0.21, 108, -0.2),
    (0.22, 0.0, -0.25, 0.31, 0.11, 0.22, 72, -0.2),
    (0.0, 0.35, -0.25, 0.21, 0.25, 0.5, 0, 0.1),
    (0.0, 0.1, -0.25, 0.046, 0.046, 0.046, 0, 0.1),
    (-0.08, -0.65, -0.25, 0.046, 0.023, 0.02, 0, 0.1),
    (0.06, -0.65, -0.25, 0.046, 0.023, 0.02, 90, 0.1),
    (0.06, -0.105, 0.625, 0.056, 0.04, 0.1, 90, 0.2),
    (0.0, 0.1, 0.625, 0.056, 0.056, 0.1, 0, -0.2),
]


def draw_shepp_logan(rng: np.random.Generator) -> dict:
    """Shepp-Logan ellipsoids with random scale, rotation about z, shifts, shapes and contrasts."""
    scale = rng.uniform(0.85, 1.05)
    turn = rng.uniform(-15, 15)
    ell = []
    for i, (x0, y0, z0, a, b, c, phi, v) in enumerate(_SHEPP):
        if i >= 2:  # the skull and brain keep their contrast; inner structures vary
            x0, y0, z0 = x0 + rng.uniform(-0.03, 0.03), y0 + rng.uniform(-0.03, 0.03), z0 + rng.uniform(-0.03, 0.03)
            a, b, c = a * rng.uniform(0.9, 1.1), b * rng.uniform(0.9, 1.1), c * rng.uniform(0.9, 1.1)
            phi, v = phi + rng.uniform(-8, 8), v * rng.uniform(0.7, 1.3)
        t = math.radians(turn)
        xr, yr = x0 * math.cos(t) - y0 * math.sin(t), x0 * math.sin(t) + y0 * math.cos(t)
        ell.append([xr * scale, yr * scale, z0 * scale, a * scale, b * scale, c * scale, phi + turn, v])
    return {"ellipsoids": ell}


def render_shepp_logan(p: dict, g) -> torch.Tensor:
    out = R.empty(g)
    for x0, y0, z0, a, b, c, phi, v in p["ellipsoids"]:
        R.paint_ellipsoid(out, g, v, (x0, y0, z0), (a, b, c), R.rotation((math.radians(phi), 0, 0)), mode="add")
    return out.clamp_(0.0, 1.0)


# -- random ellipsoids -----------------------------------------------------------------------------
def draw_ellipsoids(rng: np.random.Generator) -> dict:
    """A body ellipsoid holding 8–20 randomly oriented ellipsoids of random density."""
    body = [0.0, 0.0, 0.0, rng.uniform(0.6, 0.9), rng.uniform(0.6, 0.9), rng.uniform(0.75, 0.95),
            rng.uniform(0, 2 * math.pi), 0.0, 0.0, rng.uniform(0.15, 0.5), 0]
    ell = [body]
    for _ in range(int(rng.integers(8, 21))):
        d = rng.normal(size=3)
        r = rng.uniform(0, 0.6) ** (1 / 3)
        cx, cy, cz = d / np.linalg.norm(d) * r * np.array(body[3:6])
        ax = np.exp(rng.uniform(math.log(0.08), math.log(0.4), 3))
        add = rng.uniform() < 0.25
        v = rng.uniform(-0.2, 0.2) if add else rng.uniform(0.0, 1.0)
        ell.append([float(cx), float(cy), float(cz), *map(float, ax), *map(float, rng.uniform(0, 2 * math.pi, 3)),
                    float(v), int(add)])
    return {"ellipsoids": ell}


def render_ellipsoids(p: dict, g) -> torch.Tensor:
    out = R.empty(g)
    for x0, y0, z0, a, b, c, e1, e2, e3, v, add in p["ellipsoids"]:
        R.paint_ellipsoid(out, g, v, (x0, y0, z0), (a, b, c), R.rotation((e1, e2, e3)),
                          mode="add" if add else "set")
    return out.clamp_(0.0, 1.0)


# -- foam --------------------------------------------------------------------------------------------
def draw_foam(rng: np.random.Generator) -> dict:
    """A solid cylinder along z with 250–600 spherical voids (radii log-uniform, may overlap)."""
    radius, half_h = rng.uniform(0.8, 0.92), rng.uniform(0.85, 0.95)
    n = int(rng.integers(250, 601))
    rr = np.exp(rng.uniform(math.log(0.03), math.log(0.12), n))
    ang = rng.uniform(0, 2 * math.pi, n)
    rad = radius * np.sqrt(rng.uniform(0, 1, n))
    zc = rng.uniform(-half_h, half_h, n)
    voids = np.stack([rad * np.cos(ang), rad * np.sin(ang), zc, rr], axis=1)
    return {"radius": radius, "half_height": half_h, "material": rng.uniform(0.7, 1.0),
            "voids": voids.round(5).tolist()}


def render_foam(p: dict, g) -> torch.Tensor:
    out = R.cylinder_mask(g, p["radius"], p["half_height"], soft=1e-3) * p["material"]
    eye = np.eye(3)
    for x0, y0, z0, r in p["voids"]:
        R.paint_ellipsoid(out, g, 0.0, (x0, y0, z0), (r, r, r), eye, mode="set")
    return out.clamp_(0.0, 1.0)


# -- texture: smooth gradients + fine structure (hard for TV) ----------------------------------------
def draw_texture(rng: np.random.Generator) -> dict:
    """A soft-edged body whose density varies smoothly, with 4–8 inclusions that hold a trabecular
    network (thin sheets of a band-pass level set), fine band-limited texture or a smooth blob."""
    body = {"axes": [rng.uniform(0.7, 0.9), rng.uniform(0.7, 0.9), rng.uniform(0.8, 0.95)],
            "angle": rng.uniform(0, 2 * math.pi), "base": rng.uniform(0.25, 0.45),
            "grad": rng.uniform(0.08, 0.2), "shell": rng.uniform(0.0, 0.4), "seed": int(rng.integers(2**31))}
    inc = []
    for _ in range(int(rng.integers(4, 9))):
        d = rng.normal(size=3)
        c = d / np.linalg.norm(d) * rng.uniform(0, 0.7) * np.array(body["axes"])
        inc.append({"center": c.tolist(), "axes": np.exp(rng.uniform(math.log(0.12), math.log(0.35), 3)).tolist(),
                    "euler": rng.uniform(0, 2 * math.pi, 3).tolist(), "kind": str(rng.choice(["trabecular", "texture", "blob"])),
                    "level": rng.uniform(0.3, 0.9), "contrast": rng.uniform(0.15, 0.45),
                    "freq": rng.uniform(2.5, 6.0), "seed": int(rng.integers(2**31))})
    return {"body": body, "inclusions": inc}


def render_texture(p: dict, g) -> torch.Tensor:
    b = p["body"]
    rot = R.rotation((b["angle"], 0, 0))
    rng = np.random.default_rng(b["seed"])
    smooth = R.fourier_field(g, rng, 48, 0.25, 1.2, spectrum=1.0)
    out = R.empty(g)
    R.paint_ellipsoid(out, g, 1.0, (0, 0, 0), b["axes"], rot, soft=0.03)
    inner = R.empty(g)
    R.paint_ellipsoid(inner, g, 1.0, (0, 0, 0), [a - 0.06 for a in b["axes"]], rot, soft=0.03)
    density = b["base"] + b["grad"] * smooth
    out = out * (density + b["shell"] * (1.0 - inner))
    for inc in p["inclusions"]:
        win, m = R.ellipsoid_mask(g, inc["center"], inc["axes"], R.rotation(inc["euler"]), soft=0.02)
        if m.numel() == 0:
            continue
        sub = tuple(a[w] for a, w in zip(g, win))
        irng = np.random.default_rng(inc["seed"])
        if inc["kind"] == "trabecular":
            f = R.fourier_field(sub, irng, 64, inc["freq"] * 0.7, inc["freq"] * 1.3)
            sheet = R.smoothstep((0.35 - f.abs()) / 0.35)  # thin walls where the field crosses zero
            val = inc["level"] * (0.3 + 0.7 * sheet)
        elif inc["kind"] == "texture":
            f = R.fourier_field(sub, irng, 64, inc["freq"], inc["freq"] * 2.0)
            val = inc["level"] + inc["contrast"] * 0.5 * f
        else:
            f = R.fourier_field(sub, irng, 16, 0.8, 2.0)
            val = inc["level"] + inc["contrast"] * 0.5 * f
        block = out[win]
        block.mul_(1.0 - m).add_(m * val)
    return out.clamp_(0.0, 1.0)


FAMILY_FUNCS = {
    "shepp_logan": (draw_shepp_logan, render_shepp_logan),
    "ellipsoids": (draw_ellipsoids, render_ellipsoids),
    "foam": (draw_foam, render_foam),
    "texture": (draw_texture, render_texture),
}
