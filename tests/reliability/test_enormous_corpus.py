"""An enormous corpus is refused up front with a clear line: nothing is read, nothing swaps."""

import resource

import pytest

from rnnchat.engine.data import MAX_CORPUS_BYTES, load_corpus
from rnnchat.core.errors import CorpusError
from tests.conftest import run_cli


@pytest.fixture
def enormous(tmp_path):
    path = tmp_path / "enormous.txt"
    with open(path, "wb") as fh:  # sparse: takes no disk space
        fh.truncate(MAX_CORPUS_BYTES + 1024)
    return path


def test_enormous_corpus_is_refused_without_reading_it(enormous):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CorpusError, match="limit is 1 GiB"):
        load_corpus(enormous)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # far below the file's size: it was never read


def test_enormous_corpus_through_the_cli(enormous):
    r = run_cli("train", str(enormous), "--steps", "5", "--name", "big")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "1 GiB" in r.stderr
