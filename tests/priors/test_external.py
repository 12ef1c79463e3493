"""diffusers and MONAI networks as tomodiff priors (tomodiff.priors.external, .diffusers_prior, .monai_prior).

The exactness checks cannot be passed by a convention shared by mistake between the adapter and
the test: the stand-in networks below have the libraries' call signatures and compute their
targets with the libraries' own scheduler objects (``alphas_cumprod`` at integer timesteps,
``get_velocity`` for v, the ``add_noise`` convention checked first), in the [-1, 1] network range,
for a Gaussian prior N(MEAN, VAR) stated in data units [0, 1]. The reference is tomodiff's own
closed form in data units (GaussianPrior, its posterior). Through the adapter:

1. the denoiser is the closed-form E[x0 | x] at the network's timesteps (1e-8), for ε, v and x0
   prediction, diffusers and MONAI; with timestep="nearest" off the grid it is E[x0 | x] at σ(t);
2. ΠGDM's guided denoiser is the closed-form E[x0 | x_t, y] at every step (1e-8), and ΠGDM samples
   match the closed-form posterior mean and the sampler's exact finite-step variance law with the
   tolerances of tests/samplers (from the sample count, α = 1e-3);
3. a σ-scaling bug (σ_net = σ instead of 2σ) fails check 1 by far.

Then tiny randomly initialised real networks (UNet2DModel, DiffusionModelUNet 2D/3D) run end to end,
and the folder loaders (local files only) reproduce the in-memory priors and hash their files.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest
import torch
from samplers.conftest import ct_like, law_covariance, mc_tolerances, moment_errors
from samplers.test_pigdm_exact import (
    MEAN,
    N_SAMPLES,
    SHAPE,
    SIGMA_Y,
    VAR,
    _closed_form_conditional_mean,
    _operators,
    _problem,
)
from torch import nn

from tomodiff.priors import (
    GaussianPrior,
    PriorFileError,
    from_diffusers,
    from_monai,
    load_diffusers,
    load_monai,
    save_monai,
)
from tomodiff.priors.external import (
    ExternalPatchPrior,
    ExternalSlicePrior,
    files_sha256,
    require,
)
from tomodiff.priors.external_files import load_external
from tomodiff.samplers import ddpm, pigdm

diffusers = pytest.importorskip("diffusers", reason="pip install 'tomodiff[diffusers]'")
monai_schedulers = pytest.importorskip("monai.networks.schedulers", reason="pip install 'tomodiff[monai]'")
pytest.importorskip("einops", reason="MONAI's DiffusionModelUNet needs einops (the monai extra installs it)")
DiffusionModelUNet = pytest.importorskip("monai.networks.nets").DiffusionModelUNet

PREDICTIONS = ["epsilon", "v_prediction", "sample"]
LIBRARIES = ["diffusers", "monai"]
STEPS = 100


# ------------------------------------------------------------------ the library side, written from the libraries
def _scheduler(library: str, prediction_type: str):
    """The library's own DDPM scheduler: diffusers' linear β (its default), MONAI's cosine schedule."""
    if library == "diffusers":
        return diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
    return monai_schedulers.DDPMScheduler(num_train_timesteps=1000, schedule="cosine", prediction_type=prediction_type)


def _exact_target(scheduler, prediction_type, x_t, timestep, mu, var):
    """E[target | x_t] for x0 ~ N(mu, var) per pixel (network units) and the library's noising
    x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε at integer timestep t (refuses fractional ones, as a network
    trained on integers has no defined answer there)."""
    t = timestep.round().long()
    assert (timestep.double() - t).abs().max() < 1e-6, f"the stand-in network got fractional timesteps {timestep}"
    ab = scheduler.alphas_cumprod.to(torch.float64)[t].reshape(-1, 1, 1, 1)
    x0 = mu + var * ab.sqrt() / (ab * var + 1 - ab) * (x_t - ab.sqrt() * mu)
    eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
    if prediction_type == "epsilon":
        return eps
    if prediction_type == "sample":
        return x0
    return scheduler.get_velocity(x0, eps, t)  # the library's own definition of v


class GaussianDiffusersUNet(nn.Module):
    """``unet(sample, timestep).sample``, as diffusers' UNet2DModel: the exact prediction of a Gaussian."""

    def __init__(self, scheduler, mu, var):
        super().__init__()
        self.scheduler, self.mu, self.var = scheduler, mu, var
        self.config = SimpleNamespace(in_channels=1, out_channels=1, block_out_channels=(8,), sample_size=8,
                                      time_embedding_type="positional")

    def forward(self, sample, timestep):
        out = _exact_target(self.scheduler, self.scheduler.config.prediction_type, sample, timestep, self.mu, self.var)
        return SimpleNamespace(sample=out)  # UNet2DOutput's field


class GaussianMonaiUNet(nn.Module):
    """``network(x, timesteps=t)`` -> tensor, as MONAI's DiffusionModelUNet: the exact prediction of a Gaussian."""

    in_channels, out_channels, block_out_channels = 1, 1, (8,)

    def __init__(self, scheduler, mu, var):
        super().__init__()
        self.scheduler, self.mu, self.var = scheduler, mu, var

    def forward(self, x, timesteps):
        return _exact_target(self.scheduler, str(self.scheduler.prediction_type), x, timesteps, self.mu, self.var)


def _gaussian_prior(library, prediction_type, *, data_range=(0.0, 1.0), **kw):
    """The adapter around the stand-in network; the Gaussian N(MEAN, VAR) (data units) in network units."""
    lo, hi = data_range
    k = 2.0 / (hi - lo)
    mu, var = -1.0 + (MEAN - lo) * k, VAR * k * k
    sched = _scheduler(library, prediction_type)
    if library == "diffusers":
        return from_diffusers(GaussianDiffusersUNet(sched, mu, var), sched, spatial_dims=2, data_range=data_range,
                              max_batch=4 * N_SAMPLES, **kw)
    return from_monai(GaussianMonaiUNet(sched, mu, var), sched, spatial_dims=2, data_range=data_range,
                      max_batch=4 * N_SAMPLES, **kw)


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_stand_in_networks_use_the_librarys_noising(library):
    """x_t = sqrt(ᾱ)x0 + sqrt(1 − ᾱ)ε is what the library's add_noise does (the stand-ins assume it)."""
    sched = _scheduler(library, "epsilon")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 1, 4, 4, generator=g), torch.randn(3, 1, 4, 4, generator=g)
    t = torch.tensor([0, 500, 999])
    ab = sched.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(sched.add_noise(x0, eps, t), ab.sqrt() * x0 + (1 - ab).sqrt() * eps)


# ------------------------------------------------------------------ 1. the denoiser is exact
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("library", LIBRARIES)
def test_denoiser_is_the_closed_form_conditional_mean(library, prediction_type):
    prior = _gaussian_prior(library, prediction_type)
    ref = GaussianPrior(SHAPE, MEAN, VAR)
    sigmas = prior.timestep_sigmas(STEPS)[:-1]           # data units, on the network's timesteps
    g = torch.Generator().manual_seed(1)
    x0 = ref.sample(len(sigmas), generator=g)
    x = x0 + sigmas.reshape(-1, 1, 1, 1) * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    err = _rel(prior.denoiser(x, sigmas), ref(x, sigmas))
    print(f"\n{library}/{prediction_type}: denoiser vs closed form, max relative error {err:.2e}")
    assert err < 1e-8


@pytest.mark.parametrize("data_range", [(0.0, 2.0), (-1.0, 1.0), (-0.25, 0.75)])
def test_other_data_ranges_are_exact_too(data_range):
    prior = _gaussian_prior("diffusers", "v_prediction", data_range=data_range)
    ref = GaussianPrior(SHAPE, MEAN, VAR)
    sigmas = prior.timestep_sigmas(20)[:-1]
    g = torch.Generator().manual_seed(2)
    x = ref.sample(20, generator=g) + sigmas.reshape(-1, 1, 1, 1) * torch.randn((20, *SHAPE), generator=g,
                                                                                  dtype=torch.float64)
    assert _rel(prior.denoiser(x, sigmas), ref(x, sigmas)) < 1e-8


def test_a_sigma_scaling_bug_is_caught():
    """Feeding the network σ in data units (σ_net = σ, not 2σ): the same check fails by orders of magnitude."""
    prior = _gaussian_prior("diffusers", "epsilon")
    ref = GaussianPrior(SHAPE, MEAN, VAR)
    grid = prior.net.vp.sigmas                            # network units: the buggy σ_net must be on it
    sigmas = grid[(grid < 40) & (torch.arange(len(grid)) % 50 == 0)]
    x = ref.sample(len(sigmas), generator=torch.Generator().manual_seed(3))
    x = x + sigmas.reshape(-1, 1, 1, 1) * torch.randn(x.shape, generator=torch.Generator().manual_seed(4),
                                                      dtype=torch.float64)
    den = prior.net
    u = den.net_lo + (x - den.lo) * den.scale               # the data map is right; σ is passed unscaled
    buggy = den.lo + (den.vp(u, sigmas.reshape(-1, 1, 1, 1)) - den.net_lo) / den.scale
    assert _rel(buggy, ref(x, sigmas)) > 1e-2


@pytest.mark.parametrize("library", LIBRARIES)
def test_nearest_timestep_off_the_grid_is_the_denoiser_at_that_timesteps_sigma(library):
    prior = _gaussian_prior(library, "epsilon", timestep="nearest")
    ref = GaussianPrior(SHAPE, MEAN, VAR)
    sigmas = torch.tensor([0.011, 0.1, 0.77, 3.3, 20.0], dtype=torch.float64)   # between timesteps
    x = ref.sample(5, generator=torch.Generator().manual_seed(5))
    x = x + sigmas.reshape(-1, 1, 1, 1) * torch.randn(x.shape, generator=torch.Generator().manual_seed(6),
                                                      dtype=torch.float64)
    grid = prior.net.vp.sigmas / prior.net.scale
    t = prior.net.vp.sigma_to_t(sigmas * prior.net.scale).round().long()
    assert (grid[t] != sigmas).all()
    assert _rel(prior.denoiser(x, sigmas), ref(x, grid[t])) < 1e-8


# ------------------------------------------------------------------ 2. ΠGDM through the adapter
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
@pytest.mark.parametrize("library", LIBRARIES)
def test_pigdm_guided_denoiser_is_the_exact_conditional_mean(library, prediction_type):
    prior = _gaussian_prior(library, prediction_type)
    A = ct_like()
    _, y, post = _problem(A)
    sigmas = prior.timestep_sigmas(30)
    guide = pigdm(A, y, SIGMA_Y, data_var=VAR, cg_tol=1e-12, cg_max_iter=500)
    seen, worst = {}, []

    def D(x, s):
        seen["x"] = x.detach().clone()
        return prior.denoiser(x, s)

    def check(info):
        exact = _closed_form_conditional_mean(post, seen["x"], info["sigma"])
        worst.append(_rel(info["denoised_guided"], exact))

    x_T = float(sigmas[0]) * torch.randn((8, *SHAPE), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ddpm(D, x_T, sigmas, guidance=guide, generator=torch.Generator().manual_seed(2), callback=check, progress=False)
    print(f"\n{library}/{prediction_type}: guided x̂0 vs E[x0|x_t,y], max relative error {max(worst):.2e}")
    assert max(worst) < 1e-8


# every prediction type of both libraries; the operator does not enter the adapter, so the cheap
# closed-form ones (mask, blur) carry most cases and the CG one (ct-like, 5x the time) one
SAMPLE_CASES = [(lib, p, "mask" if lib == "diffusers" else "blur") for lib in LIBRARIES for p in PREDICTIONS]
SAMPLE_CASES += [("diffusers", "epsilon", "ct-like")]


@pytest.mark.parametrize("library,prediction_type,operator", SAMPLE_CASES)
def test_pigdm_samples_the_closed_form_posterior(library, prediction_type, operator):
    prior = _gaussian_prior(library, prediction_type)
    A = _operators(SimpleNamespace(ct_like=ct_like))[operator]
    _, y, post = _problem(A)
    sigmas = prior.timestep_sigmas(STEPS)
    guide = pigdm(A, y, SIGMA_Y, data_var=VAR, cg_tol=1e-9, cg_max_iter=200)
    x_T = float(sigmas[0]) * torch.randn((N_SAMPLES, *SHAPE), generator=torch.Generator().manual_seed(5),
                                         dtype=torch.float64)
    samples = ddpm(prior.denoiser, x_T, sigmas, guidance=guide, generator=torch.Generator().manual_seed(6),
                   progress=False).reshape(N_SAMPLES, -1)
    law = law_covariance(post.cov, sigmas, kind="ddpm")
    tol = mc_tolerances(law, N_SAMPLES)
    err = moment_errors(samples, post.mean.reshape(-1), law)
    gap = float((law.diagonal() / post.cov.diagonal() - 1).abs().max())
    print(f"\n{library}/{prediction_type}/{operator}, n={N_SAMPLES}: mean χ² {err.mean:.1f} (tol {tol.mean:.1f}); "
          f"var per-pixel {err.var_pixel:.3f} (tol {tol.var_pixel:.3f}); var avg {err.var_avg:.4f} "
          f"(tol {tol.var_avg:.4f}); discretisation gap to closed-form variance {gap:.3f}")
    assert err.mean < tol.mean, f"sample mean off the closed-form posterior mean: χ² {err.mean:.1f} > {tol.mean:.1f}"
    assert err.var_pixel < tol.var_pixel, f"per-pixel variance error {err.var_pixel:.3f} > {tol.var_pixel:.3f}"
    assert err.var_avg < tol.var_avg, f"average variance error {err.var_avg:.4f} > {tol.var_avg:.4f}"


# ------------------------------------------------------------------ the schedule and the prior's facts
def test_timestep_sigmas_lie_on_the_schedule_and_start_at_sigma_max():
    prior = _gaussian_prior("diffusers", "epsilon")
    s = prior.timestep_sigmas(10)
    grid = prior.net.vp.sigmas / 2
    assert s.shape == (11,) and s[-1] == 0 and (s[1:] < s[:-1]).all()
    assert all(bool((grid == v).any()) for v in s[:-1]) and s[-2] == grid[0]
    assert s[0] <= prior.sigma_max == pytest.approx(40.0)   # EDM's 80 in [-1, 1] units is 40 in [0, 1]
    full = prior.timestep_sigmas(10, sigma_max=float("inf"))
    assert full[0] == grid[-1]
    with pytest.raises(ValueError, match="n must be an integer"):
        prior.timestep_sigmas(10_000)


def test_a_zero_terminal_snr_schedule_is_usable():
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, rescale_betas_zero_snr=True,
                                    prediction_type="v_prediction")
    assert float(sched.alphas_cumprod[-1]) == 0.0
    prior = from_diffusers(GaussianDiffusersUNet(sched, 2 * MEAN - 1, 4 * VAR), sched, spatial_dims=2)
    top = float(prior.timestep_sigmas(1, sigma_max=float("inf"))[0])   # timestep T − 1, ᾱ floored at 2^-24
    assert 1e3 < top < float("inf")
    x = MEAN + top * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = prior.denoiser(x, top)
    assert torch.isfinite(out).all() and (out - MEAN).abs().max() < 1e-2   # no signal left: the prior mean


# ------------------------------------------------------------------ clear errors
def test_clear_errors_for_what_cannot_be_a_prior():
    sched = diffusers.DDPMScheduler()
    rgb = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8,),
                                down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",), norm_num_groups=4)
    with pytest.raises(ValueError, match="in_channels=1"):
        from_diffusers(rgb, sched)
    two = GaussianMonaiUNet(sched, 0.0, 1.0)
    two.out_channels = 2
    with pytest.raises(ValueError, match="returns 2 channels"):
        from_monai(two, monai_schedulers.DDPMScheduler(), spatial_dims=2)
    sched_flow = diffusers.DDPMScheduler()
    sched_flow.register_to_config(prediction_type="flow_prediction")
    with pytest.raises(ValueError, match="not supported"):
        from_diffusers(GaussianDiffusersUNet(sched, 0.0, 1.0), sched_flow, spatial_dims=2)
    fourier = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8,),
                                    down_block_types=("DownBlock2D",), up_block_types=("UpBlock2D",),
                                    norm_num_groups=4, time_embedding_type="fourier")
    with pytest.raises(ValueError, match="Fourier"):
        from_diffusers(fourier, sched)
    net3d = DiffusionModelUNet(spatial_dims=3, in_channels=1, out_channels=1, channels=(8, 8),
                               attention_levels=(False, False), num_res_blocks=1, norm_num_groups=4)
    with pytest.raises(ValueError, match="patch edge"):
        from_monai(net3d, monai_schedulers.DDPMScheduler())
    with pytest.raises(ImportError, match=r"pip install 'tomodiff\[nolib\]'"):
        require("tomodiff_no_such_library", "nolib")


def test_learned_variance_channel_is_dropped():
    sched = diffusers.DDPMScheduler(variance_type="learned_range")
    unet = _tiny_unet(out_channels=2)
    prior = from_diffusers(unet, sched)
    x = torch.rand(2, 1, 8, 8)
    assert prior.denoiser(x, 0.3).shape == x.shape


# ------------------------------------------------------------------ real networks, end to end
def _tiny_unet(**kw):
    torch.manual_seed(0)
    args = {"sample_size": 16, "in_channels": 1, "out_channels": 1, "block_out_channels": (8, 16),
            "layers_per_block": 1, "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
            "up_block_types": ("AttnUpBlock2D", "UpBlock2D"), "norm_num_groups": 4, "attention_head_dim": 8}
    return diffusers.UNet2DModel(**{**args, **kw})


def _tiny_monai(dims=2):
    torch.manual_seed(0)
    return DiffusionModelUNet(spatial_dims=dims, in_channels=1, out_channels=1, channels=(8, 16),
                              attention_levels=(False, False), num_res_blocks=1, norm_num_groups=4)


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _check_runs(prior, shape, device):
    prior.to(device)
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(shape, dtype=dtype, device=device)
        out = prior.denoiser(x, torch.full((shape[0],), 0.2, dtype=dtype, device=device))
        assert out.shape == x.shape and out.dtype == dtype and out.device.type == device
        assert torch.isfinite(out).all()
    x = torch.rand(shape, device=device, requires_grad=True)   # ΠGDM's vector-Jacobian product
    (g,) = torch.autograd.grad(prior.denoiser(x, 0.5).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("prediction_type", PREDICTIONS)
def test_a_real_unet2dmodel_runs_on_images_and_volumes(prediction_type, device):
    prior = from_diffusers(_tiny_unet(), diffusers.DDIMScheduler(prediction_type=prediction_type))
    assert isinstance(prior, ExternalSlicePrior) and prior.size == 16
    _check_runs(prior, (2, 1, 13, 15), device)        # padded to the network's multiple, cropped back
    _check_runs(prior, (1, 2, 3, 8, 8), device)       # a volume, slice by slice


@pytest.mark.parametrize("device", _devices())
def test_real_monai_networks_run_2d_slicewise_and_3d_as_patches(device):
    sched = monai_schedulers.DDPMScheduler(num_train_timesteps=1000)
    p2 = from_monai(_tiny_monai(2), sched)
    assert isinstance(p2, ExternalSlicePrior)
    _check_runs(p2, (1, 1, 3, 10, 12), device)
    p3 = from_monai(_tiny_monai(3), sched, size=8)
    assert isinstance(p3, ExternalPatchPrior)
    _check_runs(p3, (1, 1, 10, 9, 8), device)


def test_a_real_network_samples_a_tiny_posterior():
    from tomodiff.operators import Mask, random_pixel_mask
    from tomodiff.samplers import sample_posterior

    prior = from_diffusers(_tiny_unet(), diffusers.DDPMScheduler(prediction_type="v_prediction"))
    A = Mask(random_pixel_mask((16, 16), 0.5, generator=torch.Generator().manual_seed(0)))
    y = A(torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1)))
    for sigmas in (None, prior.timestep_sigmas(3)):
        r = sample_posterior(prior.denoiser, A, y, sigma_y=0.01, steps=3, n_samples=2, sigma_max=prior.sigma_max,
                             sigmas=sigmas, generator=torch.Generator().manual_seed(2), progress=False)
        assert r.samples.shape == (2, 1, 1, 16, 16) and torch.isfinite(r.samples).all()


# ------------------------------------------------------------------ folders on disk, local files only
def _same_outputs(a, b):
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    s = torch.tensor([0.05, 2.0])
    torch.testing.assert_close(a.denoiser(x, s), b.denoiser(x, s), rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["pipeline", "flat"])
def test_load_a_diffusers_folder(tmp_path, layout):
    unet, sched = _tiny_unet(), diffusers.DDIMScheduler(prediction_type="v_prediction", beta_schedule="scaled_linear")
    folder = tmp_path / "model"
    if layout == "pipeline":
        diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder)
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    else:
        unet.save_pretrained(folder)
        sched.save_pretrained(folder)
        weights = folder / "diffusion_pytorch_model.safetensors"
    prior = load_external(folder)
    assert prior is not None and isinstance(prior, ExternalSlicePrior)
    _same_outputs(prior, from_diffusers(unet, sched))
    info = prior.info
    assert info["name"] == "diffusers:model" and info["prediction_type"] == "v_prediction"
    assert info["scheduler"] == "DDIMScheduler" and info["library_version"] == diffusers.__version__
    rel = weights.relative_to(folder).as_posix()
    assert rel in info["files"] and info["sha256"] == files_sha256(folder, [folder / f for f in info["files"]])[0]
    assert load_diffusers(folder, timestep="nearest").info["timestep"] == "nearest"
    # another weight -> another hash; a folder without weights fails with the path, it never downloads
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    assert load_external(folder).info["sha256"] != info["sha256"]
    weights.unlink()
    with pytest.raises(PriorFileError, match="did not load"):
        load_external(folder)


def test_load_a_monai_folder(tmp_path):
    net = _tiny_monai(3)
    sched_args = {"num_train_timesteps": 1000, "schedule": "scaled_linear_beta", "prediction_type": "sample"}
    net_args = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [8, 16],
                "attention_levels": [False, False], "num_res_blocks": 1, "norm_num_groups": 4}
    folder = save_monai(tmp_path / "m", net, network_args=net_args, scheduler_args=sched_args, size=8,
                        data_range=(0.0, 1.0))
    spec = json.loads((folder / "monai_prior.json").read_text())
    assert spec["format"] == "tomodiff-monai-prior/1" and spec["network"]["class"] == "DiffusionModelUNet"
    prior = load_external(folder)
    assert isinstance(prior, ExternalPatchPrior) and prior.size == 8 and prior.info["prediction_type"] == "sample"
    ref = from_monai(net, monai_schedulers.DDPMScheduler(**sched_args), size=8)
    x = torch.rand(1, 1, 8, 10, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.denoiser(x, 0.3), ref.denoiser(x, 0.3), rtol=0, atol=0)
    assert set(prior.info["files"]) == {"monai_prior.json", "network.pt"} and len(prior.info["sha256"]) == 64
    assert load_monai(folder, size=16).size == 16
    spec["network"]["args"]["channels"] = [8, 32]
    (folder / "monai_prior.json").write_text(json.dumps(spec))
    with pytest.raises(PriorFileError, match="does not load into DiffusionModelUNet"):
        load_external(folder)


def test_load_external_names_what_it_expects(tmp_path):
    with pytest.raises(PriorFileError, match="prior not found"):
        load_external(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PriorFileError, match="monai_prior.json"):
        load_external(tmp_path / "empty")


def test_a_missing_library_says_which_extra_to_install(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    _tiny_unet().save_pretrained(folder)
    diffusers.DDPMScheduler().save_pretrained(folder)
    save_monai(tmp_path / "m", _tiny_monai(), network_args={}, scheduler_args={})
    monkeypatch.setitem(sys.modules, "diffusers", None)   # `import diffusers` now raises ImportError
    monkeypatch.setitem(sys.modules, "monai", None)
    with pytest.raises(ImportError, match=r"pip install 'tomodiff\[diffusers\]'"):
        load_external(folder)
    with pytest.raises(ImportError, match=r"pip install 'tomodiff\[monai\]'"):
        load_external(tmp_path / "m")
