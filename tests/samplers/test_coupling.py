import torch

from tomodiff.samplers import StepContext, known_slices, tv_z, z_smoothing


def _ctx(x0):
    return StepContext(index=0, steps=1, x=x0, denoised=x0, sigma=1.0, sigma_next=0.5, gain=0.5)


def test_z_smoothing_lowers_the_objective_and_leaves_constant_volumes_alone():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 6, 5, 5, generator=g, dtype=torch.float64)
    guide = z_smoothing(0.05, iters=30)
    x = x0 + guide(_ctx(x0))

    def objective(v):
        return 0.5 * ((v - x0) ** 2).flatten(1).sum(1) + 0.05 * tv_z(v)

    assert (objective(x) < objective(x0)).all()
    assert (tv_z(x) < tv_z(x0)).all()
    flat = torch.full((1, 1, 4, 3, 3), 0.3, dtype=torch.float64)
    assert guide(_ctx(flat)).abs().max() < 1e-12
    # items are independent: the correction of item 0 alone equals its correction in the batch
    torch.testing.assert_close(guide(_ctx(x0[:1])), guide(_ctx(x0))[:1])


def test_z_smoothing_is_not_applied_to_images():
    img = torch.rand(2, 1, 8, 8)
    assert torch.equal(z_smoothing(1.0)(_ctx(img)), torch.zeros_like(img))


def test_known_slices_replaces_or_pulls():
    x0 = torch.zeros(2, 1, 5, 3, 3)
    values = torch.ones(2, 1, 2, 3, 3)
    d = known_slices(values, start=1)(_ctx(x0))
    assert torch.equal(d[:, :, 1:3], values) and d[:, :, [0, 3, 4]].abs().max() == 0
    half = known_slices(values, start=3, strength=0.5)(_ctx(x0))
    assert torch.allclose(half[:, :, 3:], 0.5 * values)


def test_known_slices_shape_errors():
    import pytest

    with pytest.raises(ValueError, match="do not fit"):
        known_slices(torch.ones(2, 1, 2, 3, 3), start=4)(_ctx(torch.zeros(2, 1, 5, 3, 3)))
    with pytest.raises(ValueError, match="strength"):
        known_slices(torch.ones(1, 1, 1, 1, 1), strength=2.0)
