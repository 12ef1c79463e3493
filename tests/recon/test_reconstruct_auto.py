"""reconstruct(method="auto"), the χ² report in provenance, the guard, warm starts by name, and a
non-finite sample stopping with the step named while finished slabs stay in the checkpoint."""

import warnings

import pytest
import torch

from tomodiff.recon import reconstruct
from tomodiff.methods import AUTO
from tomodiff.samplers import SamplingError

from .test_reconstruct import gaussian_denoiser, problem  # noqa: F401 (fixture)


def test_auto_uses_the_sweep_winner_and_reports_chi2(problem):  # noqa: F811
    A, x, y = problem
    r = reconstruct(A, y, method="auto", prior=gaussian_denoiser(), steps=4, sigma_y=0.05, slab=6, overlap=2,
                    progress=False)
    assert r.provenance["method"] == AUTO["method"] and r.provenance["steps"] == 4
    dc = r.provenance["data_consistency"]
    assert set(dc) >= {"chi2_per_m", "chi2_per_view", "sigma_y"} and dc["sigma_y"] == 0.05
    assert isinstance(dc["chi2_per_m"], float) and len(dc["chi2_per_view"]) == A.geometry.n_angles
    assert "data_consistency" not in reconstruct(A, y, method="fbp", progress=False).provenance


def test_warm_start_by_name(problem):  # noqa: F811
    A, x, y = problem
    r = reconstruct(A, y, method="dds", prior=gaussian_denoiser(), steps=3, sigma_y=0.05, slab=6, overlap=2,
                    x_init="fbp", sigma_start=0.2, progress=False)
    assert r.provenance["options"]["sigma_start"] == "0.2" and r.provenance["x_init"] == "fbp"
    with pytest.raises(ValueError, match="warm start x_init must be a tensor or one of"):
        reconstruct(A, y, method="dds", prior=gaussian_denoiser(), steps=3, sigma_y=0.05, x_init="magic",
                    sigma_start=0.2, progress=False)


def test_prior_that_ignores_the_data_warns_and_guard_fixes_it(problem):  # noqa: F811
    A, x, y = problem

    def blind(v, s):  # a 'prior' that returns zeros whatever the data: ΠGDM cannot fix that at 2 steps
        return torch.zeros_like(v)

    kw = dict(method="dds", prior=blind, steps=2, n_samples=2, sigma_y=0.05, slab=None, progress=False,
              prox=True, cg_iters=1, x_init=None, sigma_start=None, final_cg=0)  # cold, no final stop (dds's defaults)
    with pytest.warns(UserWarning, match="disagrees with the data"):
        bad = reconstruct(A, y, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tv = reconstruct(A, y, method="tv", progress=False)
        good = reconstruct(A, y, guard=True, **kw)
    chi2 = good.provenance["data_consistency"]
    from tomodiff.recon.consistency import data_consistency

    assert chi2["chi2_per_m"] <= data_consistency(A, tv.mean, y, 0.05)["chi2_per_m"] + 1e-9
    assert chi2["chi2_per_m"] < bad.provenance["data_consistency"]["chi2_per_m"]
    assert chi2["guard"]["cg_iters"] > 0 or chi2["guard"]["fallback"]


def test_non_finite_sample_names_the_step_and_keeps_finished_slabs(problem, tmp_path):  # noqa: F811
    A, x, y = problem
    inner, calls = gaussian_denoiser(), {"n": 0}

    def breaks_in_second_slab(v, s):
        calls["n"] += 1
        out = inner(v, s)
        return out * float("nan") if calls["n"] == 6 else out

    ckpt = tmp_path / "run.slabs"
    with pytest.raises(SamplingError, match=r"step 2 of 4 .*NaN"):
        reconstruct(A, y, method="dds", prior=breaks_in_second_slab, steps=4, sigma_y=0.05, slab=6, overlap=2,
                    checkpoint=ckpt, progress=False)
    assert sorted(p.name for p in ckpt.glob("slab_*.pt")) == ["slab_00000.pt"]  # the broken slab is not kept
    saved = torch.load(ckpt / "slab_00000.pt", weights_only=True)
    assert torch.isfinite(saved["samples"]).all()


def test_warm_start_tensor_of_the_whole_volume_is_cut_per_slab_and_a_wrong_one_is_refused(problem):  # noqa: F811
    A, x, y = problem
    kw = dict(method="dds", prior=gaussian_denoiser(), steps=2, sigma_y=0.05, slab=6, overlap=2, sigma_start=0.1,
              progress=False)
    r = reconstruct(A, y, x_init=x, **kw)
    assert r.mean.shape == x.shape
    with pytest.raises(ValueError, match=r"warm start x_init has shape .*expected"):
        reconstruct(A, y, x_init=x[:, :, :5], **kw)


def test_tuple_options_enter_the_provenance_and_the_checkpoint_key(problem, tmp_path):  # noqa: F811
    A, x, y = problem
    inner, calls = gaussian_denoiser(), {"n": 0}

    def stop(v, s):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return inner(v, s)

    kw = dict(method="dds", steps=2, sigma_y=0.05, slab=6, overlap=2, progress=False, prox=False)
    r = reconstruct(A, y, prior=inner, tv_z=(10.0, 0.04), **kw)
    assert r.provenance["tv_z"] == [10.0, 0.04]
    ckpt = tmp_path / "run.slabs"
    with pytest.raises(KeyboardInterrupt):
        reconstruct(A, y, prior=stop, checkpoint=ckpt, tv_z=(10.0, 0.04), **kw)
    with pytest.raises(ValueError, match="other arguments"):
        reconstruct(A, y, prior=inner, checkpoint=ckpt, tv_z=(1.0, 0.04), **kw)
