"""The reconstruction methods: one registry entry per method, read by every face of the package.

Each :class:`Method` carries its name, its kind (classical or diffusion), a one-line summary for
help texts, its default options and steps, what the slab engine needs to know (does the result
scale with ``y``; is it exact slice by slice), and the function that solves one slab, named as
``"module:function"`` so that reading the table (the CLI's parser, ``--help``) imports nothing
heavy. ``reconstruct()``, ``reconstruct_file()``, the CLI's choices and help, napari, the demo,
the benchmark and ``auto`` all read it; nothing else lists methods.

``auto`` is the sampler sweep's winner: an alias resolved by :func:`resolve` to a diffusion
method with its steps and options (see :data:`AUTO` for where they were chosen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

#: defaults shared by the front ends (library, CLI, streaming, napari)
DEFAULT_STEPS = 50  # diffusion steps = NFE per slab, where the method has no steps of its own
DEFAULT_SAMPLES = 4  # posterior samples of the CLI and the demo: the fewest that give a usable std
DEFAULT_SLAB = 32  # axial slices per slab
DEFAULT_OVERLAP = 4  # slices shared by neighbouring slabs (diffusion, TV, CGLS)
DEFAULT_Z_COUPLING = 0.02  # weight of TV along Z on every denoised estimate
#: without a noise level from the user or the file, σ_y = this × max|y| (a guess: χ²/m then
#: cannot confirm a fit on real data)
SIGMA_Y_FRACTION = 0.01
# TV weight per projection angle: the data term grows with the number of views, so the best λ does
# too. Chosen on training-seed phantoms (shepp_logan:11, texture:12 at 64², 1% noise; best λ was
# 0.03–0.1 at 8 views and 0.1–0.3 at 16), never on the benchmark set.
TV_LAM_PER_VIEW = 0.006
# With a known noise level σ_y, TV's weight is chosen instead so that the result's χ²/m (‖A x − y‖² over
# m σ_y²) is this target (recon/tv_weight.py, a discrepancy principle). Tuned on real CT training
# volumes (philips_head_phantom, tooth_industrial, carp_fish, engine_block, bonsai_tree; 64², 16 slices,
# 8/16 views, noise 0.5/1/2%) and checked on three others (lidc0314_chest, mricrogl_head_ct, vhf_pelvis),
# never on held-out volumes: benchmarks/tv_weight_rule.py, table in benchmarks/results/tv_weight_rule.md.
# Morozov's χ²/m = 1 over-smooths this TV (its best results fit the data to χ²/m 0.5–0.9).
TV_CHI2_TARGET = 0.8

CLASSICAL_SOLVER = "tomodiff.recon.solvers:solve_classical"
DIFFUSION_SOLVER = "tomodiff.recon.solvers:solve_diffusion"


@dataclass(frozen=True)
class Method:
    """One reconstruction method.

    name: what users type; kind: ``"classical"`` or ``"diffusion"``; summary: one line for help
    texts; options: default options (read-only); steps: default diffusion steps (``None`` for
    classical methods); linear: the result is proportional to ``y`` (the scale step cannot change
    it); separable: exact slice by slice in parallel beam, so slabs need no overlap; solver:
    ``"module:function"`` that solves one slab; alias_of: for ``auto``, the method it resolves to;
    prior: the shipped prior it runs with when none is named (``None``: the package default).
    """

    name: str
    kind: str
    summary: str
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    steps: int | None = None
    linear: bool = False
    separable: bool = False
    solver: str = CLASSICAL_SOLVER
    alias_of: str | None = None
    prior: str | None = None

    @property
    def diffusion(self) -> bool:
        return self.kind == "diffusion"


def _frozen(**options) -> MappingProxyType:
    return MappingProxyType(dict(options))


def _classical(name, summary, *, linear=False, separable=False, **options) -> Method:
    return Method(name, "classical", summary, _frozen(**options), linear=linear, separable=separable)


def _diffusion(name, summary, *, steps=DEFAULT_STEPS, alias_of=None, prior=None, **options) -> Method:
    return Method(name, "diffusion", summary, _frozen(**options), steps=steps, solver=DIFFUSION_SOLVER,
                  alias_of=alias_of, prior=prior)


# The sweep's winner (benchmarks/sampler_sweep.py, table in benchmarks/results/sampler_sweep.md): swept
# with slice-64 at 8 views on training-seed phantoms shepp_logan:11, texture:12, ellipsoids:13, foam:14
# (central 8 slices, 1% noise): DDS as its paper runs it (CG on the least-squares problem, 2 iterations
# per step, η 0.85, TV along Z by ADMM ρ 10, λ 0.04), warm-started from TV at σ_start = 0.1, 20 steps.
# auto keeps its own data fit: no final step (final_cg 0 overrides dds's final stop, FINAL_STOP below; the stop
# could only lower auto's χ²/m, already 0.45–1.3 on held-out volumes, and its interval k was fitted without it).
AUTO = {"method": "dds", "steps": 20,
        "options": {"prox": False, "cg_iters": 2, "tv_z": (10.0, 0.04), "x_init": "tv", "sigma_start": 0.1,
                    "final_cg": 0}}

# Classifier-free guidance (recon/solvers.py:guided_denoiser): the guided denoiser
# (1 + w)·D(x, c) − w·D(x) with c the slab's FBP, inside DDS with AUTO's data-consistency settings.
# w and the start were chosen with ct-cond (step 10,750) on its training volumes lidc0314_chest,
# mricrogl_head_ct, vhf_pelvis (64², central 8 slices, 8/16 views, 1% noise), by the mean PSNR over both
# view counts: of w in {0, 0.5, 1} cold or warm-started from TV at σ 0.1 / 0.3, w 0 from TV at σ 0.1 was
# best (guidance added nothing once warm-started, at twice the network cost); benchmarks/cfg_weight.py,
# table in benchmarks/results/cfg_weight.md.
CFG = {"steps": 20, "options": {"w": 0.0, "prox": False, "cg_iters": 2, "tv_z": (10.0, 0.04), "x_init": "tv",
                                "sigma_start": 0.1}}

# ΠGDM on CT takes the Gaussian Jacobian (no backpropagation; samplers/pigdm.py): backpropagating through
# ct-slice collapsed at 4 views on real CT training volumes (13.1 dB against SIRT's 20.9) at 2.5–3.7× the
# time (benchmarks/pigdm_jacobian.py, table in benchmarks/results/pigdm_jacobian.md). Its old 2 final CG
# iterations brought χ²/m from 1.4–3.3 into [0.5, 2] there, but overshoot to 0.5–0.8 at 4 views (below).

# The final data-consistency step of dds, diffpir, sdedit and pigdm (issue 20; samplers/discrepancy.py): CG
# on the data term from each sample, stopped where its χ²/m reaches 1 with the noise level known (the
# discrepancy principle; not tuned), at most 50 iterations. It only removes misfit the noise cannot explain:
# a sample that already fits to χ²/m 1 is left as it is (so it cannot lift auto's and cfg's χ²/m of 0.45–0.5).
FINAL_STOP = {"final_cg": 50, "final_target": 1.0}
# The warm start of dds, diffpir and pigdm (as dps and auto): TV (weight 0.006 × views) plus noise at σ 0.1.
WARM_TV = {"x_init": "tv", "sigma_start": 0.1}
#
# Chosen with ct-slice on training volumes only: real CT lidc0314_chest, philips_head_phantom (64², as
# benchmarks/dps_step.py) and the training-seed phantoms shepp_logan:11:64, texture:12:64; central 4 slices,
# 4/8/16/32 views, 1% noise, true σ_y, default steps, mean of 2 samples (benchmarks/defaults_sweep.py, table
# in benchmarks/results/defaults_sweep.md). Worst PSNR margin over SIRT on one volume (dB) at 4/8/16/32 views,
# real CT | phantoms, with the final stop; χ²/m of the mean 0.8–1.0 wherever the stop is on:
#   SIRT PSNR 17.2/20.1/23.1/25.7 | 18.8/22.3/24.8/26.4 (mean); TV −0.9/+1.4/+1.3/+2.2 | −0.7/+1.4/+3.1/+3.7.
#   dds cold (old default) −0.4/+0.9/+1.7/+1.5 | −0.7/−0.3/−0.0/+1.3 at χ²/m 1.5–5.4, with the stop
#     −0.4/+1.0/+1.9/+1.9 | −0.6/−0.2/+0.2/+1.7; from TV σ 0.1 with the stop −0.03/+2.1/+3.0/+3.1 |
#     +0.1/+3.0/+5.0/+4.4 (PSNR 17.7/23.3/27.9/30.5 | 19.0/26.1/30.1/31.8): chosen. Without the stop the
#     same samples sit at χ²/m 1.4–6.3 (up to 0.4 dB lower).
#   diffpir: the same picture (cold −0.4/+1.1/+2.2/+2.6 | −0.6/−0.2/+0.4/+2.5 with the stop); from TV σ 0.1
#     with the stop −0.03/+2.1/+3.0/+3.2 | +0.1/+3.0/+5.0/+4.5: chosen.
#   pigdm: cold with the old final_cg 2 −0.3 on philips_head at 4 views (χ²/m 0.52–0.84 there), cold with the
#     stop −0.3/+1.6/+2.4/+2.9 | −0.3/+0.1/+0.7/+2.9; from TV σ 0.1 with the stop −0.03/+2.2/+3.0/+3.2 |
#     +0.1/+2.9/+4.9/+4.3: chosen.
#   sdedit: from the FBP at t0 0.35 (old default) −3.5/−2.1/−2.3/−4.6 at χ²/m 5–980, with the stop
#     −1.0/−0.9/−0.5/−1.2 | −0.7/−1.0/−2.3/−2.2: the FBP is too poor a guide at 4–32 views. From TV at t0 0.35
#     with the stop −0.1/+2.0/+2.0/+1.2 | +0.2/+1.1/+0.7/+0.5; from TV at t0 0.2 (σ(t0) 0.034, 10 of 50 steps)
#     with the stop −0.07/+1.6/+2.7/+3.3 | −0.04/+3.6/+5.3/+5.1 (PSNR 17.6/22.7/27.8/31.0 | 18.9/26.3/32.0/33.9):
#     chosen (best mean PSNR over the views). It is still SDEdit: a classical estimate noised to σ(t0) and
#     denoised back, now the TV one, and the final stop is its only data step.
#   The one shortfall: philips_head_phantom at 4 views, where every start is 0.03–0.1 dB under SIRT (TV −0.9).
# DPS takes its step from the data fit, not a constant (samplers/dps.py, variant "line"): ζ 1.5 of the exact
# line search along DPS's direction, stopped where χ²/m reaches 1 with the noise level known (the
# discrepancy principle; not tuned), warm-started from TV at σ 0.1 (as auto is). Chosen with ct-slice on real
# CT training volumes lidc0314_chest and philips_head_phantom (64², central 8 slices, 4/8/16/32 views, 1%
# noise, true σ_y, 50 steps, mean of 2 samples; benchmarks/dps_step.py, table in
# benchmarks/results/dps_step.md; PSNR dB at 4/8/16/32 views): SIRT 17.3/20.3/23.3/25.8, TV 17.3/21.8/25.8/29.8;
# the old fixed ζ 0.3 16.5/18.7/20.5/21.3 at χ²/m 4–17; the line step alone (ζ 1.5, best of {0.5, 1, 1.5})
# 17.2/19.7/21.3/21.5, still below SIRT at 16–32 views even with 2 final CG iterations (22.1/23.5); from TV
# at σ 0.1 18.0/23.9/28.4/30.9 (χ²/m 0.5–0.8 before the stop existed), at σ 0.3 18.3/24.5/27.3/28.7.
DPS = {"zeta": 1.5, "variant": "line", "target": 1.0, "x_init": "tv", "sigma_start": 0.1}
SDEDIT = {"t0": 0.2, "x_init": "tv", **FINAL_STOP}
_ENTRIES = (
    _classical("fbp", "filtered backprojection (Hann window)", linear=True, separable=True, filter="hann"),
    _classical("sirt", "SIRT, 100 iterations", linear=True, separable=True, n_iter=100),
    _classical("cgls", "CGLS, 20 iterations", linear=True, n_iter=20),
    _classical("tv", f"TV-regularised least squares, 200 iterations (weight: chi2/m = {TV_CHI2_TARGET:g} with a known "
                     "noise level, else 0.006 x views; or --lam)", n_iter=200),
    _diffusion("pigdm", "ΠGDM: pseudoinverse-guided diffusion (CG in measurement space, Gaussian Jacobian), "
                        "warm-started from TV, final CG stopped at chi2/m 1", jacobian="gaussian", **WARM_TV,
               **FINAL_STOP),
    _diffusion("dps", "DPS: diffusion posterior sampling (gradient of the data misfit, line-searched step that stops "
                      "at chi2/m 1), warm-started from TV", **DPS),
    _diffusion("dds", "DDS: decomposed diffusion sampling (CG data consistency on each estimate), warm-started "
                      "from TV, final CG stopped at chi2/m 1", **WARM_TV, **FINAL_STOP),
    _diffusion("diffpir", "DiffPIR: plug-and-play diffusion with a proximal data step, warm-started from TV, "
                          "final CG stopped at chi2/m 1", **WARM_TV, **FINAL_STOP),
    _diffusion("sdedit", f"SDEdit: noise the TV reconstruction part way (t0 {SDEDIT['t0']:g}) and denoise it back, "
                         "then CG on the data stopped at chi2/m 1", **SDEDIT),
    _diffusion("cfg", "classifier-free guidance: the conditional prior ct-cond, given the FBP of the data, with "
                      "DDS data consistency", steps=CFG["steps"], prior="ct-cond", **CFG["options"]),
    _diffusion("auto", f"the sampler sweep's winner: {AUTO['method']} warm-started from TV, {AUTO['steps']} steps",
               steps=AUTO["steps"], alias_of=AUTO["method"], **AUTO["options"]),
)
METHODS: MappingProxyType = MappingProxyType({m.name: m for m in _ENTRIES})


def names(kind: str | None = None) -> tuple[str, ...]:
    """Method names in registry order, all or of one kind (``"classical"`` / ``"diffusion"``)."""
    return tuple(n for n, m in METHODS.items() if kind is None or m.kind == kind)


def get(name: str) -> Method:
    """The registry entry of ``name``; a ValueError listing the choices for an unknown one."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {names()}, got {name!r}") from None


def resolve(name: str, steps: int | None, options: dict) -> tuple[Method, int | None, dict]:
    """``(method, steps, options)`` for a run of ``name``: an alias becomes its target, with the
    alias's steps and options under the caller's (explicit values win); a diffusion method without
    ``steps`` gets its default. The method's own default options are applied by its solver
    (:func:`with_defaults`), so provenance keeps what the caller chose apart from what was used."""
    m = get(name)
    if m.alias_of is not None:
        options = {**m.options, **options}
        steps = m.steps if steps is None else steps
        m = get(m.alias_of)
    if m.diffusion and steps is None:
        steps = m.steps
    return m, steps, dict(options)


def with_defaults(name: str, options: dict) -> dict:
    """``options`` over the default options of method ``name``."""
    return {**get(name).options, **options}


def default_tv_weight(A) -> float:
    """TV's weight for operator ``A`` without a noise level: ``TV_LAM_PER_VIEW`` × its number of views
    (with one, ``method="tv"`` uses :func:`tomodiff.recon.tv_weight.discrepancy_weight` at
    ``TV_CHI2_TARGET``, which starts its search here)."""
    n_views = A.geometry.n_angles if hasattr(A, "geometry") else 16
    return TV_LAM_PER_VIEW * n_views


def help_lines() -> str:
    """``name: summary`` for every method, for ``--help`` texts."""
    return "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values())
