import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: single-threaded is much faster on the shared 2-core machine; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
