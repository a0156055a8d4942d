"""The corpus catalog, `rnnchat corpora get/add`, and training on a corpus by name.

Downloads come from a local HTTP server on 127.0.0.1 (RNNCHAT_CORPUS_MIRROR points at it)."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import pytest

from rnnchat.cli import main
from tests.conftest import ROOT, TINY_TEXT, run_cli

TINY_BYTES = TINY_TEXT.read_bytes()
TINY_SHA = hashlib.sha256(TINY_BYTES).hexdigest()


def test_the_readme_table_agrees_with_the_shipped_catalog():
    from rnnchat.store.corpora import catalog_entries

    readme = (ROOT / "corpora" / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[0-9a-f]{64}", cells[3]):
            rows[cells[0]] = cells
    entries = catalog_entries()
    assert sorted(rows) == sorted(e["name"] for e in entries)
    for e in entries:
        assert rows[e["name"]] == [e["name"], str(e["size"]), str(e["chars"]), e["sha256"], e["licence"],
                                   e["download"], e["url"]]


def test_every_catalog_entry_is_complete():
    from rnnchat.store.corpora import catalog_entries
    from rnnchat.plugins.specs import NAME_RE

    for e in catalog_entries():
        assert NAME_RE.match(e["name"])
        assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"])
        assert e["url"].startswith("https://") and e["licence"] and e["description"]
        assert isinstance(e["size"], int) and isinstance(e["chars"], int) and e["download"] in ("direct", "compiled")


class Server:
    """A tiny HTTP server on 127.0.0.1: path -> (status, body[, claimed length])."""

    def __init__(self):
        self.routes = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body, *claimed = routes.get(self.path, (404, b"not here"))
                self.send_response(status)
                self.send_header("Content-Length", str(claimed[0] if claimed else len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    s = Server()
    monkeypatch.setenv("RNNCHAT_CORPUS_MIRROR", s.url)
    yield s
    s.close()


@pytest.fixture
def test_catalog(monkeypatch):
    """The shipped catalog plus an entry for tiny.txt, so a download can succeed offline."""
    import rnnchat.store.corpora as corpora

    shipped = corpora.catalog_entries()
    extra = {"name": "tiny-test", "description": "the tests' tiny text", "url": "https://example.org/tiny.txt",
             "download": "direct", "sha256": TINY_SHA, "licence": "MIT", "size": len(TINY_BYTES),
             "chars": len(TINY_BYTES)}
    monkeypatch.setattr(corpora, "catalog_entries", lambda: shipped + [extra])


def cli(capsys, *args):
    """The real CLI in-process: (exit code, stdout, stderr). A training asks the CLI to end its process
    without the interpreter's teardown (os._exit): here it must return to pytest instead."""
    from unittest import mock

    from rnnchat.core import process_exit

    code = 0
    try:
        with mock.patch("rnnchat.cli.teardown_skipped", lambda: False):
            main(list(args))
    except SystemExit as exc:
        code = exc.code
    finally:
        process_exit._without_teardown = False
    out = capsys.readouterr()
    return code, out.out, out.err


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_get_downloads_verifies_and_keeps_nothing_partial(server, test_catalog, rnnchat_home, capsys):
    server.routes["/tiny-test.txt"] = (200, TINY_BYTES)
    code, out, err = cli(capsys, "corpora", "get", "tiny-test")
    assert code == 0, err
    target = rnnchat_home / "data" / "corpora" / "tiny-test.txt"
    assert target.read_bytes() == TINY_BYTES and "sha256 verified" in out
    assert files_in(target.parent) == ["tiny-test.txt"]
    code, out, err = cli(capsys, "corpora", "get", "tiny-test")
    assert code == 0 and "already here" in out
    code, out, err = cli(capsys, "corpora", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "tiny-test")
    assert row["status"] == "downloaded" and row["where"] == str(target)


@pytest.mark.parametrize("route,expected", [
    ((200, b"ALICE:\nnot the text the catalog means.\n"), "its sha256 is"),
    ((404, b"gone"), "HTTP 404"),
    ((200, TINY_BYTES + b"x" * 100), "the server offers 7,099 bytes, the catalog says 6,999"),
    ((200, TINY_BYTES[:1000], len(TINY_BYTES)), "broke off"),
], ids=["wrong-sha", "404", "too-large", "cut-short"])
def test_a_bad_download_is_one_line_and_leaves_nothing(server, test_catalog, rnnchat_home, capsys, route,
                                                       expected):
    server.routes["/tiny-test.txt"] = route
    code, out, err = cli(capsys, "corpora", "get", "tiny-test")
    assert code == 1
    assert err.startswith("error: could not download 'tiny-test' from http://127.0.0.1:") and expected in err
    assert len(err.strip().splitlines()) == 1
    assert files_in(rnnchat_home / "data" / "corpora") == []


def test_get_refusals(server, rnnchat_home, capsys):
    code, _, err = cli(capsys, "corpora", "get", "no-such")
    assert code == 1 and "no corpus named 'no-such' in the catalog (known: " in err
    code, _, err = cli(capsys, "corpora", "get", "tinyshakespeare", "--url", "ftp://127.0.0.1/x")
    assert code == 1 and "only http:// and https://" in err
    server.close()
    code, _, err = cli(capsys, "corpora", "get", "tinyshakespeare")
    assert code == 1 and err.startswith("error: could not download 'tinyshakespeare' from http://127.0.0.1:")


def test_a_compiled_corpus_is_added_not_downloaded(rnnchat_home, capsys, monkeypatch):
    monkeypatch.delenv("RNNCHAT_CORPUS_MIRROR", raising=False)
    code, _, err = cli(capsys, "corpora", "get", "tang-poems")
    assert code == 1 and "compiled from https://github.com/chinese-poetry/chinese-poetry" in err
    assert "rnnchat corpora add FILE --name tang-poems" in err
    code, _, err = cli(capsys, "corpora", "add", str(TINY_TEXT), "--name", "tang-poems")
    assert code == 1 and "is a catalog corpus with sha256" in err
    code, _, err = cli(capsys, "train", "tang-poems", "--steps", "1", "--name", "x")
    assert code == 1 and "is not on this machine" in err


@pytest.mark.slow  # a real process or a training run: 4-6 s
def test_add_registers_a_file_and_train_takes_it_by_name(tmp_path, rnnchat_home, capsys):
    text = tmp_path / "My Text.txt"
    text.write_bytes(TINY_BYTES)
    code, out, err = cli(capsys, "corpora", "add", str(text))
    assert code == 0, err
    assert out.startswith("added my-text: ")
    code, out, err = cli(capsys, "corpora", "add", str(TINY_TEXT), "--name", "my-text")
    assert code == 1 and "already registered" in err and "--replace" in err
    code, out, _ = cli(capsys, "corpora")
    assert re.search(r"^my-text\s+added\s", out, re.M)
    assert re.search(r"^tinyshakespeare\s+not downloaded\s", out, re.M)

    r = run_cli("train", "my-text", "--hidden", "8", "--embedding", "4", "--layers", "1", "--seq-len", "32",
                "--batch-size", "4", "--steps", "3", "--name", "m", "-q", env={"RNNCHAT_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    from rnnchat.store.checkpoint_meta import read_header

    meta = read_header(rnnchat_home / "data" / "models" / "m.safetensors").meta
    assert meta["corpus"] == {"name": "my-text", "sha256": TINY_SHA}

    text.unlink()
    code, _, err = cli(capsys, "train", "my-text", "--steps", "1", "--name", "y")
    assert code == 1 and "no longer exists" in err


def test_add_refuses_what_train_would_refuse(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9\n")
    code, _, err = cli(capsys, "corpora", "add", str(bad))
    assert code == 1 and "is not UTF-8: invalid byte 0xe9 at byte offset 3 (line 1)" in err
    code, _, err = cli(capsys, "corpora", "add", str(tmp_path / "missing.txt"))
    assert code == 1 and "does not exist" in err
