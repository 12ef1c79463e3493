"""Stripe/zinger removal: chains parse or fail with one line, stripes are removed, clean data stay."""

import numpy as np
import pytest

from tomodiff.io.rings import parse_chain, provenance, remove_rings


def _sino():
    a = np.linspace(0, np.pi, 90, endpoint=False)[:, None]
    u = np.arange(64)[None, :] - 31.5
    return 0.01 * np.sqrt(np.clip(22.0 ** 2 - (u - 6 * np.cos(a)) ** 2, 0, None)).astype(np.float32)  # an off-axis disc


def test_parse_chain():
    steps = parse_chain("zinger+sort:size=31")
    assert [s.name for s in steps] == ["zinger", "sort"] and dict(steps[1].params) == {"size": 31}
    assert provenance("filter")[0] == {"step": "filter", "function": "algotom.prep.removal.remove_stripe_based_filtering",
                                       "sigma": 3.0, "size": 21}
    for bad, msg in (("nope", "unknown step"), ("sort:sigma=3", "sort takes size="), ("sort:size=2.5", "positive integer"),
                     ("filter:sigma=-1", "positive number"), ("sort:size=x", "not a number")):
        with pytest.raises(ValueError, match=msg):
            parse_chain(bad)


@pytest.mark.parametrize("chain", ["sort", "filter", "all"])
def test_removes_a_stripe_and_keeps_the_rest(chain):
    clean = _sino()
    striped = clean.copy()
    striped[:, 20] += 0.15  # one detector column too dark in every frame
    out = remove_rings(striped[:, None, :], chain)[:, 0]
    before = np.abs(striped - clean)[:, 20].mean()
    assert np.abs(out - clean)[:, 20].mean() < 0.3 * before
    rest = np.abs(np.delete(out - clean, 20, axis=1)).mean()  # what the step does to the clean columns
    if chain != "all":  # measured: 'all' (large-stripe detection) moves the clean columns by ~28% of the stripe here
        assert rest < 0.05 * 0.15


def test_zinger():
    clean = _sino() + 0.5
    hit = clean.copy()
    hit[40, 30] -= 0.4  # a zinger: a bright speck = low line integral
    out = remove_rings(hit, "zinger:threshold=0.08")
    assert abs(out[40, 30] - clean[40, 30]) < 0.25 * 0.4 and out.shape == hit.shape
