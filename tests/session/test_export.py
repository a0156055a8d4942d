"""Exports: every reply carries the values it was written with, in Markdown and in JSON."""

from __future__ import annotations

import json

from rnnchat.session import ChatSession
from rnnchat.session.fake_engine import FakeEngine


def test_each_reply_keeps_its_values_in_markdown_and_json(tmp_path):
    s = ChatSession("fake", autosave=False, engine=FakeEngine.opener())
    s.load()
    try:
        for temp in (0.0, 1.5):
            s.update_params(temperature=temp, repetition_penalty=1.2 if temp else 1.0)
            for _ in s.send("Hi"):
                pass
        md = s.export_markdown(tmp_path / "c.md").read_text()
        assert "temperature 0.00, top-k off, top-p 1.00, repetition penalty off" in md
        assert "temperature 1.50, top-k off, top-p 1.00, repetition penalty 1.2" in md
        data = json.loads(s.export_markdown(tmp_path / "c.json").read_text())
        assert data["format"] == "rnnchat-conversation" and data["model"]["name"] == "fake"
        temps = [t["params"]["temperature"] for t in data["turns"] if t["role"] == "model"]
        assert temps == [0.0, 1.5] and data["turns"][0]["text"] == "Hi"
        assert s.export_markdown("json").suffix == ".json"
    finally:
        s.close()
