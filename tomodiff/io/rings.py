"""Stripe (ring) and zinger removal on sinograms, by algotom's algorithms.

A detector pixel whose gain the flat field does not correct draws a vertical stripe in every
sinogram, which a reconstruction turns into a ring about the rotation axis; a zinger (a cosmic ray
or scattered photon hitting one pixel in one frame) is a bright speck. The steps here are algotom's
(``algotom.prep.removal``; Vo, Atwood & Drakopoulos, Opt. Express 26, 28396 (2018) for stripes,
Opt. Express 29, 17849 (2021) for zingers), applied to each detector row's sinogram ``(A, U)``.
They work on the transmission ``T = exp(−p)`` (as algotom's own pipelines do, before the log) and
give back line integrals.

A chain is written ``STEP[+STEP...]``, each ``NAME[:KEY=VALUE[:KEY=VALUE...]]``, e.g. ``sort``,
``filter:sigma=3:size=21``, ``zinger+all``. Steps and their defaults (:data:`STEPS`):

- ``sort``: sorting-based (``remove_stripe_based_sorting``; size 21): partial and full stripes.
- ``filter``: filtering-based (``remove_stripe_based_filtering``; sigma 3, size 21): smooth stripes.
- ``all``: algotom's combination for large, dead and small stripes (``remove_all_stripe``; snr 3,
  la_size 51, sm_size 21).
- ``zinger``: zinger removal (``remove_zinger``; threshold 0.08, size 2), on the transmission.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: step name -> (algotom function in algotom.prep.removal, {parameter: default})
STEPS = {
    "sort": ("remove_stripe_based_sorting", {"size": 21}),
    "filter": ("remove_stripe_based_filtering", {"sigma": 3.0, "size": 21}),
    "all": ("remove_all_stripe", {"snr": 3.0, "la_size": 51, "sm_size": 21}),
    "zinger": ("remove_zinger", {"threshold": 0.08, "size": 2}),
}
_INTS = {"size", "la_size", "sm_size"}


@dataclass(frozen=True)
class Step:
    """One step of a chain: ``name`` (a key of :data:`STEPS`) and its parameters."""

    name: str
    params: tuple

    @property
    def function(self) -> str:
        return "algotom.prep.removal." + STEPS[self.name][0]

    def as_dict(self) -> dict:
        return {"step": self.name, "function": self.function, **dict(self.params)}


def parse_chain(text: str) -> tuple[Step, ...]:
    """The steps of ``STEP[+STEP...]`` (see the module docstring), else a ValueError naming the
    fault (unknown step or parameter, a value that is not a positive number)."""
    steps = []
    for part in str(text).split("+"):
        name, *kvs = part.strip().split(":")
        if name not in STEPS:
            raise ValueError(f"--rings {text!r}: unknown step {name!r}; expected one of {', '.join(STEPS)} "
                             "(joined by +, e.g. zinger+sort)")
        params = dict(STEPS[name][1])
        for kv in kvs:
            key, sep, value = kv.partition("=")
            if not sep or key not in params:
                raise ValueError(f"--rings {text!r}: {name} takes {', '.join(f'{k}=' for k in params)}; got {kv!r}")
            try:
                v = float(value)
            except ValueError:
                raise ValueError(f"--rings {text!r}: {key}={value!r} is not a number") from None
            if not (math.isfinite(v) and v > 0) or (key in _INTS and v != int(v)):
                raise ValueError(f"--rings {text!r}: {key} must be a positive {'integer' if key in _INTS else 'number'}"
                                 f", got {value!r}")
            params[key] = int(v) if key in _INTS else v
        steps.append(Step(name, tuple(params.items())))
    return tuple(steps)


def _apply(step: Step, t: np.ndarray) -> np.ndarray:
    from algotom.prep import removal  # start-up time: algotom pulls numba (~1 s)

    fn = getattr(removal, STEPS[step.name][0])
    kw = dict(step.params)
    if step.name == "zinger":
        return fn(t, kw["threshold"], size=kw["size"])
    if step.name == "all":
        return fn(t, kw["snr"], kw["la_size"], kw["sm_size"])
    return fn(t, **kw)


def remove_rings(p: np.ndarray, chain, *, min_transmission: float = 1e-4) -> np.ndarray:
    """Line integrals ``p`` ``(A, V, U)`` (or ``(A, U)``) after the steps of ``chain`` (a string or
    :func:`parse_chain`'s steps), row by row, float32 of the same shape. Transmission is clipped
    below at ``min_transmission`` before the log, as in :func:`tomodiff.io.scans.normalize`."""
    steps = parse_chain(chain) if isinstance(chain, str) else tuple(chain)
    arr = np.asarray(p, np.float32)
    two_d = arr.ndim == 2
    s = arr[:, None, :] if two_d else arr
    if s.ndim != 3:
        raise ValueError(f"line integrals must be (A, U) or (A, V, U), got shape {arr.shape}")
    out = np.empty_like(s)
    for v in range(s.shape[1]):
        t = np.exp(-s[:, v].astype(np.float64)).astype(np.float32)
        for step in steps:
            t = _apply(step, t)
        out[:, v] = -np.log(np.clip(t, min_transmission, None))
    return out[:, 0] if two_d else out


def provenance(chain) -> list[dict]:
    """What :func:`remove_rings` did, for the output's provenance: one dict per step."""
    steps = parse_chain(chain) if isinstance(chain, str) else tuple(chain)
    return [s.as_dict() for s in steps]
