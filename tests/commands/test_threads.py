"""``--threads auto``: free cores, shared among local ranks, never more than torch's default;
OMP_NUM_THREADS obeyed; ``threads_arg`` accepts auto or an integer >= 0."""

import argparse

import pytest
import torch

from tomodiff.commands import _common
from tomodiff.commands._common import auto_threads, set_threads, threads_arg


@pytest.fixture(autouse=True)
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("cores, load, ranks, default, expected", [
    (2, 0.0, 1, 2, 2),     # idle 2-core machine: torch's default
    (2, 1.6, 1, 2, 1),     # two training jobs elsewhere: one thread, not a collapse
    (2, 7.0, 1, 2, 1),     # overloaded: still at least one
    (16, 3.4, 1, 8, 8),    # many free cores: capped at torch's default (physical cores)
    (16, 12.4, 1, 8, 4),   # 12 of 16 busy
    (16, 0.0, 4, 8, 4),    # torchrun with 4 local ranks: a quarter each
    (3, 0.0, 4, 3, 1),     # more ranks than cores
    (8, 2.5, 1, 8, 5),     # load rounded: 2.5 -> 3 busy (round half up)
])
def test_auto_threads_rule(cores, load, ranks, default, expected):
    assert auto_threads(default, cores=cores, load=load, local_ranks=ranks) == expected


def test_auto_threads_reads_the_machine(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert 1 <= auto_threads(64, cores=8, load=0.0) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "junk")
    assert auto_threads(64, cores=8, load=0.0) == 8
    n = auto_threads(4)  # real affinity and load average
    assert 1 <= n <= 4


def test_threads_arg():
    assert threads_arg("auto") == "auto" and threads_arg(" AUTO ") == "auto"
    assert threads_arg("0") == 0 and threads_arg("3") == 3
    for bad in ("-1", "two", "1.5"):
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            threads_arg(bad)


def test_a_parser_rejects_bad_threads_in_one_line():
    p = argparse.ArgumentParser()
    _common.add_common(p)
    assert p.parse_args([]).threads == "auto"
    assert p.parse_args(["--threads", "2"]).threads == 2
    with pytest.raises(SystemExit):
        p.parse_args(["--threads", "many"])


def test_set_threads_counts_and_zero(monkeypatch):
    default = _common.torch_default_threads()
    assert set_threads(1) == 1 == torch.get_num_threads()
    assert set_threads(0) == default  # 0 = torch's default, even after another count was set
    assert set_threads(None) == default  # None leaves it as it is
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="--threads must be auto or an integer >= 0"):
            set_threads(bad)


def test_set_threads_auto_obeys_omp_num_threads(monkeypatch):
    default = _common.torch_default_threads()
    monkeypatch.setattr(_common, "auto_threads", lambda *a, **k: 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    torch.set_num_threads(1)
    assert set_threads("auto") == default  # pinned by the user: torch's default (which read it), not the rule
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert set_threads("auto") == 1


def test_set_threads_auto_does_not_ratchet_down(monkeypatch):
    """A long-lived process calling auto again gets the rule applied to torch's default, not to its last choice."""
    default = _common.torch_default_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    seen = []
    monkeypatch.setattr(_common, "auto_threads", lambda d, **k: seen.append(d) or 1)
    set_threads("auto")
    set_threads("auto")
    assert seen == [default, default]
