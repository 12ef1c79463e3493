"""Slab helpers: the seam ratio."""

import pytest
import torch


def test_seam_ratio_sees_a_jump_at_slab_edges_only():
    from tomodiff.recon.slabs import plan_slabs, seam_ratio

    plan = plan_slabs(20, 8, 2)
    z = torch.arange(20, dtype=torch.float64)
    smooth = (0.01 * z).reshape(20, 1, 1).expand(20, 4, 4)
    assert seam_ratio(smooth, plan) == pytest.approx(1.0)
    seam = smooth.clone()
    seam[plan[1][0]:] += 0.05          # a step where the second slab starts
    assert seam_ratio(seam, plan) > 1.5
    with pytest.raises(ValueError, match="no slab edges"):
        seam_ratio(smooth, [(0, 20)])
