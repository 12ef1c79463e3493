"""``reconstruct`` end to end on tiny volumes, with an exact Gaussian denoiser as the prior."""

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.operators import GaussianNoise, simulate
from tomodiff.recon import reconstruct
from tomodiff.recon.slabs import blend, plan_slabs


def gaussian_denoiser(mean=0.3, var=0.05):
    """Exact denoiser of N(mean, var·I) for any shape: D(x, σ) = m + v/(v + σ²)(x − m)."""

    def D(x, sigma):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return mean + var / (var + s * s) * (x - mean)

    return D


@pytest.fixture(scope="module")
def problem():
    Z, N = 12, 16
    geom = parallel_beam((Z, N, N), np.linspace(0, np.pi, 8, endpoint=False), det_shape=(Z, 24))
    A = Projector(geom, backend="torch")
    zz, yy, xx = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in (Z, N, N)), indexing="ij")
    x = ((xx**2 + yy**2 + 0.5 * zz**2) < 0.6).float()[None, None]
    y = simulate(A, x, GaussianNoise(0.05), generator=torch.Generator().manual_seed(0))
    return A, x, y


def test_plan_and_blend():
    plan = plan_slabs(20, 8, 3)
    assert plan == [(0, 8), (5, 13), (10, 18), (15, 20)]
    assert plan_slabs(6, 8, 3) == [(0, 6)]
    parts = [torch.full((1, b - a, 2, 2), float(k)) for k, (a, b) in enumerate(plan)]
    out = blend([torch.ones_like(p) for p in parts], plan, 20)
    assert torch.allclose(out, torch.ones_like(out))  # weights sum to one everywhere
    out = blend(parts, plan, 20)
    assert out[0, 0, 0, 0] == 0 and out[0, 19, 0, 0] == 3 and 0 < out[0, 6, 0, 0] < 1 and 2 < out[0, 16, 0, 0] < 3
    with pytest.raises(ValueError, match="overlap"):
        plan_slabs(20, 4, 4)


@pytest.mark.parametrize("method", ["fbp", "sirt", "cgls", "tv"])
def test_classical_methods(problem, method):
    A, x, y = problem
    r = reconstruct(A, y, method=method, progress=False)
    assert r.mean.shape == x.shape and r.std is None and r.nfe == 0
    assert r.residual < 0.5 and r.provenance["method"] == method
    assert r.provenance["geometry"]["kind"] == "parallel"


def test_pigdm_in_slabs_gives_mean_std_and_provenance(problem):
    A, x, y = problem
    r = reconstruct(A, y, method="pigdm", prior=gaussian_denoiser(), steps=6, n_samples=3, sigma_y=0.05,
                    slab=6, overlap=2, keep_samples=True, progress=False, seed=1)
    assert r.samples.shape == (3, *x.shape) and r.std.shape == x.shape and (r.std > 0).all()
    assert r.nfe == 6 * len(plan_slabs(12, 6, 2))
    assert r.residual < 0.5
    assert r.provenance["slab"] == 6 and r.provenance["versions"]["torch"] == torch.__version__
    again = reconstruct(A, y, method="pigdm", prior=gaussian_denoiser(), steps=6, n_samples=3, sigma_y=0.05,
                        slab=6, overlap=2, progress=False, seed=1)
    assert torch.equal(again.mean, r.mean)  # same seed, same result


def test_interrupted_run_resumes_to_the_same_result(problem, tmp_path):
    A, _, y = problem
    kw = dict(method="pigdm", steps=4, n_samples=2, sigma_y=0.05, slab=6, overlap=2, progress=False, seed=3)
    full = reconstruct(A, y, prior=gaussian_denoiser(), **kw)
    calls = {"n": 0}
    inner = gaussian_denoiser()

    def flaky(x, sigma):
        calls["n"] += 1
        if calls["n"] == 7:  # inside the second slab
            raise KeyboardInterrupt
        return inner(x, sigma)

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        reconstruct(A, y, prior=flaky, checkpoint=ckpt, **kw)
    assert ckpt.exists()
    resumed = reconstruct(A, y, prior=inner, checkpoint=ckpt, **kw)
    assert torch.equal(resumed.mean, full.mean) and torch.equal(resumed.std, full.std)
    assert not ckpt.exists()  # removed after success


def test_checkpoint_of_another_run_is_refused(problem, tmp_path):
    A, _, y = problem
    kw = dict(method="pigdm", steps=3, slab=6, overlap=2, progress=False, prior=gaussian_denoiser())
    ckpt = tmp_path / "run.ckpt"
    calls = {"n": 0}
    inner = kw.pop("prior")

    def stop_late(x, s):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return inner(x, s)

    with pytest.raises(KeyboardInterrupt):
        reconstruct(A, y, prior=stop_late, checkpoint=ckpt, seed=0, **kw)
    with pytest.raises(ValueError, match="other arguments or data"):
        reconstruct(A, y, prior=inner, checkpoint=ckpt, seed=1, **kw)


def test_bad_input(problem):
    A, _, y = problem
    with pytest.raises(ValueError, match="method must be one of"):
        reconstruct(A, y, method="magic")
    with pytest.raises(ValueError, match="need a prior"):
        reconstruct(A, y, method="pigdm", progress=False)
    with pytest.raises(ValueError, match=r"reconstruct: y must have shape .* got \(1, 1, 8, 12, 23\)"):
        reconstruct(A, y[..., :-1], method="fbp")


def test_callback_reports_progress_and_can_abort(problem):
    A, _, y = problem
    seen = []
    reconstruct(A, y, method="sirt", n_iter=5, progress=False, callback=lambda d, t: seen.append((d, t)))
    assert seen == [(k, 5) for k in range(1, 6)]
    seen.clear()
    r = reconstruct(A, y, method="pigdm", prior=gaussian_denoiser(), steps=3, slab=6, overlap=2, progress=False,
                    callback=lambda d, t: seen.append((d, t)))
    total = 3 * len(plan_slabs(12, 6, 2))
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert "callback" not in r.provenance["options"]

    def stop(done, total):
        if done == 2:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        reconstruct(A, y, method="tv", progress=False, callback=stop)


def test_provenance_records_the_defaults_that_were_used(problem):
    from tomodiff.methods import METHODS, TV_LAM_PER_VIEW

    A, _, y = problem
    tv = reconstruct(A, y, method="tv", n_iter=3, progress=False)
    assert float(tv.provenance["options"]["lam"]) == pytest.approx(TV_LAM_PER_VIEW * 8)
    dps = reconstruct(A, y, method="dps", prior=gaussian_denoiser(), steps=2, sigma_y=0.05, slab=None, progress=False)
    assert float(dps.provenance["options"]["zeta"]) == METHODS["dps"].options["zeta"]
    mine = reconstruct(A, y, method="dps", prior=gaussian_denoiser(), steps=2, sigma_y=0.05, slab=None,
                       progress=False, zeta=0.05)
    assert float(mine.provenance["options"]["zeta"]) == 0.05


class _RecordingConditionalPrior:
    """A conditional prior whose halves are exact Gaussian denoisers; records each slab's condition."""

    def __init__(self):
        self.conditions, self.weights = [], []
        self.denoiser = gaussian_denoiser()

    def guided(self, cond, w):
        self.conditions.append(cond.clone())
        self.weights.append(w)
        return gaussian_denoiser(mean=0.25)


@pytest.mark.filterwarnings("ignore:the cfg reconstruction disagrees")
def test_cfg_conditions_each_slab_on_its_fbp_and_samples_with_dds(problem):
    from tomodiff.methods import METHODS
    from tomodiff.recon import fbp

    A, _, y = problem
    prior = _RecordingConditionalPrior()
    r = reconstruct(A, y, method="cfg", prior=prior, steps=3, n_samples=2, sigma_y=0.05, slab=None, scale=None,
                    progress=False)
    assert r.provenance["method"] == "cfg" and r.mean.shape == (1, 1, *A.domain_shape)
    assert prior.weights == [METHODS["cfg"].options["w"]]
    torch.testing.assert_close(prior.conditions[0], fbp(A, y, filter="hann"))  # the condition of training
    assert float(r.provenance["options"]["w"]) == METHODS["cfg"].options["w"]
    with pytest.raises(ValueError, match="needs a conditional prior"):
        reconstruct(A, y, method="cfg", prior=gaussian_denoiser(), steps=2, sigma_y=0.05, slab=None, progress=False)
