"""One torch thread in these tests: with other work on the 2 cores, a second OpenMP thread that
waits for a core makes tiny forward calls take seconds (results are the same either way)."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    yield


def pytest_collection_modifyitems(config, items):
    """A test run with bf16 weights (its ``weights``/``fmt`` parameter) skips, with the reason,
    on a CPU where oneDNN cannot run bf16 products (no AVX-512 or AVX-NE-CONVERT)."""
    import pytest

    marked = [i for i in items if getattr(i, "callspec", None) is not None
              and "bf16" in (i.callspec.params.get("weights"), i.callspec.params.get("fmt"))]
    if not marked:
        return
    from rnnchat.engine.quant import bf16_weights_problem

    problem = bf16_weights_problem()
    if problem:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=f"this CPU cannot run bf16 weights: {problem}"))
