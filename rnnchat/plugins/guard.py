"""Running plugin code without letting it take the host down or hang it silently.

``run_plugin_code`` runs one piece of a plugin (its import, a hook, its cell's first check) with a
watchdog thread that names the plugin on stderr when it runs for longer than ``SLOW_NOTICE_S``
seconds, and again at doubling intervals, until it returns. A ``KeyboardInterrupt`` (Ctrl-C, often
because a plugin hangs) is reported with the plugin's name and re-raised; every other
``BaseException`` is left to the caller, which records it as the plugin's error. Non-daemon
threads that plugin code starts are remembered: ``threads_left`` names them at exit, so that a
thread that never ends cannot keep ``rnnchat`` from exiting.
"""

from __future__ import annotations

import sys
import threading
import time

SLOW_NOTICE_S = 5.0  # seconds of plugin code before the host says which plugin it is waiting for
THREAD_GRACE_S = 2.0  # how long the CLI waits at exit for threads that plugin code left running
_started: list[tuple[str, threading.Thread]] = []  # non-daemon threads started by plugin code


def run_plugin_code(plugin: str, doing: str, fn, *args):
    """``fn(*args)``, plugin code that ``doing`` describes (e.g. "importing")."""
    entry = [plugin, doing, time.monotonic(), SLOW_NOTICE_S]  # the next notice after entry[3] seconds
    with _cond:
        _running[id(entry)] = entry
        _start_watchdog()
        _cond.notify()
    before = set(threading.enumerate())
    try:
        return fn(*args)
    except KeyboardInterrupt:
        _say(f"interrupted while {doing} plugin {_shown(plugin)}")
        raise
    finally:
        with _cond:
            _running.pop(id(entry), None)
        _started.extend((plugin, t) for t in threading.enumerate() if t not in before and not t.daemon)


def threads_left() -> bool:
    """At exit: wait up to ``THREAD_GRACE_S`` for threads plugin code started; name those still
    running (Python would wait for them for ever) and return True: the caller ends the process."""
    deadline = time.monotonic() + THREAD_GRACE_S
    left = []
    for plugin, thread in _started:
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append((plugin, thread))
    for plugin, thread in left:
        _say(f"plugin {_shown(plugin)} left its thread {_shown(thread.name)} running; not waiting for it")
    return bool(left)


_cond = threading.Condition()
_running: dict[int, list] = {}  # plugin code running now: [plugin, doing, started, next notice after]
_watchdog: list[threading.Thread] = []  # one watchdog for all plugin code (a thread per call cost start-up time)


def _start_watchdog() -> None:  # with _cond held
    if not _watchdog:
        _watchdog.append(threading.Thread(target=_watch, daemon=True, name="rnnchat-plugin-watchdog"))
        _watchdog[0].start()


def _watch() -> None:
    with _cond:
        while True:
            if not _running:
                _cond.wait()
                continue
            now = time.monotonic()
            for entry in list(_running.values()):
                plugin, doing, started, after = entry
                if now - started >= after:
                    _say(f"still {doing} plugin {_shown(plugin)} ({after:g} s)... "
                         "Ctrl-C stops; RNNCHAT_LOAD_PLUGINS= starts without third-party plugins")
                    entry[3] = after * 2
            _cond.wait(max(0.01, min(e[2] + e[3] for e in _running.values()) - now))


def _say(text: str) -> None:
    try:
        print(f"rnnchat: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # no stderr (closed, or a detached process): nothing to tell
        pass


def _shown(text: str) -> str:
    """``text`` quoted, with control and format characters escaped (names come from packages)."""
    return f"'{escaped(text)}'"


def escaped(text: str) -> str:
    """``text`` with control and format characters written as escapes."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, control characters escaped (plugin text is untrusted)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = escaped("; ".join(lines))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
