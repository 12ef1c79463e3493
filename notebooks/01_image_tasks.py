# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2D image tasks with ΠGDM and DPS
#
# Deblurring, 4× super-resolution, inpainting and outpainting are all `y = A x + σ n` with a linear operator
# `A`. The samplers only use the operator interface (`A.forward`, `A.adjoint`, and for ΠGDM `A.gram_solve`,
# the solve with `σ_y² I + r_t² A Aᵀ`), so one call, `tomodiff.samplers.sample_posterior`, solves all four —
# and an operator you compose yourself.
#
# Sizes are small so that the notebook runs in well under a minute on a laptop CPU: a 64² image and
# `STEPS = 25` sampler steps. More steps give better samples (`tomodiff demo2d` uses 50).

# %%
import os

import matplotlib.pyplot as plt
import torch

from tomodiff import phantoms, priors

torch.set_num_threads(1)  # 64² images gain little from more threads; on a busy machine they slow it down
# the 2D prior trained on 64² phantom slices; TOMODIFF_PRIOR=/path/to/prior.pt picks another file
prior = priors.load_file(os.environ["TOMODIFF_PRIOR"]) if "TOMODIFF_PRIOR" in os.environ else priors.load("slice-64")
print(prior, "trained for", prior.info["training"]["steps"], "steps")

# the test image: an axial slice of a held-out benchmark phantom (its seed is outside the training range)
x = phantoms.generate_slices("shepp_logan", (64, 64), phantoms.BENCHMARK_SEEDS.start, z=[-0.25])[None]  # (1, 1, 64, 64)


def psnr(estimate):
    """PSNR (dB) of an estimate in [0, 1] against the truth x."""
    return float(10 * torch.log10(1 / ((estimate.clamp(0, 1) - x) ** 2).mean()))


def show(images, titles, *, size=2.0):
    """One row of (1, 1, H, W) or (H, W) images in [0, 1]."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.4))
    for ax, img, title in zip(axes, images, titles):
        ax.imshow(img.reshape(img.shape[-2:]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    plt.show()


# %% [markdown]
# ## The operators
#
# Each is a `LinearOperator` with shapes, an adjoint that passes the dot-product test, and (here) a
# closed-form `gram_solve`.

# %%
from tomodiff.operators import (Downsample, GaussianBlur, GaussianNoise, Mask, center_mask, dot_test,
                                random_pixel_mask, simulate)

shape = (64, 64)
ops = {
    "deblurring": GaussianBlur(shape, 2.0, boundary="circular"),
    "super-resolution ×4": Downsample(shape, 4),
    "inpainting": Mask(random_pixel_mask(shape, 0.3, generator=torch.Generator().manual_seed(0))),
    "outpainting": Mask(center_mask(shape, 0.6)),
}
for name, A in ops.items():
    print(f"{name:20s} {A.domain_shape} -> {A.range_shape}  adjoint error {dot_test(A):.1e}  {A!r}")

# %% [markdown]
# ## Measurements and the pseudo-inverse
#
# Gaussian noise with σ_y = 0.01. The baseline is the regularised pseudo-inverse `Aᵀ(λI + AAᵀ)⁻¹y` — no prior,
# so missing pixels stay zero and blur stays.

# %%
SIGMA_Y = 0.01
ys = {name: simulate(A, x, GaussianNoise(SIGMA_Y), generator=torch.Generator().manual_seed(i + 1))
      for i, (name, A) in enumerate(ops.items())}
pinv = {name: A.adjoint(A.gram_solve(ys[name], sigma=1e-3 ** 0.5, r=1.0)) for name, A in ops.items()}

show([torch.nn.functional.interpolate(ys[n], size=shape) for n in ops], [f"{n}: y" for n in ops])
show(list(pinv.values()), [f"pseudo-inverse {psnr(v):.1f} dB" for v in pinv.values()])

# %% [markdown]
# ## ΠGDM and DPS
#
# `method="pigdm"` uses `p(y | x_t) ≈ N(A x̂0, σ_y² I + r_t² A Aᵀ)` with `r_t² = σ_d² σ_t² / (σ_d² + σ_t²)`
# (σ_d: the data's standard deviation, from the prior); `method="dps"` takes steps `ζ ∇‖y − A x̂0‖` whose size
# `zeta` needs tuning per task (the values below are the demo's). Both backpropagate through the denoiser: one
# NFE per step. `sigma_max=20` matches the prior's training noise range (data in [0, 1]).

# %%
from tomodiff.demos.methods import DPS_ZETA
from tomodiff.samplers import sample_posterior

STEPS = 25
data_var = (prior.net.sigma_data / prior.net.scale) ** 2   # σ_d² in [0, 1] data units
zeta = {"deblurring": DPS_ZETA["deblur"], "super-resolution ×4": DPS_ZETA["sr4"],
        "inpainting": DPS_ZETA["inpaint-pixels"], "outpainting": DPS_ZETA["outpaint"]}

results = {}
for name, A in ops.items():
    for method, options in [("pigdm", {"data_var": data_var}), ("dps", {"zeta": zeta[name]})]:
        r = sample_posterior(prior.denoiser, A, ys[name], method=method, sigma_y=SIGMA_Y, steps=STEPS,
                             sigma_max=20.0, generator=torch.Generator().manual_seed(0), progress=False, **options)
        results[name, method] = r
        print(f"{name:20s} {method:6s} PSNR {psnr(r.samples[0]):5.1f} dB  (pseudo-inverse {psnr(pinv[name]):5.1f})"
              f"  NFE {r.nfe}  {r.seconds:.1f} s")

# %%
for name in ops:
    show([torch.nn.functional.interpolate(ys[name], size=shape), pinv[name], results[name, "pigdm"].samples[0],
          results[name, "dps"].samples[0], x],
         [f"{name}: y", "pseudo-inverse", f"ΠGDM {psnr(results[name, 'pigdm'].samples[0]):.1f} dB",
          f"DPS {psnr(results[name, 'dps'].samples[0]):.1f} dB", "truth"])

# %% [markdown]
# ## Several samples: mean and uncertainty
#
# `n_samples` draws samples as one batch; `.mean` and `.std` are per pixel. The spread is large where the
# measurement says little (the missing pixels), small where it pins the image down.

# %%
r = sample_posterior(prior.denoiser, ops["inpainting"], ys["inpainting"], method="pigdm", sigma_y=SIGMA_Y,
                     steps=STEPS, sigma_max=20.0, n_samples=4, data_var=data_var, progress=False,
                     generator=[torch.Generator().manual_seed(s) for s in range(4)])
print(r, "PSNR of each sample:", [round(psnr(s), 1) for s in r.samples], "of the mean:", round(psnr(r.mean), 1))
show([*r.samples[:2], r.mean, r.std / r.std.max()],
     ["sample 1", "sample 2", f"mean {psnr(r.mean):.1f} dB", f"std (max {float(r.std.max()):.2f})"])

# %% [markdown]
# ## An operator of your own
#
# Operators compose with `@`. Blur followed by a pixel mask has no closed-form `(σ_y² I + r_t² A Aᵀ)⁻¹`, so
# ΠGDM switches to conjugate gradients in measurement space; DPS needs only the forward operator and autograd.
# Nothing else changes.

# %%
A = ops["inpainting"] @ GaussianBlur(shape, 1.0, boundary="circular")
y = simulate(A, x, GaussianNoise(SIGMA_Y), generator=torch.Generator().manual_seed(9))
out = {m: sample_posterior(prior.denoiser, A, y, method=m, sigma_y=SIGMA_Y, steps=STEPS, sigma_max=20.0,
                           generator=torch.Generator().manual_seed(0), progress=False, **o)
       for m, o in [("pigdm", {"data_var": data_var}), ("dps", {"zeta": zeta["inpainting"]})]}
show([y, out["pigdm"].samples[0], out["dps"].samples[0], x],
     ["blur + mask: y", f"ΠGDM (CG) {psnr(out['pigdm'].samples[0]):.1f} dB",
      f"DPS {psnr(out['dps'].samples[0]):.1f} dB", "truth"])
