"""Tests of tiny volumes run on one torch thread (tests/one_thread.py)."""

from one_thread import one_thread  # noqa: F401 (an autouse fixture)
