"""`rnnchat serve` under 1, 4 and 16 concurrent streaming clients, against the in-process generator.

In one run this measures:

* in-process -- ``Engine.feed`` of the prompt and ``Engine.stream`` on the same model in this
               process (the CLI's path), timed from the prompt to the last character;
* over HTTP  -- ``rnnchat serve`` started in a subprocess on a free port; K client threads
               each POST a streaming /v1/completions request at once and read its SSE chunks.

It prints, for each K, the aggregate characters per second (all characters of all clients over
the wall time from the first request to the last [DONE]) and the median time to first
character, then the two ratios the goals are about: 16 clients / 1 client (goal >= 4) and
1 client over HTTP / in-process (goal >= 0.80), as ratios of the medians and as the median of
each repeat's own ratio (steadier where the machine's speed drifts during the run).

    .venv/bin/python benchmarks/serve_speed.py [--model shakespeare] [--chars 2000] [--repeats 2] [--weights auto]
                                               [--processes N]

The clients run on the same machine as the server and take CPU from it; on a loaded machine
every absolute figure moves (the ratios, measured side by side, move less).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ENGINES: dict = {}


def in_process(model: str, chars: int, weights: str) -> float:
    """One stream in this process, timed as a request is: from reading the prompt to its last
    character (the engine opened and warmed up once, as the server's is)."""
    from rnnchat.engine.runtime import open_engine
    from rnnchat.core.params import SamplingParams

    if (model, weights) not in _ENGINES:
        engine, _ = open_engine(model, "cpu", weights=weights)
        logits, state = engine.feed(engine.encode("ROMEO:").ids, engine.initial_state())
        for _ in engine.stream(logits, state, SamplingParams(temperature=0.8, seed=0, max_chars=200)):
            pass  # (its thread count timed, as the server's first request does)
        from rnnchat.core import heap

        heap.freeze()  # (as `rnnchat generate` does once its model is loaded)
        _ENGINES[model, weights] = engine
    engine = _ENGINES[model, weights]
    params = SamplingParams(temperature=0.8, seed=1, max_chars=chars)
    t0 = time.perf_counter()
    logits, state = engine.feed(engine.encode("ROMEO:").ids, engine.initial_state())
    n = sum(1 for _ in engine.stream(logits, state, params))
    return n / (time.perf_counter() - t0)


def client(port: int, chars: int, seed: int, out: list, start: threading.Barrier) -> None:
    body = json.dumps({"model": MODEL, "prompt": "ROMEO:", "max_tokens": chars, "seed": seed,
                       "temperature": 0.8, "stream": True})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start.wait()
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    first, n = None, 0
    for line in resp:
        if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
            continue
        text = json.loads(line[6:])["choices"][0]["text"]
        if text and first is None:
            first = time.perf_counter() - t0
        n += len(text)
    conn.close()
    out.append((n, first, time.perf_counter()))


def over_http(port: int, k: int, chars: int) -> tuple[float, float]:
    out: list = []
    barrier = threading.Barrier(k + 1)
    threads = [threading.Thread(target=client, args=(port, chars, i, out, barrier)) for i in range(k)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    total = sum(n for n, _, _ in out)
    end = max(e for _, _, e in out)
    return total / (end - t0), statistics.median(f for _, f, _ in out if f is not None)


def start_server(model: str, weights: str, processes: int | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    extra = [] if processes is None else ["--processes", str(processes)]
    proc = subprocess.Popen([sys.executable, "-m", "rnnchat", "serve", "--model", model, "--port", str(port),
                             "--weights", weights, *extra],
                            env=env, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    global MODEL
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="shakespeare")
    ap.add_argument("--chars", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--weights", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                    help="the server's and the in-process generator's weight format")
    ap.add_argument("--processes", type=int, default=None,
                    help="the server's engine processes per model (default: the server's own default)")
    args = ap.parse_args()
    MODEL = args.model
    load = os.getloadavg()[0]
    proc, port = start_server(args.model, args.weights, args.processes)
    try:
        over_http(port, 1, 50)  # warm-up: the first request reads through cold paths
        rates: dict = {"in-process": [], 1: [], 4: [], 16: []}
        firsts: dict = {1: [], 4: [], 16: []}
        for _ in range(args.repeats):  # interleaved, so load changes hit every figure alike
            rates["in-process"].append(in_process(args.model, args.chars, args.weights))
            for k in (1, 4, 16):
                rate, first = over_http(port, k, args.chars)
                rates[k].append(rate)
                firsts[k].append(first)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"load average before: {load:.2f}")
    procs = "default" if args.processes is None else args.processes
    print(f"model {args.model}, {args.weights} weights, {args.chars} chars per stream, median of {args.repeats}, "
          f"engine processes: {procs}")
    print(f"  in-process   {med['in-process']:10,.0f} chars/s")
    for k in (1, 4, 16):
        print(f"  {k:2d} client{'s' if k > 1 else ' '}   {med[k]:10,.0f} chars/s aggregate, "
              f"first char after {statistics.median(firsts[k]) * 1000:7.1f} ms (median)")
    # the machine's speed drifts by tens of percent within a minute: each repeat's own ratio (its
    # figures measured seconds apart) is steadier than a ratio of medians taken over the whole run
    per16 = statistics.median(a / b for a, b in zip(rates[16], rates[1]))
    per1 = statistics.median(a / b for a, b in zip(rates[1], rates["in-process"]))
    print(f"16 clients / 1 client:      {med[16] / med[1]:.2f}x (goal >= 4); median of the repeats' own ratios "
          f"{per16:.2f}x")
    print(f"1 client HTTP / in-process: {med[1] / med['in-process']:.2f} (goal >= 0.80); median of the repeats' own "
          f"ratios {per1:.2f}")


MODEL = "shakespeare"

if __name__ == "__main__":
    main()
