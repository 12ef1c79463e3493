"""DDS variants: the paper's least squares, TV along Z by ADMM (adjoint, effect, independence)."""

import pytest
import torch

from tomodiff.samplers import StepContext, dds, tv_z
from tomodiff.samplers.dds import diff_z, diff_z_adjoint


def _ctx(x0, sigma=0.5):
    return StepContext(index=0, steps=1, x=x0, denoised=x0, sigma=sigma, sigma_next=0.2, gain=0.5)


class _SliceMask:
    """A per-slice pixel mask on (N, C, Z, Y, X): a stand-in for a slab projector (linear, self-adjoint)."""

    def __init__(self, mask):
        self.mask, self.domain_shape, self.range_shape = mask, tuple(mask.shape), tuple(mask.shape)

    def forward(self, x):
        return x * self.mask

    adjoint = forward

    def check_measurement(self, y):
        return y


def test_diff_z_adjoint_passes_the_dot_test():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 5, 3, 4, generator=g, dtype=torch.float64)
    d = torch.randn(2, 1, 4, 3, 4, generator=g, dtype=torch.float64)
    lhs, rhs = (diff_z(x) * d).sum(), (x * diff_z_adjoint(d)).sum()
    assert abs(lhs - rhs) / (diff_z(x).norm() * d.norm()) < 1e-12


def test_least_squares_mode_fits_the_data_better_than_prox(helpers):
    A = helpers.ct_like()
    g = torch.Generator().manual_seed(1)
    y = torch.randn(1, 1, 40, generator=g, dtype=torch.float64)
    x0 = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    res = {}
    for prox in (True, False):
        x = x0 + dds(A, y, 1.0, cg_iters=5, prox=prox)(_ctx(x0))
        res[prox] = float((A(x) - y).norm())
    assert res[False] < res[True]


def test_tv_z_admm_reduces_jumps_between_slices_and_keeps_items_independent():
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(4, 6, 6, generator=g) < 0.5).double()
    A = _SliceMask(mask)
    truth = torch.rand(1, 1, 1, 6, 6, generator=g, dtype=torch.float64).expand(1, 1, 4, 6, 6)
    y = A.forward(truth) + 0.05 * torch.randn(1, 1, 4, 6, 6, generator=g, dtype=torch.float64)
    x0 = torch.rand(3, 1, 4, 6, 6, generator=g, dtype=torch.float64)
    plain, admm = dds(A, y, 0.05, prox=False), dds(A, y, 0.05, prox=False, tv_z=(1.0, 0.5))
    a, b = x0, x0
    for _ in range(5):  # the ADMM variables carry over between steps
        a = a + plain(_ctx(a))
        b = b + admm(_ctx(b))
    assert (tv_z(b) < 0.8 * tv_z(a)).all()
    alone = dds(A, y, 0.05, prox=False, tv_z=(1.0, 0.5))
    c = x0[:1]
    for _ in range(5):
        c = c + alone(_ctx(c))
    torch.testing.assert_close(c, b[:1])


def test_tv_z_leaves_images_to_plain_dds(helpers):
    A = helpers.ct_like()
    y = torch.ones(1, 1, 40, dtype=torch.float64)
    x0 = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(dds(A, y, 0.1, tv_z=(10.0, 0.04))(_ctx(x0)), dds(A, y, 0.1)(_ctx(x0)))


@pytest.mark.parametrize("tv", [(0.0, 0.1), (1.0, -1.0), (1.0,)])
def test_bad_tv_z(tv, helpers):
    with pytest.raises(ValueError, match="tv_z must be"):
        dds(helpers.ct_like(), torch.zeros(1, 1, 40, dtype=torch.float64), 0.1, tv_z=tv)
