"""Running plugin code without letting it take the host down or hang it silently.

``run_plugin_code`` runs one piece of a plugin (its import, a hook, its cell's first check) with a
watchdog thread that names the plugin on stderr when it runs for longer than ``SLOW_NOTICE_S``
seconds, and again at doubling intervals, until it returns. A ``KeyboardInterrupt`` (Ctrl-C, often
because a plugin hangs) is reported with the plugin's name and re-raised; every other
``BaseException`` is left to the caller, which records it as the plugin's error.
"""

from __future__ import annotations

import sys
import threading

SLOW_NOTICE_S = 5.0  # seconds of plugin code before the host says which plugin it is waiting for


def run_plugin_code(plugin: str, doing: str, fn, *args):
    """``fn(*args)``, plugin code that ``doing`` describes (e.g. "importing")."""
    done = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(done, plugin, doing), daemon=True,
                                name=f"rnnchat-plugin-watchdog-{plugin}"[:60])
    watchdog.start()
    try:
        return fn(*args)
    except KeyboardInterrupt:
        _say(f"interrupted while {doing} plugin {_shown(plugin)}")
        raise
    finally:
        done.set()


def _watch(done: threading.Event, plugin: str, doing: str) -> None:
    waited, mark = 0.0, SLOW_NOTICE_S
    while not done.wait(mark - waited):
        waited = mark
        _say(f"still {doing} plugin {_shown(plugin)} ({mark:g} s)... "
             "Ctrl-C stops; RNNCHAT_LOAD_PLUGINS= starts without third-party plugins")
        mark *= 2


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
