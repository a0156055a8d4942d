"""`rnnchat serve` against the official `openai` client (and http.client for what it cannot send)."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlparse

import pytest

openai = pytest.importorskip("openai")

from tests.serve.conftest import KEY  # noqa: E402


def raw(base, method, path, body=b"", headers=None, chunked=False):
    u = urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **(headers or {})}
    if chunked:
        conn.putrequest(method, path)
        for k, v in {**h, "Transfer-Encoding": "chunked"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        for i in range(0, len(body), 65536):
            part = body[i:i + 65536]
            try:
                conn.send(b"%x\r\n%s\r\n" % (len(part), part))
            except OSError:
                break
        try:
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass
    else:
        conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    return resp, conn


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_completion_seeded_and_streamed_agree(client):
    kw = dict(model="tiny", prompt="The ", max_tokens=40, seed=7, temperature=1.0)
    a = client.completions.create(**kw)
    b = client.completions.create(**kw)
    assert a.choices[0].text == b.choices[0].text
    assert len(a.choices[0].text) == 40 and a.choices[0].finish_reason == "length"
    assert a.usage.completion_tokens == 40 and a.usage.prompt_tokens == 4
    chunks = list(client.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks) == a.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_n_choices_differ_and_first_is_the_seed(client):
    one = client.completions.create(model="tiny", prompt="a", max_tokens=30, seed=3, temperature=1.0)
    two = client.completions.create(model="tiny", prompt="a", max_tokens=30, seed=3, temperature=1.0, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.choices[0].text == one.choices[0].text
    assert two.choices[1].text != two.choices[0].text


def test_stop_sequence(client):
    r = client.completions.create(model="tiny", prompt="a", max_tokens=500, seed=1, temperature=1.0, stop=["e"])
    assert "e" not in r.choices[0].text and r.choices[0].finish_reason == "stop"


def test_chat_streaming_and_not(client):
    msgs = [{"role": "user", "content": "hello"}]
    r = client.chat.completions.create(model="tiny", messages=msgs, max_tokens=60, seed=5, temperature=1.0)
    text = r.choices[0].message.content
    assert r.choices[0].message.role == "assistant" and "\n\n" not in text
    assert r.usage.prompt_tokens == len("ME:\nhello\n\n")
    chunks = list(client.chat.completions.create(model="tiny", messages=msgs, max_tokens=60, seed=5,
                                                 temperature=1.0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_penalties_change_the_text(client):
    kw = dict(model="tiny", prompt="a", max_tokens=60, seed=2, temperature=1.0)
    plain = client.completions.create(**kw).choices[0].text
    pen = client.completions.create(frequency_penalty=2.0, presence_penalty=2.0, **kw).choices[0].text
    assert pen != plain
    assert max(pen.count(c) for c in set(pen)) <= max(plain.count(c) for c in set(plain))


def test_errors(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="nope", prompt="a")
    assert e.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="a", temperature=-1)
    assert e.value.body["message"] == "temperature must be a number in [0, 100] (0 is greedy), not -1"
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="a", max_tokens=0)
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="a", presence_penalty=3)
    bad = openai.OpenAI(base_url=server[0] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    resp, conn = raw(server[0], "POST", "/v1/completions", b"{not json")
    assert resp.status == 400 and json.loads(resp.read())["error"]["type"] == "invalid_request_error"
    conn.close()
    resp, conn = raw(server[0], "POST", "/v1/completions", b"{}", headers={"Authorization": ""})
    assert resp.status == 401
    conn.close()


def test_json_nested_too_deeply_is_a_400(server):
    resp, conn = raw(server[0], "POST", "/v1/completions", b"[" * 200_000 + b"]" * 200_000)
    body = json.loads(resp.read())
    assert resp.status == 400 and body["error"]["message"] == "the request body's JSON is nested too deeply"
    conn.close()


def test_a_body_shorter_than_its_length_then_a_hang_up_leaves_no_traceback(server):
    import socket

    port = urlparse(server[0]).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: 500\r\n\r\n{\"model\":")
        s.shutdown(socket.SHUT_WR)
        s.recv(100)
    time.sleep(0.5)
    log = (server[1] / "server.log").read_text()
    assert "Traceback" not in log and "ClientDisconnect" not in log
    resp, conn = raw(server[0], "GET", "/v1/models")
    assert resp.status == 200  # still serving
    conn.close()


def test_body_limit_declared_and_counted(server):
    big = json.dumps({"model": "tiny", "prompt": "a" * 1_100_000}).encode()
    resp, conn = raw(server[0], "POST", "/v1/completions", big)
    assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "body_too_large"
    conn.close()
    resp, conn = raw(server[0], "POST", "/v1/completions", big, chunked=True)  # no Content-Length
    assert resp.status == 413
    conn.close()


def test_session_continues_without_rereading(client):
    first = [{"role": "user", "content": "hi"}]
    kw = dict(model="tiny", max_tokens=30, temperature=0)
    a = client.chat.completions.create(messages=first, extra_body={"session": "s1"}, **kw)
    reply = a.choices[0].message.content
    second = first + [{"role": "assistant", "content": reply}, {"role": "user", "content": "more"}]
    b = client.chat.completions.create(messages=second, extra_body={"session": "s1"}, **kw)
    assert b.usage.prompt_tokens == len("ME:\nmore\n\n") + (a.choices[0].finish_reason == "length") * 2
    whole = client.chat.completions.create(messages=second, **kw)  # the same conversation read again
    assert whole.usage.prompt_tokens > b.usage.prompt_tokens
    assert whole.choices[0].message.content == b.choices[0].message.content
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(messages=first, n=2, extra_body={"session": "s1"}, **kw)


def test_queue_full_429_and_disconnect_frees_the_streams(client, server):
    body = json.dumps({"model": "tiny", "prompt": "a", "max_tokens": 1_000_000, "n": 2, "stream": True}).encode()
    resp, conn = raw(server[0], "POST", "/v1/completions", body)
    assert resp.status == 200
    assert resp.read(6) == b"data: "  # generating: both streams are taken
    with pytest.raises(openai.RateLimitError) as e:
        client.completions.create(model="tiny", prompt="a", max_tokens=5)
    assert e.value.response.headers["retry-after"] == "1"
    resp.close()
    conn.close()  # the client goes away: its million characters must stop at once
    deadline = time.monotonic() + 20
    while True:
        try:
            r = client.completions.create(model="tiny", prompt="a", max_tokens=5, n=2)
            break
        except openai.RateLimitError:
            assert time.monotonic() < deadline, "the disconnected stream kept its places"
            time.sleep(0.1)
    assert len(r.choices) == 2
