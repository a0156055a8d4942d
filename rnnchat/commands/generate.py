"""``rnnchat generate``: stream a raw continuation of a prompt to stdout."""

from __future__ import annotations

import sys
import time

import click

from rnnchat.core import defaults as DEFAULTS  # the one set of defaults (SamplingParams' too)
from rnnchat.core.defaults import MAX_CHARS_LIMIT
from rnnchat.core.units import Escaped, FiniteFloat


@click.command()
@click.argument("prompt", required=False)
@click.option("--model", "-m", help="Model name (see `rnnchat models`) or checkpoint path.")
@click.option("--temperature", "-t", type=FiniteFloat(0, 100), default=DEFAULTS.TEMPERATURE, show_default=True,
              help="0 is greedy.")
@click.option("--top-k", type=click.IntRange(min=0), default=DEFAULTS.TOP_K, show_default=True, help="0: off.")
@click.option("--top-p", type=FiniteFloat(0, 1, min_open=True), default=DEFAULTS.TOP_P, show_default=True,
              help="1: off.")
@click.option("--repetition-penalty", type=FiniteFloat(0, 100, min_open=True),
              default=DEFAULTS.REPETITION_PENALTY, show_default=True,
              help="Over the last 64 characters, the prompt's included (1: off).")
@click.option("--min-p", type=FiniteFloat(0, 1, max_open=True), default=DEFAULTS.MIN_P, show_default=True,
              help="Keep only characters at least this fraction as likely as the likeliest (0: off).")
@click.option("--presence-penalty", type=FiniteFloat(-2, 2), default=DEFAULTS.PRESENCE_PENALTY, show_default=True,
              help="Subtracted from the logit of every character already written (0: off).")
@click.option("--frequency-penalty", type=FiniteFloat(-2, 2), default=DEFAULTS.FREQUENCY_PENALTY,
              show_default=True,
              help="Times how often a character was already written, subtracted from its logit (0: off).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), help="Makes the output reproducible.")
@click.option("--max-chars", "-n", type=click.IntRange(1, MAX_CHARS_LIMIT), default=DEFAULTS.MAX_CHARS,
              show_default=True)
@click.option("--stop", type=Escaped(), multiple=True,
              help="Stop when this text appears (repeatable). Backslash escapes (\\n, \\t, \\xHH, \\uHHHH) are "
                   "read as characters; a malformed one is an error: write \\\\ for a backslash.")
@click.option("--device", help="cpu, cuda, cuda:N or mps (default: the best available).")
@click.option("--prompt-precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="How prompts of 128+ characters are read: bf16 is faster where the hardware has bf16 "
                   "units (the state differs slightly); auto picks bf16 where it was measured faster "
                   "(LSTM on such CPUs). Default: auto, or RNNCHAT_PROMPT_PRECISION.")
@click.option("--weights", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default="auto", show_default=True,
              help="Weights read per character (CPU, built-in cells): bf16/int8 are faster and change the "
                   "text slightly (same text for a seed on every run); auto is fp32 unless the checkpoint "
                   "records a measured loss cost below 0.002 nats/char for a smaller format.")
@click.option("--samples", "-k", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Write K continuations at once (one batched step per character; sample j uses seed+j); "
                   "each is printed after a '--- sample j ---' line when all are done.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of samples (text, seed, finish reason).")
@click.option("--stats", is_flag=True, help="Print chars/s, device and model to stderr.")
def generate(prompt, model, temperature, top_k, top_p, repetition_penalty, min_p, presence_penalty,
             frequency_penalty, seed, max_chars, stop, device,
             prompt_precision, weights, samples, as_json, stats):
    """Continue PROMPT (or standard input) with a model.

    The prompt is read in chunks of 4,096 characters, the state carried from one to the next,
    so a prompt of any length (a file piped in) takes memory for one chunk only."""
    from rnnchat.core.params import SamplingParams

    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, min_p=min_p,
                            presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, seed=seed,
                            max_chars=max_chars,
                            stop=tuple(stop)).validate()
    from rnnchat.engine.generate import BF16_MIN_PROMPT
    from rnnchat.engine.prompt import stream_reads, string_reads
    from rnnchat.core import heap
    from rnnchat.engine.runtime import open_engine

    t_load = time.perf_counter()
    engine, path = open_engine(model, device)
    if prompt_precision:
        engine.set_prompt_precision(prompt_precision, "--prompt-precision")
    engine.set_weights(weights)
    heap.freeze()  # (torch and the model: no full collection walks them in the middle of the text)
    if prompt is None and not sys.stdin.isatty():
        reads = stream_reads(sys.stdin.read, engine.chunk)  # never the whole of stdin at once
    else:
        reads = string_reads(prompt or "", engine.chunk)
    t0 = time.perf_counter()
    logits, state, read = engine.feed_text(reads, engine.initial_state())
    if read.dropped:
        click.echo(f"note: the model does not know these characters, left out: {read.dropped!r}", err=True)
    if read.mapped:
        click.echo(f"note: mapped to the unknown token: {read.mapped!r}", err=True)
    n_ids = read.ids
    if logits is None:  # an empty prompt, or none of its characters known: start from a newline
        logits, state = engine.feed([engine.default_start()], state)
        n_ids = 1
    if samples > 1 or as_json:
        from rnnchat.commands.samples import write_samples

        write_samples(engine, logits, state, params, samples, as_json, stats, t0, path)
        return
    t_first = None
    out = sys.stdout
    stream = engine.stream(logits, state, params)
    n = 0
    for tok in stream:
        if t_first is None:
            t_first = time.perf_counter()
        out.write(tok.char)
        n += 1
        if n % 16 == 0 or tok.char == "\n":
            out.flush()
    out.write("\n" if n and out.isatty() else "")
    out.flush()
    t1 = time.perf_counter()
    if stats:
        prompt_note = f" read in {engine.prompt_precision}" if n_ids >= BF16_MIN_PROMPT else ""
        choice = getattr(engine.fast, "threads", None) if stream.backend == "numpy" else None
        kind, kernels = "BLAS", ""
        if engine.weights != "fp32":  # bf16/int8 kernels run on torch's threads (and rnnchat's), chosen the same way
            packed = engine.packed_weights(engine.weights)
            choice, kind, kernels = getattr(packed, "threads", None), "kernel", f" ({packed.kernels} kernel)"
        threads_note = f", {choice.threads} {kind} thread{'s' if choice.threads > 1 else ''}" if choice else ""
        gen_time = t1 - (t_first or t1)
        rate = (n - 1) / gen_time if n > 1 and gen_time > 0 else 0.0
        click.echo(f"{n} chars, {rate:,.0f} chars/s, first char after {((t_first or t1) - t0) * 1000:.1f} ms "
                   f"({n_ids}-char prompt{prompt_note}), load {(t0 - t_load) * 1000:.0f} ms, device {engine.device} "
                   f"({stream.backend} steps{threads_note}), {engine.weights} weights{kernels}, "
                   f"model {path}, seed {stream.sampler.seed}", err=True)
