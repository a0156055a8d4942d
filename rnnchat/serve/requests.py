"""Read and check an OpenAI-style request body (torch-free). Every mistake is an :class:`ApiError`
(400) naming the parameter, with the message the CLI gives for the same value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams

MAX_N = 16
MAX_STOPS = 4
MAX_PROMPT_CHARS = 100_000
DEFAULTS = SamplingParams()  # rnnchat's one set of defaults (rnnchat/core/params.py)
DEFAULT_MAX_TOKENS = {"completion": 16, "chat": DEFAULTS.max_chars}  # OpenAI's completions default; chat: rnnchat's
SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
ROLES = ("system", "user", "assistant")
# the CLI's message names a setting; the API names the field
_PARAM_OF = {"temperature": "temperature", "top-k": "top_k", "top-p": "top_p", "repetition": "repetition_penalty",
             "min-p": "min_p", "presence": "presence_penalty", "frequency": "frequency_penalty",
             "seed": "seed", "max chars": "max_tokens", "stop": "stop"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code
        self.headers = headers or {}


@dataclass
class Request:
    model: str
    kind: str                     # "completion" or "chat"
    params: SamplingParams
    n: int = 1
    stream: bool = False
    prompt: str = ""              # completions
    messages: list = field(default_factory=list)  # chat: [(role, content)]
    session: str | None = None


def _number(body: dict, key: str, default):
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ApiError(400, f"{key} must be a number, not {v!r}", key)
    return v


def _whole(body: dict, key: str, default):
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(400, f"{key} must be a whole number, not {v!r}", key)
    return v


def _stops(body: dict) -> tuple[str, ...]:
    v = body.get("stop")
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or any(not isinstance(s, str) or not s for s in stops):
        raise ApiError(400, f"stop must be a non-empty string or a list of at most {MAX_STOPS} of them", "stop")
    return tuple(stops)


def parse(body, kind: str) -> Request:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model must be a model name (see GET /v1/models)", "model")
    n = _whole(body, "n", 1)
    if not 1 <= n <= MAX_N:
        raise ApiError(400, f"n must be a whole number in [1, {MAX_N}], not {n!r}", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"stream must be true or false, not {stream!r}", "stream")
    session = body.get("session")
    if session is not None:
        if not isinstance(session, str) or not SESSION_ID.match(session):
            raise ApiError(400, "session must be 1-128 characters of letters, digits and _ . : -", "session")
        if n != 1:
            raise ApiError(400, "a session continues one stream: n must be 1", "n")
    params = SamplingParams(
        temperature=_number(body, "temperature", DEFAULTS.temperature), top_k=_whole(body, "top_k", DEFAULTS.top_k),
        top_p=_number(body, "top_p", DEFAULTS.top_p),
        repetition_penalty=_number(body, "repetition_penalty", DEFAULTS.repetition_penalty),
        min_p=_number(body, "min_p", DEFAULTS.min_p),
        presence_penalty=_number(body, "presence_penalty", DEFAULTS.presence_penalty),
        frequency_penalty=_number(body, "frequency_penalty", DEFAULTS.frequency_penalty),
        seed=_whole(body, "seed", None), max_chars=_whole(body, "max_tokens", DEFAULT_MAX_TOKENS[kind]),
        stop=_stops(body))
    try:
        params.validate()
    except SamplingError as exc:
        msg = str(exc)
        raise ApiError(400, msg, next((p for k, p in _PARAM_OF.items() if msg.startswith(k)), None)) from None
    req = Request(model, kind, params, n, stream, session=session)
    if kind == "completion":
        prompt = body.get("prompt", "")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string (one prompt per request)", "prompt")
        req.prompt = prompt
    else:
        req.messages = _messages(body.get("messages"))
    if len(req.prompt) + sum(len(c) for _, c in req.messages) > MAX_PROMPT_CHARS:
        raise ApiError(400, f"the prompt is longer than {MAX_PROMPT_CHARS:,} characters", "messages")
    return req


def _content(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(parts) == len(content) and all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise ApiError(400, "a message's content must be a string or a list of text parts", "messages")


def _messages(messages) -> list:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", "messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"each message must be an object with a role ({', '.join(ROLES)}) and content",
                           "messages")
        out.append((m["role"], _content(m.get("content"))))
    if out[-1][0] != "user":
        raise ApiError(400, "the last message must be the user's", "messages")
    return out
