"""`rnnchat serve` refusals, before any model is opened."""

from __future__ import annotations

from rnnchat.cli import _run


def test_unknown_model_and_empty_key(capsys):
    assert _run(["serve", "--model", "nope"]) == 1
    assert "no model named 'nope'; see `rnnchat models`" in capsys.readouterr().err
    assert _run(["serve", "--model", "shakespeare", "--api-key", " "]) == 1
    assert "--api-key must not be empty" in capsys.readouterr().err
    assert _run(["serve", "--port", "70000"]) == 2
    assert _run(["serve", "--processes", "17"]) == 2  # each process holds the model: bounded
    assert _run(["serve", "--processes", "-1"]) == 2


def test_a_port_in_use_or_an_unknown_host_is_one_line_before_any_model_loads(capsys):
    import multiprocessing
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert _run(["serve", "--model", "shakespeare", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert not multiprocessing.active_children()  # (no engine process was started)
    assert err == f"error: cannot listen on 127.0.0.1:{port}: the port is in use; choose another --port or --host\n"
    assert _run(["serve", "--model", "shakespeare", "--host", "no-such-host.invalid"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on no-such-host.invalid:8000: ") and err.count("\n") == 1
