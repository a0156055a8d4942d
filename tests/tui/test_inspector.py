"""The inspector (F4, /inspect) over the real ChatSession and the FakeEngine's deterministic
activations: colours, legend, cursor panel, auto, off, bad arguments, and nothing read while off."""

from __future__ import annotations

import contextlib

import numpy as np
from tui_helpers import idle, ready, send, wait_for

from rnnchat.tui.inspector_paint import CURSOR, level_style
from rnnchat.tui.widgets.inspector import Inspector

REPLY = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east."


def inspector(app) -> Inspector | None:
    found = list(app.query(Inspector))
    return found[0] if found else None


async def command(pilot, line: str) -> None:
    app = pilot.app
    app.input.focus()
    app.input.value = line
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


async def reading(pilot):
    """Wait until the inspector has read the conversation as it is now (or failed)."""
    app = pilot.app
    await wait_for(pilot, lambda: inspector(app) is not None and not inspector(app).busy
                   and inspector(app).sig is not None and (inspector(app).reading is not None or inspector(app).error),
                   "the inspector's reading")
    await pilot.pause()
    return inspector(app)


@contextlib.asynccontextmanager
async def chatting(harness, *messages: str, **kw):
    """The app over a fake engine that answers REPLY, after ``messages`` were sent and answered."""
    h = harness(replies=(REPLY,), **kw)
    app = h.app()
    async with app.run_test(size=(120, 35)) as pilot:
        await ready(pilot)
        for text in messages:
            await send(pilot, text)
        yield h, app, pilot


def panel_text(app) -> str:
    return inspector(app).render().plain


def fake_values(h, layer: int, name: str) -> tuple[str, np.ndarray]:
    """The fake engine's activations over the conversation, computed anew from its start state."""
    s = h.session
    text = "".join(t.fed for t in s.turns)
    acts, _ = h.engine._activations(s.turns[0].snapshot.state, [ord(c) for c in text], None)
    return text, acts[(layer, name)]


async def test_auto_colours_the_transcript_by_the_line_position_unit(harness):
    async with chatting(harness, "Who goes there?") as (h, app, pilot):
        assert h.engine.inspected == []  # off: nothing was re-read
        await pilot.press("f4")
        ins = await reading(pilot)
        r = ins.reading
        assert (r.layer, r.quantity, r.index, r.chosen_by) == (2, "c", 3, "line_position")
        assert r.r is not None and r.r < -0.99  # the fake's unit is minus a tenth of the position in the line
        legend = panel_text(app).splitlines()[0]
        assert legend.startswith("layer 2 unit 3 c (cell state) · blue ") and " red +" in legend
        assert "auto: line_position r -1.00 over this conversation's " in legend
        assert "characters (the model's corpus is not on this machine)" in legend
        assert app.focused is ins
        user, model = app.transcript.turn_views()
        assert user.paint is not None and model.paint is not None
        # every character shown has the colour of its value on the legend's scale
        text, values = fake_values(h, 2, "c")
        body = model.render().renderables[1]
        assert body.plain == REPLY[len("ROMEO:\n"):]
        shown = len(h.session.turns[0].fed) + len("ROMEO:\n")
        for k in range(len(body.plain)):
            style = body.get_style_at_offset(app.console, k)
            expected = level_style(int(round(max(-1, min(1, values[shown + k, 3] / r.half)) * 8)))
            assert style.bgcolor == expected.bgcolor, f"character {k} {body.plain[k]!r}"
        assert body.get_style_at_offset(app.console, len(body.plain) - 1).reverse  # the cursor: the last character
        assert "blue" in legend and level_style(-8).bgcolor is not None


async def test_the_cursor_panel_lists_the_strongest_units_under_the_cursor(harness):
    async with chatting(harness, "Hi\nthere") as (h, app, pilot):
        await command(pilot, "/inspect 1:2:h")
        ins = await reading(pilot)
        assert panel_text(app).startswith("layer 1 unit 2 h (hidden state)")
        await pilot.press("home")
        text = "".join(t.fed for t in h.session.turns)
        first = text.index("Hi")
        assert ins.cursor_position() == first
        lines = panel_text(app).splitlines()
        assert lines[1].startswith("at 'H' (#1 You, character ") and "1:h:2 " in lines[1]
        _, h1 = fake_values(h, 1, "h")
        assert f"{h1[first, 2]:+.3f}" in lines[1]
        # the strongest state units at that character (c and h of both layers), largest |value| first
        rows = []
        for layer in (1, 2):
            for name in ("c", "h"):
                _, block = fake_values(h, layer, name)
                rows += [(abs(v), f"{layer}:{name}:{j}", v) for j, v in enumerate(block[first])]
        rows.sort(key=lambda r: -r[0])
        shown = lines[2].removeprefix("strongest here: ").split("  ")
        assert [s.split()[0] for s in shown] == [label for _, label, _ in rows[:8]]
        assert shown[0].split()[1] == f"{rows[0][2]:+.2f}"
        await pilot.press("right")
        assert ins.cursor_position() == first + 1 and panel_text(app).splitlines()[1].startswith("at 'i'")
        await pilot.press("down")  # the next line: "there", same column (clamped)
        assert panel_text(app).splitlines()[1].startswith("at 'h'")
        await pilot.press("end")
        assert ins.cursor_position() == text.index("east.") + 4  # the reply's last character shown
        user, _ = app.transcript.turn_views()
        assert not user.render().renderables[1].get_style_at_offset(app.console, 0).reverse
        await pilot.press("escape")
        assert app.focused is app.input and inspector(app) is not None


async def test_off_and_the_key_toggle_remove_the_colours(harness):
    async with chatting(harness, "Who goes there?") as (h, app, pilot):
        await command(pilot, "/inspect auto")
        await reading(pilot)
        await command(pilot, "/inspect off")
        await pilot.pause()
        assert inspector(app) is None and all(v.paint is None for v in app.transcript.turn_views())
        reads = len(h.engine.inspected)
        await send(pilot, "And you?")  # off: the conversation grows, nothing is re-read
        await pilot.pause(0.6)
        assert len(h.engine.inspected) == reads
        await pilot.press("f4")
        await reading(pilot)
        assert len(app.transcript.turn_views()) == 4 and all(v.paint for v in app.transcript.turn_views())
        await pilot.press("f4")
        await pilot.pause()
        assert inspector(app) is None and not any(v.paint for v in app.transcript.turn_views())


async def test_a_new_reply_is_coloured_once_it_has_ended(harness):
    async with chatting(harness, "One") as (h, app, pilot):
        await pilot.press("f4")
        await reading(pilot)
        await send(pilot, "Two")
        await wait_for(pilot, lambda: idle(app) and len(inspector(app).reading.turns) == 4, "the re-read")
        await pilot.pause()
        assert all(v.paint is not None for v in app.transcript.turn_views())
        assert inspector(app).cursor_position() == len(inspector(app).reading.text) - len("\n\n") - 1


async def test_bad_arguments_are_one_line_errors(harness):
    async with chatting(harness) as (h, app, pilot):
        await command(pilot, "/inspect")  # nothing said yet
        await reading(pilot)
        assert h.errors()[-1] == "nothing to inspect yet: say something first"
        await command(pilot, "/inspect off")
        await send(pilot, "Who goes there?")
        await command(pilot, "/inspect layer two")
        assert h.errors()[-1].startswith("/inspect 'layer two': write /inspect LAYER:UNIT[:QUANTITY]")
        assert app.input.value == "/inspect layer two" and inspector(app) is None  # left in the input to fix
        for line, error in (("/inspect 9:0", "/inspect: the model has layers 1-2 (numbered from 1)"),
                            ("/inspect 2:8", "/inspect: layer 2 c has 8 units (0-7)"),
                            ("/inspect 2:0:q", "/inspect: layer 2 has no quantity 'q'; it has c, h, f"),
                            ("/inspect auto nosuch", "/inspect auto: no feature 'nosuch'; features: line_position,"),
                            ("/inspect auto in_quotes", "/inspect auto: in_quotes is constant over this conversation's ")):
            await command(pilot, line)
            ins = await reading(pilot)
            assert h.errors()[-1].startswith(error) and "\n" not in h.errors()[-1], line
            assert panel_text(app).startswith("inspector: " + error)
            assert not any(v.paint for v in app.transcript.turn_views())
        await command(pilot, "/inspect auto vowel")  # a good one after the bad ones
        ins = await reading(pilot)
        assert ins.reading.chosen_by == "vowel" and ins.error is None


async def test_auto_ranks_over_the_models_held_out_text_once(harness):
    corpus = "".join(f"SPEAKER {k}:\n" + "word " * (k % 7 + 1) + "\n" for k in range(60))
    async with chatting(harness, "One", corpus=corpus) as (h, app, pilot):
        await command(pilot, "/inspect auto")
        ins = await reading(pilot)
        conversation = len(ins.reading.text)
        assert h.engine.inspected == [1024, len(corpus) - 1024, conversation]  # the sample, then the conversation
        assert (ins.reading.label, ins.reading.ranked_over) == ("2:c:3", f"{len(corpus):,} characters of the "
                                                                          "held-out part of the fake corpus")
        assert f"r -1.00 over {len(corpus):,} characters of the held-out part" in panel_text(app)
        await send(pilot, "Two")
        await wait_for(pilot, lambda: len(inspector(app).reading.turns) == 4, "the re-read")
        assert h.engine.inspected[3:] == [len(inspector(app).reading.text)]  # ranked once per model: not again
        await command(pilot, "/inspect auto in_quotes")
        await reading(pilot)
        assert h.errors()[-1] == (f"/inspect auto: in_quotes is constant over {len(corpus):,} characters of the "
                                  "held-out part of the fake corpus; name a unit instead (/inspect 2:0)")


async def test_turned_on_during_a_reply_it_reads_once_the_reply_has_ended(harness, gate):
    async with chatting(harness, gate=gate, hold_after=5) as (h, app, pilot):
        await send(pilot, "One", wait=False)
        await wait_for(pilot, lambda: len(h.produced()) == 5, "the reply to start")
        await pilot.press("f4")
        await pilot.pause(0.6)
        assert inspector(app) is not None and h.engine.inspected == []  # nothing read while the reply is written
        assert "reading the conversation" in panel_text(app)
        gate.set()
        ins = await reading(pilot)
        assert ins.reading.label == "2:c:3" and all(v.paint for v in app.transcript.turn_views())
        assert app.focused is ins


async def test_a_regenerated_reply_is_coloured_in_its_new_view(harness):
    async with chatting(harness, "One") as (h, app, pilot):
        await pilot.press("f4")
        first = await reading(pilot)
        read = first.reading
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: idle(app) and inspector(app).reading is not read
                       and not inspector(app).busy, "the re-read after the regenerate")
        await pilot.pause()
        user, model = app.transcript.turn_views()
        assert model.text == REPLY and user.paint is not None and model.paint is not None
        assert inspector(app).reading.turns[1].turn == 1


async def test_a_click_on_a_coloured_character_moves_the_cursor_there(harness):
    async with chatting(harness, "Who goes there?") as (h, app, pilot):
        await pilot.press("f4")
        ins = await reading(pilot)
        user = app.transcript.turn_views()[0]
        app.input.focus()
        left, top = user.content_region.x - user.region.x, user.content_region.y - user.region.y
        await pilot.click(user, offset=(left + 4, top + 1))  # the body's first line, its fifth character
        await pilot.pause()
        assert ins.cursor_position() == len("YOU:\n") + 4 and app.focused is ins
        assert panel_text(app).splitlines()[1].startswith("at 'g' (#1 You")
        await pilot.press("right")
        assert panel_text(app).splitlines()[1].startswith("at 'o' (#1 You")
