"""Shared fixtures: where the real measured data lives (../shared/data next to the checkout)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    candidates = [os.environ.get("TOMODIFF_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data not found: set TOMODIFF_SHARED_DATA or put shared/data beside the repo")
    return path


@pytest.fixture(scope="session", autouse=True)
def _matrix_cache_in_tmp(tmp_path_factory):
    """Projector matrices go to a session folder, never the user's cache (CLI subprocesses inherit it)."""
    old = os.environ.get("TOMODIFF_CACHE")
    os.environ["TOMODIFF_CACHE"] = str(tmp_path_factory.mktemp("tomodiff-cache"))
    yield
    if old is None:
        os.environ.pop("TOMODIFF_CACHE", None)
    else:
        os.environ["TOMODIFF_CACHE"] = old
