"""``rnnchat probe``: which single cells track the line position, quotes, brackets...; how saturated the gates are."""

from __future__ import annotations

import json
import shutil
import sys

import click

DEFAULT_CHARS = 30_000


@click.command()
@click.argument("model")
@click.option("--corpus", help="A text file or a corpus name (default: the held-out part of the model's own corpus).")
@click.option("--chars", type=click.IntRange(1, 1_000_000), default=DEFAULT_CHARS, show_default=True,
              help="Read at most this many characters.")
@click.option("--feature", "features", multiple=True, metavar="NAME=REGEX",
              help="A feature of your own: 1 on the characters inside a match (repeatable).")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True, help="Units listed per feature.")
@click.option("--unit", metavar="LAYER:QUANTITY:INDEX|auto[:FEATURE]",
              help="The unit that colours the --html page (default auto: the unit ranked first for the first "
                   "feature, the line position).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write the text coloured by --unit to FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("--device", help="cpu, cuda, cuda:N or mps (default: the best available).")
def probe(model, corpus, chars, features, top, unit, html_path, as_json, device):
    """Look inside MODEL: the units that track features of the text, and gate saturation.

    Reads a text (by default the held-out part of the model's own corpus) and
    reports, for each feature (position in the line, inside quotes, bracket depth,
    ... and your own --feature NAME=REGEX), the units (layer, quantity: cell state,
    hidden state or a gate, index) whose activation correlates most with it, and
    for each layer and gate how often it is saturated (Karpathy et al., 2015).
    """
    from rnnchat.commands.probe_report import feature_lines, safe, saturation_lines, saturation_plot
    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.engine.device import pick_device, set_cpu_threads
    from rnnchat.engine.probe_run import run_probe
    from rnnchat.plugins.resolve import resolve_model

    dev = pick_device(device)
    if dev.type == "cpu":
        set_cpu_threads()
    loaded = load_checkpoint(resolve_model(model).path, dev)
    report, coloured = run_probe(loaded, corpus, chars, features, top, unit or ("auto" if html_path else None))
    report["model"]["name"] = model
    if html_path:
        from rnnchat.commands.probe_html import render, write_page

        u = coloured.unit
        r = f"r = {u.r:+.3f} with {coloured.feature}" if u.r == u.r else "r undefined (constant unit)"
        note = (f"{model}: layer {u.layer}, {u.quantity} unit {u.index} ({coloured.kind}; {r}; chosen: "
                f"{coloured.chosen_by}). Text: {report['text']['source']}, first {len(coloured.text):,} characters. "
                "Each character's colour is the unit's value after reading it; hover for the number.")
        page = render(coloured.text, coloured.values, f"rnnchat probe: unit {u.label()}", note, coloured.kind)
        report["html"] = str(write_page(html_path, page))
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    m, t = report["model"], report["text"]
    click.echo(f"model {safe(model)}: {m['cell']} {m['layers']}x{m['hidden']} ({safe(m['path'])})")
    click.echo(f"text: {safe(t['source'])}; {t['chars']:,} characters read in {report['seconds']:.1f} s")
    click.echo("")
    for line in feature_lines(report):
        click.echo(line)
    click.echo("")
    for line in saturation_lines(report):
        click.echo(line)
    if report["saturation"]["summary"]:
        width = shutil.get_terminal_size((100, 24)).columns
        click.echo(saturation_plot(report, width, color=sys.stdout.isatty()))
    if html_path:
        u = report["unit"]
        click.echo(f"\nwrote {safe(report['html'])}: the text coloured by {u['layer']}:{u['quantity']}:{u['index']} "
                   f"({u['chosen_by']})")
