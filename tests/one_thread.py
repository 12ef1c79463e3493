"""A fixture for tests of tiny tensors: single-threaded is much faster on the shared 2-core machine."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread for the test, the previous count restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
