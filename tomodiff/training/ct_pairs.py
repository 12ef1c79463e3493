"""Simulated sparse-view scans of training slices: the conditions of a conditional CT prior.

In CT, condition–output pairs cost nothing: project a clean training slice with a random
parallel-beam acquisition, add noise, reconstruct it classically, and the reconstruction (with
its streaks, limited-angle wedges and noise) is the condition ``c`` for the clean slice ``x``.
A conditional denoiser ``D(x_t, c, σ)`` trained on such pairs learns what sparse-view artefacts
look like; :mod:`tomodiff.samplers.cfg` combines it with its unconditional self
(classifier-free guidance) and with data consistency.

One acquisition per batch (all its slices share the angles, noise level differs per slice),
drawn from ``(run_seed, step)`` only, so a resumed run sees the same pairs:

- views: log-uniform integers in ``views`` (default 4–64);
- arc: the full 180° with probability ``1 - arc_prob``, else uniform in ``arc_deg`` (a limited arc);
- a random start angle;
- noise: Gaussian, std ``ν · max(y)`` per slice with ν log-uniform in ``noise`` (0.2–3 %);
- condition: FBP with the Hann filter (:func:`tomodiff.recon.fbp`), the reconstruction a user
  gets first and the one ``method="cfg"`` computes from the measured ``y``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..ct import Projector, parallel_beam
from ..recon.fbp import fbp


@dataclass(frozen=True)
class Acquisition:
    """A parallel-beam acquisition of a ``size``² slice: its angles (radians) and relative noise."""

    angles: tuple
    noise: tuple

    @property
    def views(self) -> int:
        return len(self.angles)

    @property
    def arc_deg(self) -> float:
        a = np.asarray(self.angles)
        return float(np.degrees(a[-1] - a[0]) * len(a) / max(len(a) - 1, 1)) if len(a) > 1 else 0.0


def random_acquisition(rng: np.random.Generator, batch: int, *, views=(4, 64), arc_prob: float = 0.3,
                       arc_deg=(60.0, 180.0), noise=(0.002, 0.03)) -> Acquisition:
    """Draw one acquisition (see the module docstring)."""
    n = int(round(math.exp(rng.uniform(math.log(views[0]), math.log(views[1])))))
    start = float(rng.uniform(0.0, math.pi))
    if rng.random() < arc_prob:
        arc = math.radians(float(rng.uniform(*arc_deg)))
        angles = start + np.linspace(0.0, arc, n, endpoint=True)
    else:
        angles = start + np.linspace(0.0, math.pi, n, endpoint=False)
    nu = np.exp(rng.uniform(math.log(noise[0]), math.log(noise[1]), size=batch))
    return Acquisition(tuple(float(a) for a in angles), tuple(float(v) for v in nu))


def scan_and_reconstruct(clean: torch.Tensor, acq: Acquisition, generator: torch.Generator) -> torch.Tensor:
    """FBP of a noisy simulated scan of each slice of ``clean`` ``(B, 1, S, S)`` (data units);
    returns the conditions ``(B, 1, S, S)``."""
    S = clean.shape[-1]
    A = Projector(parallel_beam((S, S), np.asarray(acq.angles)), device=clean.device)
    with torch.no_grad():
        y = A(clean)
        scale = torch.tensor(acq.noise, dtype=y.dtype, device=y.device).view(-1, 1, 1, 1)
        peak = y.flatten(1).amax(1).view(-1, 1, 1, 1).clamp_min(1e-6)
        y = y + scale * peak * torch.randn(y.shape, generator=generator).to(y.device)
        return fbp(A, y)
