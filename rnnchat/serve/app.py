"""The HTTP API (Starlette): /v1/models, /v1/completions, /v1/chat/completions. Torch-free.

The engine is reached through ``backend`` (``rnnchat.engine.serve_backend.Backend``): one
worker per model that takes a :class:`~rnnchat.engine.serve_adapter.Job` and calls back from its
thread; :func:`_events` moves those calls onto the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import time
import uuid

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request as HttpRequest
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from rnnchat.serve.requests import ApiError, Request, parse
from rnnchat.serve.sessions import SessionStore
from rnnchat.session.framing import Framing

MAX_BODY = 1_000_000  # bytes
RETRY_AFTER = "1"
FINISH = {"stop": "stop", "length": "length", "cancelled": "stop"}


def _deliver(take) -> None:
    for emit, events in take():
        emit(events)


def error_response(err: ApiError) -> JSONResponse:
    body = {"error": {"message": err.message, "type": err.kind, "param": err.param, "code": err.code}}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


async def read_json(request: HttpRequest, limit: int):
    """The body as JSON; 413 past ``limit`` bytes (the declared length and the bytes read)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length must be a whole number")
        if int(declared) > limit:
            raise ApiError(413, f"the request body is larger than {limit:,} bytes", code="body_too_large")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the request body is larger than {limit:,} bytes", code="body_too_large")
            chunks.append(chunk)
    except ClientDisconnect:  # (a body shorter than its Content-Length, then gone: no one to answer)
        raise ApiError(400, "the client went away before the end of its request body") from None
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not valid JSON") from None
    except RecursionError:  # (arrays or objects nested ~100,000 deep: a 500 and a traceback before)
        raise ApiError(400, "the request body's JSON is nested too deeply") from None


class Server:
    def __init__(self, backend, api_key: str | None = None, sessions: SessionStore | None = None,
                 max_body: int = MAX_BODY) -> None:
        self.backend, self.api_key, self.max_body = backend, api_key, max_body
        self.sessions = sessions or SessionStore()
        self.created = int(time.time())
        routes = [Route("/v1/models", self.models, methods=["GET"]),
                  Route("/v1/completions", self.completions, methods=["POST"]),
                  Route("/v1/chat/completions", self.chat, methods=["POST"])]
        self.app = Starlette(routes=routes)

    def _auth(self, request: HttpRequest) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.api_key}"
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8")):
            raise ApiError(401, "a valid API key is needed: Authorization: Bearer KEY", kind="authentication_error",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    async def models(self, request: HttpRequest):
        try:
            self._auth(request)
        except ApiError as err:
            return error_response(err)
        data = [{"id": name, "object": "model", "created": self.created, "owned_by": "rnnchat"}
                for name in self.backend.workers]
        return JSONResponse({"object": "list", "data": data})

    async def completions(self, request: HttpRequest):
        return await self._handle(request, "completion")

    async def chat(self, request: HttpRequest):
        return await self._handle(request, "chat")

    async def _handle(self, request: HttpRequest, kind: str):
        try:
            self._auth(request)
            req = parse(await read_json(request, self.max_body), kind)
            worker = self.backend.workers.get(req.model)
            if worker is None:
                raise ApiError(404, f"no model {req.model!r} on this server (see GET /v1/models)", "model",
                               code="model_not_found")
            run = Run(self, req, worker)
            run.submit()
        except ApiError as err:
            return error_response(err)
        if req.stream:
            return StreamingResponse(run.sse(request), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await run.whole(request)


class Run:
    """One request on its way through a model's worker."""

    def __init__(self, server: Server, req: Request, worker) -> None:
        self.server, self.req, self.worker = server, req, worker
        self.id = ("chatcmpl-" if req.kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.queue: asyncio.Queue = asyncio.Queue()
        self.session = None
        self.new_session = False

    def _text_and_start(self):
        req, framing = self.req, Framing.from_meta(self.worker.meta)
        start = None
        if req.session is not None:
            store = self.server.sessions
            s = store.get(req.session)
            if s is not None and s.busy:
                raise ApiError(409, f"session {req.session!r} is answering another request", "session",
                               code="session_busy")
            if s is not None and s.model != req.model:
                raise ApiError(400, f"session {req.session!r} belongs to model {s.model!r}", "session")
            if s is None:
                store.put(req.session, req.model, None, True)
                s, self.new_session = store.get(req.session), True
            s.busy, self.session = True, s
            start = s.handle
        if req.kind == "completion":
            return req.prompt, start, req.params
        params = req.params
        params = dataclasses.replace(params, stop=tuple(dict.fromkeys(framing.stop + params.stop)))
        if start is not None:  # only the new turn: the state already holds the conversation
            return framing.frame(req.messages[-1][1], close_previous=not self.session.closed), start, params
        close = framing.stop[0] if framing.stop else ""
        parts = [framing.frame(c) if role == "user" else c + close for role, c in req.messages]
        return "".join(parts), None, params

    def submit(self) -> None:
        from rnnchat.engine.serve_adapter import Busy, Job  # the adapter is torch's side; loaded already

        text, start, params = self._text_and_start()
        if self.worker.post is None:  # the worker's events come to this loop, one wake-up per batch
            loop = asyncio.get_running_loop()
            self.worker.post = lambda take: loop.call_soon_threadsafe(_deliver, take)
        self.job = Job(text, params, self.req.n, self.queue.put_nowait, start)
        try:
            self.worker.submit(self.job)
        except Busy as exc:
            self._release(None, None)
            raise ApiError(429, str(exc), kind="rate_limit_error", code="queue_full",
                           headers={"Retry-After": RETRY_AFTER}) from None

    def _release(self, handle, reasons) -> None:
        s, store = self.session, self.server.sessions
        if s is None:
            return
        s.busy = False
        if handle is not None:
            s.handle, s.closed = handle, reasons.get(0) == "stop"
        elif self.new_session:
            store._items.pop(self.req.session, None)

    def cancel(self) -> None:
        self.job.cancel()
        self.worker.wake()

    async def events(self, request: HttpRequest):
        """Yields lists of events until the job is done; cancels it if the client goes away.
        (The engine posts at most every 50 ms, so one chunk carries several characters.)"""
        done = False
        try:
            while not done:
                if self.queue.empty():
                    try:
                        async with asyncio.timeout(0.5):  # (no task per wait, as wait_for makes)
                            batch = await self.queue.get()
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        continue
                else:
                    batch = self.queue.get_nowait()
                while not self.queue.empty():
                    batch = batch + self.queue.get_nowait()
                done = any(ev[0] in ("done", "error") for ev in batch)
                yield batch
        finally:
            if not done:
                self.cancel()

    def _usage(self, texts) -> dict:
        c = sum(len(t) for t in texts)
        return {"prompt_tokens": self.job.prompt_chars, "completion_tokens": c,
                "total_tokens": self.job.prompt_chars + c}

    async def whole(self, request: HttpRequest):
        texts, got = [""] * self.req.n, _Outcome()
        async for batch in self.events(request):
            for i, t in got.take(batch).items():
                texts[i] += t
        handle, reasons, error = got.handle, got.reasons, got.error
        self._release(handle, reasons)
        if error is not None:
            return error_response(ApiError(500, error, kind="server_error"))
        chat = self.req.kind == "chat"
        choices = []
        for i, t in enumerate(texts):
            c = {"index": i, "finish_reason": FINISH.get(reasons.get(i), "stop"), "logprobs": None}
            c.update({"message": {"role": "assistant", "content": t}} if chat else {"text": t})
            choices.append(c)
        return JSONResponse({"id": self.id, "object": "chat.completion" if chat else "text_completion",
                             "created": self.created, "model": self.req.model, "choices": choices,
                             "usage": self._usage(texts)})

    def _chunk(self, i: int, text: str | None, finish: str | None, first: bool = False) -> str:
        if self.req.kind == "chat":
            delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
            choice = {"index": i, "delta": delta, "finish_reason": finish, "logprobs": None}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": i, "text": text or "", "finish_reason": finish, "logprobs": None}
            obj = "text_completion"
        body = {"id": self.id, "object": obj, "created": self.created, "model": self.req.model, "choices": [choice]}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    async def sse(self, request: HttpRequest):
        got = _Outcome()
        try:
            if self.req.kind == "chat":
                for i in range(self.req.n):
                    yield self._chunk(i, None, None, first=True)
            async for batch in self.events(request):
                out = [self._chunk(i, t, None) for i, t in got.take(batch).items()]
                if got.error is not None:
                    err = {"error": {"message": got.error, "type": "server_error", "param": None, "code": None}}
                    out.append(f"data: {json.dumps(err)}\n\n")
                if got.done:
                    out += [self._chunk(i, None, FINISH.get(got.reasons.get(i), "stop")) for i in range(self.req.n)]
                if out:
                    yield "".join(out)
            yield "data: [DONE]\n\n"
        finally:
            self._release(got.handle, got.reasons)


class _Outcome:
    """What a job's events said so far: text pieces are returned, the rest is kept."""

    def __init__(self) -> None:
        self.reasons: dict[int, str] = {}
        self.handle = self.error = None
        self.done = False

    def take(self, batch) -> dict[int, str]:
        pieces: dict[int, str] = {}
        for ev in batch:
            if ev[0] == "end":
                self.reasons[ev[1]] = ev[2]
            elif ev[0] == "done":
                self.handle, self.done = ev[1], True
            elif ev[0] == "error":
                self.error = ev[1]
            else:
                pieces[ev[0]] = pieces.get(ev[0], "") + ev[1]
        return pieces
