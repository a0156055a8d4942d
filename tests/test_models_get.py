"""`rnnchat models get`: a local HTTP server (ranges, a cut connection then resume, a wrong
checksum, a server that lies about the length, a file that is no checkpoint)."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rnnchat.cli import _run


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        data, mode = srv.data, srv.mode
        srv.ranges.append(self.headers.get("Range"))
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        declared = len(body) + (100 if mode == "lie" else 0)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        if mode == "cut":  # half, then the connection drops; the next request is served whole
            srv.mode = "ok"
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture
def server(make_checkpoint):
    data = make_checkpoint(name="remote").read_bytes()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.data, srv.mode, srv.ranges = data, "ok", []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/remote.safetensors"
    srv.sha = hashlib.sha256(data).hexdigest()
    yield srv
    srv.shutdown()
    srv.server_close()


def run(capsys, *args):
    code = _run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def models(home):
    folder = home / "data" / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_url_with_sha256_is_registered(server, rnnchat_home, capsys):
    code, out, err = run(capsys, "models", "get", server.url, "--sha256", server.sha)
    assert code == 0, err
    assert "sha256 verified" in out and models(rnnchat_home) == ["remote.safetensors"]
    from rnnchat.plugins import manager

    manager._HOST = None  # a new process would find it
    code, out, _ = run(capsys, "models", "--json")
    assert '"name": "remote"' in out
    code, out, _ = run(capsys, "models", "get", server.url, "--sha256", server.sha)
    assert code == 0 and "already here" in out


def test_cut_connection_then_resume_with_range(server, rnnchat_home, capsys):
    server.mode = "cut"
    code, _, err = run(capsys, "models", "get", server.url, "--sha256", server.sha)
    assert code == 1 and "broke off" in err and "run it again to resume" in err
    assert len(err.strip().splitlines()) == 1
    part = rnnchat_home / "data" / "models" / "remote.safetensors.part"
    half = len(server.data) // 2
    assert part.stat().st_size == half
    code, out, err = run(capsys, "models", "get", server.url, "--sha256", server.sha)
    assert code == 0, err
    assert server.ranges[-1] == f"bytes={half}-"
    assert (rnnchat_home / "data" / "models" / "remote.safetensors").read_bytes() == server.data
    assert models(rnnchat_home) == ["remote.safetensors"]


def test_server_ignoring_range_starts_over(server, rnnchat_home, capsys):
    server.mode = "cut"
    run(capsys, "models", "get", server.url, "--sha256", server.sha)
    server.mode = "norange"
    code, _, err = run(capsys, "models", "get", server.url, "--sha256", server.sha)
    assert code == 0, err
    assert (rnnchat_home / "data" / "models" / "remote.safetensors").read_bytes() == server.data


def test_wrong_checksum_removes_the_file(server, rnnchat_home, capsys):
    code, _, err = run(capsys, "models", "get", server.url, "--sha256", "0" * 64)
    assert code == 1 and "its sha256 is" in err and "the file was removed" in err
    assert len(err.strip().splitlines()) == 1
    assert models(rnnchat_home) == []


def test_server_lying_about_the_length(server, rnnchat_home, capsys, monkeypatch):
    server.mode = "lie"  # says 100 bytes more than it sends
    monkeypatch.setattr("rnnchat.store.download.TIMEOUT", 2.0)
    code, _, err = run(capsys, "models", "get", server.url, "--sha256", server.sha)
    assert code == 1 and err.startswith("error: could not download model 'remote'")
    assert not (rnnchat_home / "data" / "models" / "remote.safetensors").exists()
    from rnnchat.commands import models_get

    entry = {"name": "remote", "url": server.url, "sha256": server.sha, "size": len(server.data) - 1}
    monkeypatch.setattr(models_get, "catalog_models", lambda: {"remote": entry})
    server.mode = "ok"  # the catalog's size and the server's disagree: refused before a byte is kept
    code, _, err = run(capsys, "models", "get", "remote")
    assert code == 1 and "the server offers" in err
    assert models(rnnchat_home) == []


def test_not_a_checkpoint_is_refused(server, rnnchat_home, capsys):
    server.data = b"not a checkpoint at all" * 10
    code, _, err = run(capsys, "models", "get", server.url, "--sha256", hashlib.sha256(server.data).hexdigest())
    assert code == 1 and "is not a usable rnnchat checkpoint" in err
    assert models(rnnchat_home) == []


def test_refusals(capsys):
    code, _, err = run(capsys, "models", "get", "http://127.0.0.1:9/x.safetensors")
    assert code == 1 and "needs --sha256" in err
    code, _, err = run(capsys, "models", "get", "nosuch")
    assert code == 1 and "no model named 'nosuch' in the catalog" in err
    code, _, err = run(capsys, "models", "get", "ftp://h/x", "--sha256", "0" * 64)
    assert code == 1 and "only http:// and https://" in err
