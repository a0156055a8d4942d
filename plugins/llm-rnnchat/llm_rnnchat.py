"""llm plugin: every rnnchat model as an llm model, the recurrent state kept across ``llm -c``."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Optional

import llm
from pydantic import Field

KEEP_STATES = 64


@llm.hookimpl
def register_models(register):
    from rnnchat.plugins.manager import get_host

    for name in get_host().checkpoints:
        register(RnnchatModel(name))


def _text(message) -> str:
    return "".join(getattr(p, "text", "") or "" for p in message.parts)


class RnnchatModel(llm.Model):
    can_stream = True

    class Options(llm.Options):
        temperature: Optional[float] = Field(None, description="0 is greedy (default 0.8)")
        top_k: Optional[int] = Field(None, description="0: off")
        top_p: Optional[float] = Field(None, description="1: off")
        repetition_penalty: Optional[float] = Field(None, description="1: off")
        seed: Optional[int] = Field(None, description="makes the output reproducible")
        max_chars: Optional[int] = Field(None, description="characters to write at most (default 1000)")
        stop: Optional[str] = Field(None, description="stop when this text appears")

    def __init__(self, name: str) -> None:
        self.model_id = name

    def __str__(self) -> str:
        return f"rnnchat: {self.model_id}"

    def _params(self, options):
        from rnnchat.core.errors import SamplingError
        from rnnchat.core.params import SamplingParams

        o = {k: v for k, v in dict(options).items() if v is not None}
        keys = ("temperature", "top_k", "top_p", "repetition_penalty", "seed", "max_chars")
        stop = (o["stop"],) if o.get("stop") else ()
        try:
            return SamplingParams(**{"max_chars": 1000, **{k: o[k] for k in keys if k in o}}, stop=stop).validate()
        except SamplingError as exc:
            raise llm.ModelError(str(exc)) from None

    def execute(self, prompt, stream, response, conversation):
        from rnnchat.core.errors import RnnchatError
        from rnnchat.session.framing import Framing

        params = self._params(prompt.options)
        try:
            engine = _engine(self.model_id)
        except RnnchatError as exc:
            raise llm.ModelError(str(exc)) from None
        framing = Framing.from_meta(engine.loaded.meta)
        close = framing.stop[0] if framing.stop else ""
        params = dataclasses.replace(params, stop=tuple(dict.fromkeys(framing.stop + params.stop)))
        # the conversation so far, as the model reads it: every earlier turn closed by the stop sequence
        messages = list(prompt.messages)
        past = ""
        for m in messages[:-1]:
            past += framing.frame(_text(m)) if m.role == "user" else _text(m) + close
        new = framing.frame(_text(messages[-1]) if messages else prompt.prompt)
        logits, state, read = _restore(engine, self.model_id, past)
        ids = engine.encode(read + new).ids
        if ids:
            logits, state = engine.feed(ids, state)
        elif logits is None:
            logits, state = engine.feed([engine.default_start()], state)
        run = engine.stream(logits, state, params)
        reply = []
        for tok in run:
            reply.append(tok.char)
            yield tok.char
        logits, state = run.logits, run.state
        if run.reason != "stop" and close:  # the saved state ends with the stop sequence, as the text rebuilt later
            logits, state = engine.feed(engine.encode(close).ids, state)
        _save(self.model_id, past + new + "".join(reply) + close, logits, state)


_ENGINES: dict = {}


def _engine(name: str):
    if name not in _ENGINES:
        from rnnchat.engine.runtime import open_engine

        _ENGINES[name] = open_engine(name, "cpu")[0]
    return _ENGINES[name]


def _states_dir():
    from rnnchat.core.paths import data_dir

    return data_dir() / "llm-states"


def _key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _restore(engine, model: str, past: str):
    """(logits, state, text still to read): the saved state of ``past`` if there is one."""
    if past:
        path = _states_dir() / f"{_key(model, past)}.safetensors"
        from rnnchat.core.errors import RnnchatError

        try:
            from rnnchat.core.safe_files import read_regular
            from rnnchat.engine.states import same_shapes, state_from_bytes

            state, logits = state_from_bytes(read_regular(path, 64 << 20), engine.device)
            if logits is not None and same_shapes(state, engine.initial_state()):
                return logits, state, ""
        except (OSError, RnnchatError, ValueError):  # missing or unusable: read the text again
            pass
    return None, engine.initial_state(), past


def _save(model: str, text: str, logits, state) -> None:
    from rnnchat.core.atomic import atomic_path
    from rnnchat.engine.states import state_to_bytes

    folder = _states_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / f"{_key(model, text)}.safetensors") as tmp:
        tmp.write_bytes(state_to_bytes(state, logits))
    files = sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP_STATES:]:
        try:
            os.unlink(old)
        except OSError:
            pass
