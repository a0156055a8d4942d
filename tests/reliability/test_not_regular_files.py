"""Principle 2: only regular files are read as checkpoints, corpora, states, settings and history;
nothing opens a FIFO or a device; sizes are bounded by what is read, not by ``st_size`` (issue 15).

Each FIFO is a ``GuardedFifo``: the test fails (instead of hanging) if anything opened it."""

import json
import os
import resource
import subprocess
import sys

import pytest

from rnnchat.core.errors import CheckpointError, CorpusError, RnnchatError
from tests.conftest import run_cli
from tests.reliability.hostile import guarded_fifo

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")


def one_line_error(r):
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("link", [False, True], ids=["fifo", "symlink-to-fifo"])
def test_checkpoint_that_is_a_fifo_is_refused_unopened(tmp_path, link):
    from rnnchat.store.checkpoint_meta import read_header
    from rnnchat.engine.checkpoint import load_checkpoint

    with guarded_fifo(tmp_path / "pipe.safetensors") as fifo:
        path = fifo.path
        if link:
            path = tmp_path / "link.safetensors"
            path.symlink_to(fifo.path)
        for read in (read_header, load_checkpoint):
            with pytest.raises(CheckpointError, match="FIFO"):
                read(path)
        assert not fifo.opened


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_checkpoint_that_is_a_device_is_refused(device):
    from rnnchat.engine.checkpoint import load_checkpoint

    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    with pytest.raises(CheckpointError, match="device"):
        load_checkpoint(device)


def test_inspect_and_generate_on_a_fifo_are_one_line(tmp_path):
    with guarded_fifo(tmp_path / "pipe.safetensors") as fifo:
        one_line_error(run_cli("inspect", str(fifo.path), timeout=60))
        one_line_error(run_cli("generate", "-m", str(fifo.path), "hi", timeout=60))
        assert not fifo.opened


def test_a_fifo_in_the_models_folder_is_listed_as_broken(make_checkpoint, rnnchat_home, tmp_path):
    """`rnnchat models` (and the app's model picker, which calls the same function) lists it as
    broken and the others as usual; a model whose metadata `corpus` is a string is broken too."""
    from tests.reliability.hostile import rewrite_meta

    models = rnnchat_home / "data" / "models"
    models.mkdir(parents=True)
    good = make_checkpoint()
    (models / "good.safetensors").write_bytes(good.read_bytes())
    rewrite_meta(good, models / "stringcorpus.safetensors", lambda m: m.update(corpus="tinyshakespeare"))
    with guarded_fifo(models / "pipe.safetensors") as fifo:
        from rnnchat.commands.info import model_rows
        from rnnchat.plugins.manager import get_host

        get_host(reload=True)
        rows = {r["name"]: r for r in model_rows()}
        assert rows["good"].get("error") is None and rows["good"]["hidden"] == 8
        assert "FIFO" in rows["pipe"]["error"]
        assert "corpus" in rows["stringcorpus"]["error"]
        r = run_cli("models", env={"RNNCHAT_LOAD_PLUGINS": ""}, timeout=60)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
        assert "BROKEN" in lines["pipe"] and "BROKEN" in lines["stringcorpus"]
        assert "BROKEN" not in lines["good"] and "8" in lines["good"]
        assert not fifo.opened


@pytest.mark.parametrize("kind", ["fifo", "/dev/null", "folder"])  # /dev/zero: in a subprocess below
def test_corpus_that_is_not_a_regular_file(tmp_path, kind):
    from rnnchat.store.corpora import read_text

    if kind == "fifo":
        with guarded_fifo(tmp_path / "corpus.txt") as fifo:
            with pytest.raises(CorpusError, match="FIFO"):
                read_text(fifo.path)
            assert not fifo.opened
        return
    path = kind if kind.startswith("/") else tmp_path
    with pytest.raises(CorpusError):
        read_text(path)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_reading_dev_zero_as_a_corpus_stops_at_once():
    """Before the fix the 1 GiB limit trusted st_size (0 for a device) and read /dev/zero until memory ran
    out (5 GB in 20 s): here a 1 GiB address-space limit turns that into a MemoryError."""
    code = ("from rnnchat.store.corpora import read_text\nfrom rnnchat.core.errors import CorpusError\n"
            "try:\n    read_text('/dev/zero')\nexcept CorpusError as e:\n    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=_limit_memory)
    assert r.returncode == 0 and "refused:" in r.stdout and "device" in r.stdout, r.stderr[-500:]


def test_train_dev_zero_is_one_line():
    r = run_cli("train", "/dev/zero", "--name", "z", "--steps", "1", timeout=120)
    one_line_error(r)
    assert "/dev/zero" in r.stderr


def test_bounded_reader_stops_at_its_limit_whatever_st_size_says(tmp_path):
    from rnnchat.core.safe_files import FileTooLarge, read_regular

    path = tmp_path / "grows.txt"
    path.write_bytes(b"x" * 5000)
    assert read_regular(path, 5000) == b"x" * 5000
    with pytest.raises(FileTooLarge):
        read_regular(path, 4999)


def test_settings_file_that_is_a_fifo_gives_the_defaults(rnnchat_home):
    from rnnchat.core import paths
    from rnnchat.session.settings import Settings

    paths.config_dir().mkdir(parents=True)
    with guarded_fifo(paths.settings_file()) as fifo:
        settings, warning = Settings.load()
        assert settings == Settings() and "FIFO" in warning
        assert not fifo.opened
        with pytest.raises(OSError, match="not a regular file"):
            settings.save()  # never replaced by the atomic rename either
        assert paths.settings_file().is_fifo()


def test_history_that_is_a_fifo_is_one_error(rnnchat_home):
    from rnnchat.core import paths
    from rnnchat.session.history import HistoryStore
    from rnnchat.session.types import SessionError

    paths.data_dir().mkdir(parents=True)
    with guarded_fifo(paths.history_db()) as fifo:
        with pytest.raises(SessionError, match="FIFO"):
            HistoryStore().list()
        assert not fifo.opened


def test_corpus_registry_that_is_a_fifo_is_one_error(rnnchat_home):
    from rnnchat.store import corpora

    corpora.registry_path().parent.mkdir(parents=True)
    with guarded_fifo(corpora.registry_path()) as fifo:
        with pytest.raises(CorpusError, match="FIFO"):
            corpora.load_registry()
        assert not fifo.opened


def test_resume_state_that_is_a_fifo_falls_back_or_is_one_error(tmp_path):
    from rnnchat.engine.resume import peek_state, read_state_bytes

    with guarded_fifo(tmp_path / "state.safetensors") as fifo:
        assert peek_state(fifo.path) is None
        with pytest.raises(RnnchatError, match="FIFO"):
            read_state_bytes(fifo.path)
        assert not fifo.opened
