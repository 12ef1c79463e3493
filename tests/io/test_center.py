"""Centre of rotation: the sign and size of tomodiff's center_offset on simulated off-centre scans,
and the measured APS tooth / Diamond I13 scans."""

import warnings

import numpy as np
import pytest
import torch

from tomodiff.ct import Projector, parallel_beam
from tomodiff.io.center import check_centered, estimate_center


def _scan(offset, n_angles=180, endpoint=False):
    yy, xx = np.mgrid[:48, :48] - 23.5
    img = ((xx - 6) ** 2 + (yy + 4) ** 2 < 12 ** 2).astype(np.float32) + ((xx + 9) ** 2 + yy ** 2 < 5 ** 2)
    angles = np.linspace(0, np.pi, n_angles, endpoint=endpoint)
    g = parallel_beam((48, 48), angles, det_shape=(80,), center_offset=offset)
    with torch.no_grad():
        y = Projector(g, "torch")(torch.from_numpy(img)[None, None])[0, 0].numpy()
    return y, angles


@pytest.mark.parametrize("offset", [-7.5, 0.0, 5.0, 9.25])
@pytest.mark.parametrize("method", ["vo", "com", "auto"])
def test_finds_the_simulated_offset_with_its_sign(offset, method):
    y, angles = _scan(offset)
    est = estimate_center(y, angles, method=method)
    assert est.offset_px == pytest.approx(offset, abs=0.3)
    assert est.column == pytest.approx(offset + 79 / 2, abs=0.3) and est.method == method


def test_uses_the_first_half_turn_of_a_full_circle():
    y, angles = _scan(4.0, n_angles=360)
    y2, a2 = np.concatenate([y, y[:, ::-1]]), np.concatenate([angles, angles + np.pi])  # not the real 2nd half
    assert estimate_center(y2[: len(y)], a2[: len(y)], method="vo").offset_px == pytest.approx(4.0, abs=0.3)


def test_refuses_short_arcs_and_bad_shapes():
    y, angles = _scan(0.0)
    with pytest.raises(ValueError, match="needs about 180"):
        estimate_center(y[:60], angles[:60], method="vo")
    with pytest.raises(ValueError, match="must be \\(A, U\\)"):
        estimate_center(np.zeros(5), None)
    with pytest.raises(ValueError, match="projections but"):
        estimate_center(y, angles[:-1])
    with pytest.raises(ValueError, match="centre method"):
        estimate_center(y, angles, method="nope")


def test_warns_only_when_off_centre():
    y, angles = _scan(6.0)
    with pytest.warns(UserWarning, match=r"looks \+6\.0 px from the detector centre"):
        check_centered(y, angles, "scan.h5")
    y, angles = _scan(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_centered(y, angles, "scan.h5")


def test_measured_scans(shared_data):
    from tomodiff.io.array_scan import read_array_scan
    from tomodiff.io.scans import normalize, read_scan

    s = read_scan(shared_data / "aps_tooth" / "tooth.h5")
    est = estimate_center(normalize(s, clamp_gain=1e-3), s.angles)
    assert abs(est.offset_px - (-23.5)) <= 0.5  # column 296 (TomoPy's find_center agrees)
    r = read_array_scan(shared_data / "diamond_i13_24737" / "24737_raw.npz")
    p = normalize(r, clamp_gain=1e-3, air_region=(slice(0, 20), slice(0, 20)))
    assert abs(estimate_center(p, r.angles).column - 86) <= 1.0
