"""The functions that solve one slab, named by the method registry (:mod:`tomodiff.methods`).

``solve_classical`` runs FBP, SIRT, CGLS or TV with the registry's defaults (TV's weight from the
noise level where it is known, :func:`tv_weight`); ``solve_diffusion``
draws posterior samples of one slab with a prior, pulling in the slices it shares with finished
neighbours and warm starts. Both are the only place where a method's options become a call, for
the in-memory, streaming and torchrun paths alike.
"""

from __future__ import annotations

import hashlib
import warnings

import torch

from .. import methods
from ..samplers import known_slices, sample_posterior, z_smoothing
from .cgls import cgls
from .consistency import data_consistency
from .fbp import fbp
from .sirt import sirt
from .tv import tv
from .tv_weight import discrepancy_weight
from .warm_start import warm_start
from .weights import SqrtWeighted, check_weights, normalized

_CLASSICAL = {"sirt": sirt, "cgls": cgls, "tv": tv}


def solve_classical(A, y, method: str, options: dict, *, sigma_y: float | None = None, progress: bool = False,
                    callback=None):
    """``(x, options as used, notes)`` of classical ``method`` on ``(A, y)``; ``x`` is ``(B, C, *A.domain_shape)``.

    sigma_y: the noise std in ``y``'s units, ``None`` or 0 when unknown. TV without ``lam`` takes its
        weight from it (:func:`tv_weight`); FBP, SIRT and CGLS do not use it. With ``weights``, the
        std of the whitened noise: ``(mean 1/Var)^{-½}`` for ``weights = 1/Var``
        (:func:`tomodiff.io.noise.weights_from_variance` returns weights of mean 1 with that meaning).
    options["weights"]: PWLS weights per ray for sirt, cgls and tv (:mod:`tomodiff.recon.weights`);
        TV's weight search then runs on the whitened problem ``(W̃^½ A, W̃^½ y)``.
    callback: ``callback(done, total)`` after each iteration (FBP: once; TV's weight search reports
        ``done = 0``, so that raising in the callback aborts it too).
    notes: ``{}``, or for TV ``{"tv_weight": record}`` (:func:`tv_weight`), for provenance; with weights
        also ``{"weights": {"rule": "PWLS", "min", "max"}}`` (of the weights rescaled to mean 1), and the
        options as used name the weights instead of holding the tensor.
    """
    opts = methods.with_defaults(method, options)
    weights = opts.get("weights")
    notes = {}
    if weights is not None:
        if method not in _CLASSICAL:
            raise ValueError(f"{method}: weights (PWLS) apply to sirt, cgls and tv, not {method}")
        w = normalized(check_weights(A, weights, y, method))
        opts["weights"] = w
        notes["weights"] = {"rule": "PWLS: 1/variance per ray, rescaled to mean 1", "min": float(w.min()),
                            "max": float(w.max())}
    if callback is not None and method != "fbp":
        opts["callback"] = lambda k, x: callback(k, opts["n_iter"])
    if method == "fbp":
        out = fbp(A, y, **opts)
        if callback is not None:
            callback(1, 1)
        return out, opts, {}
    if method != "tv":
        return _CLASSICAL[method](A, y, progress=progress, **opts), _described(opts), notes
    searched = "lam" not in opts
    # the weight search and the χ²/m check see the whitened problem: PWLS TV is plain TV on it
    A_s, y_s = (A, y) if weights is None else (SqrtWeighted(A, opts["weights"]), opts["weights"].sqrt() * y)
    if searched:
        opts["lam"], record = tv_weight(A_s, y_s, sigma_y, nonneg=opts.get("nonneg", True), op_norm=opts.get("op_norm"),
                                        callback=None if callback is None else lambda k, x: callback(0, opts["n_iter"]))
    else:
        record = {"rule": "given", "lam": float(opts["lam"])}
    x = tv(A, y, progress=progress, **opts)
    if searched and record["target"] is not None:  # the result's own χ²/m (the search's points iterated more)
        record["result_chi2_per_m"] = data_consistency(A_s, x, y_s, sigma_y)["chi2_per_m"]
    return x, _described(opts), {"tv_weight": record, **notes}


def _described(opts: dict) -> dict:
    """The options as used, with a weights tensor named by its shape (provenance holds no arrays)."""
    w = opts.get("weights")
    if isinstance(w, torch.Tensor):
        return {**opts, "weights": f"PWLS per ray, shape {tuple(w.shape)}, mean 1"}
    return opts


def tv_weight(A, y, sigma_y: float | None, **kw) -> tuple[float, dict]:
    """TV's weight for ``(A, y)`` and how it was chosen: with a noise level ``sigma_y > 0`` the
    discrepancy rule (the result's χ²/m = :data:`tomodiff.methods.TV_CHI2_TARGET`,
    :func:`~tomodiff.recon.tv_weight.discrepancy_weight`), without one the old rule (0.006 × views)."""
    return discrepancy_weight(A, y, sigma_y or None, target=methods.TV_CHI2_TARGET, **kw)


def data_variance(prior, default: float) -> float:
    """The prior's data variance in data units (EDM's σ_data, un-normalised), for ΠGDM/DDS's r_t²."""
    net = getattr(prior, "net", None)
    if net is not None and hasattr(net, "sigma_data") and hasattr(net, "scale"):
        return float(net.sigma_data / net.scale) ** 2
    return default


def diffusion_options(method: str, prior, options: dict) -> dict:
    """The sampler options of ``method`` as used: registry defaults, the prior's data variance and σ_max."""
    opts = methods.with_defaults(method, options)
    if method in ("pigdm", "dds", "diffpir", "cfg"):
        opts.setdefault("data_var", data_variance(prior, 1.0))
    if getattr(prior, "sigma_max", None) is not None:  # start where the prior was trained, not above
        opts.setdefault("sigma_max", float(prior.sigma_max))
    if method == "pigdm":  # a few CG iterations per step suffice for guidance (DESIGN: 10)
        opts.setdefault("cg_max_iter", 10)
        opts.setdefault("cg_tol", 1e-3)
    return opts


def guided_denoiser(prior, A_k, y_k, w: float):
    """Classifier-free guidance for one slab: the conditional prior given the slab's FBP (Hann, as the
    training pairs were made: :mod:`tomodiff.training.ct_pairs`) at guidance weight ``w``."""
    if not hasattr(prior, "guided"):
        raise ValueError(f"method 'cfg' needs a conditional prior such as 'ct-cond' (trained with tomodiff "
                         f"train-prior --conditional), got {getattr(prior, 'name', type(prior).__name__)!r}")
    return prior.guided(fbp(A_k, y_k, filter="hann"), w)


def slab_generators(seed: int, slab_index: int, n_samples: int) -> list[torch.Generator]:
    """One generator per (slab, sample): a resumed run, another rank or a single sample redraws the
    same numbers."""
    return [torch.Generator().manual_seed(int(hashlib.sha256(f"{seed}/{slab_index}/{i}".encode()).hexdigest()[:15], 16))
            for i in range(n_samples)]


def _coupling(A_k, z_coupling: float, left, right) -> list:
    """Guidance that makes a slab agree with its neighbours: TV along Z, and the shared slices of
    finished neighbours as known slices (``left``/``right``: ``(n, B, C, s, Y, X)`` or ``None``)."""
    guidance = []
    if len(A_k.domain_shape) == 3 and z_coupling > 0:
        guidance.append(z_smoothing(z_coupling))
    if left is not None:
        guidance.append(known_slices(left.reshape(-1, *left.shape[2:]), start=0))
    if right is not None:
        guidance.append(known_slices(right.reshape(-1, *right.shape[2:]), start=A_k.domain_shape[0] - right.shape[3]))
    return guidance


def solve_diffusion(prior, A_k, y_k, k: int, *, method: str, steps: int, n_samples: int, sigma_y: float,
                    seed: int, z_coupling: float, opts: dict, left=None, right=None, progress=True, callback=None):
    """Posterior samples of slab ``k`` (the sampler's result; ``.samples`` is ``(n, B, C, Z_k, Y, X)``).

    prior: a prior (its ``.denoiser``) or a denoiser ``D(x, sigma)``; ``cfg`` needs a conditional prior
    (:class:`~tomodiff.priors.conditional_prior.ConditionalPrior`). opts: :func:`diffusion_options`; a
    string warm start ``x_init`` (``"fbp" | "sirt" | "tv"``) becomes that reconstruction of the slab's
    data. left, right: see :func:`_coupling`.
    """
    kw = dict(opts)
    denoiser = getattr(prior, "denoiser", prior)
    if method == "cfg":  # the guided denoiser, then DDS's data consistency
        denoiser, method = guided_denoiser(prior, A_k, y_k, kw.pop("w")), "dds"
    if isinstance(kw.get("x_init"), str) and not hasattr(A_k, "adjoint"):
        # a classical warm start needs a linear operator; a nonlinear one (Beer–Lambert counts) samples from σ_max
        warnings.warn(f"{method}: the warm start x_init={kw['x_init']!r} needs a linear operator and "
                      f"{type(A_k).__name__} is not; sampling from sigma_max instead", RuntimeWarning, stacklevel=2)
        kw["x_init"], kw["sigma_start"] = None, None
    if isinstance(kw.get("x_init"), str):
        kw["x_init"] = warm_start(A_k, y_k, kw["x_init"])
    if method == "sdedit" and kw.get("x_init") is None and getattr(A_k, "geometry", None) is not None:
        kw["x_init"] = fbp(A_k, y_k, filter="hann", nonneg=True)
    if callback is not None:
        kw["callback"] = callback
    guidance = _coupling(A_k, z_coupling, left, right)
    return sample_posterior(denoiser, A_k, y_k, method=method, sigma_y=sigma_y, steps=steps, n_samples=n_samples,
                            generator=slab_generators(seed, k, n_samples), guidance=guidance or None,
                            progress=progress, **kw)
