"""``rnnchat serve``: the OpenAI-compatible HTTP API (rnnchat.serve) on uvicorn."""

from __future__ import annotations

import errno
import signal
import socket

import click

from rnnchat.core.errors import RnnchatError
from rnnchat.core.safe_text import printable


@click.command()
@click.option("--model", "-m", "models", multiple=True,
              help="A model to serve (repeatable). Default: every registered model.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--api-key", envvar="RNNCHAT_API_KEY", help="Require `Authorization: Bearer KEY` "
              "(or set RNNCHAT_API_KEY).")
@click.option("--max-streams", type=click.IntRange(1, 256), default=32, show_default=True,
              help="Streams stepped together per model.")
@click.option("--queue", type=click.IntRange(0, 4096), default=64, show_default=True,
              help="Streams that may wait for a place per model; past it requests get 429.")
@click.option("--sessions", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="Sessions kept (least recently used dropped first).")
@click.option("--session-ttl", type=click.IntRange(1, 7 * 86400), default=1800, show_default=True,
              help="Seconds a session is kept idle.")
@click.option("--weights", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default="auto", show_default=True,
              help="Weight format for generation (docs/performance.md); auto: fp32 unless the "
                   "checkpoint records a measured loss cost below 0.002 nats/char for a smaller one.")
@click.option("--processes", type=click.IntRange(0, 16), default=None,
              help="Engine processes per model (default: one per CPU core, at most 4), each with "
                   "its own copy of the model (~350 MB for the bundled one); new requests go to the "
                   "least busy; 0 runs the engine in the server's own process.")
def serve(models, host, port, api_key, max_streams, queue, sessions, session_ttl, weights, processes):
    """Serve models over an OpenAI-compatible HTTP API (docs/serve.md)."""
    import uvicorn

    from rnnchat.core import heap
    from rnnchat.engine.serve_backend import Backend
    from rnnchat.plugins.manager import get_host
    from rnnchat.serve.app import Server
    from rnnchat.serve.sessions import SessionStore

    registered = list(get_host().checkpoints)
    names = list(dict.fromkeys(models)) or registered
    unknown = [n for n in names if n not in registered]
    if unknown:
        raise RnnchatError(f"no model named {unknown[0]!r}; see `rnnchat models`")
    if not names:
        raise RnnchatError("no models to serve; train one with `rnnchat train CORPUS --name NAME`")
    if api_key is not None and not api_key.strip():
        raise RnnchatError("--api-key must not be empty")
    sock = _listening_socket(host, port)  # (before the models load: a port in use is said at once)
    port = sock.getsockname()[1]
    if processes is None:
        from rnnchat.engine.serve_procs import default_processes

        processes = default_processes()
    try:
        backend = Backend(names, max_streams, queue, skip_unusable=not models, weights=weights, processes=processes)
    except BaseException:
        sock.close()
        raise
    for name, reason in backend.skipped:
        click.echo(printable(f"note: not serving {name!r}: {reason}"), err=True)
    if not backend.workers:
        sock.close()
        raise RnnchatError("none of the registered models can be served (see the notes above)")
    server = Server(backend, api_key, SessionStore(sessions, float(session_ttl)))
    heap.freeze()  # (the server's modules, and the models of an in-process backend: core/heap.py)
    served = ", ".join(f"{name} ({worker.weights} weights)" for name, worker in backend.workers.items())
    click.echo(printable(f"serving {served} on http://{host}:{port}/v1 "
               f"({'API key required' if api_key else 'no API key'}); Ctrl+C stops"), err=True)

    class _Uvicorn(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            backend.stop()  # end the streams first: their clients get [DONE], then uvicorn closes
            super().handle_exit(sig, frame)

    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again with the handler
    # that was there before it: SIGINT's raises KeyboardInterrupt, and SIGTERM's is made to raise
    # _Stopped, so that both end here, after the engine processes are closed, as a normal stop
    # (SIGTERM's default would end the process at once, before they are)
    # (uvicorn returns without raising where SIGINT was ignored, as for a background job of a script)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        _Uvicorn(uvicorn.Config(server.app, host=host, port=port, log_level="warning",
                                timeout_graceful_shutdown=5)).run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        backend.close()
        sock.close()
        signal.signal(signal.SIGTERM, previous)
    click.echo("stopped", err=True)


def _listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound here rather than by uvicorn: a port in use (or an address this
    machine does not have) is one line before any model is loaded, not uvicorn's log line after."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise RnnchatError(f"cannot listen on {host}:{port}: {exc}; check --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (as uvicorn does)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise RnnchatError(f"cannot listen on {host}:{port}: {reason}; choose another --port or --host") from None
    return sock


class _Stopped(Exception):
    """SIGTERM after the server's graceful stop."""


def _stop_on_sigterm(signum, frame) -> None:
    raise _Stopped()
