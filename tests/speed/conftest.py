"""One torch thread in these tests: with other work on the 2 cores, a second OpenMP thread that
waits for a core makes tiny forward calls take seconds (results are the same either way)."""

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
