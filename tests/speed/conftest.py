"""One torch thread in these tests: with other work on the 2 cores, a second OpenMP thread that
waits for a core makes tiny forward calls take seconds (results are the same either way)."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    yield
