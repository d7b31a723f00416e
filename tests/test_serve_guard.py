"""`serve.guard` and what it buys a real `serve-rm`: bodies refused by size before they are read, strict JSON,
short errors that never echo the body, the API key, and `/health` answering while a large request is scored."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from http_server import serving
from pydantic import BaseModel

from rmteach.backends.reward_http import HTTPRewardModel
from rmteach.core.errors import UserError
from rmteach.core.remote import RemoteRMConfig
from rmteach.serve.app import RewardRequest, ScoreRequest, build_app
from rmteach.serve.guard import Refused, check_key, parse, read_body, where

MB = 10**6


class _LengthRM:
    """Rewards = the response's length in characters; sleeps `pause` s per 500 pairs (a forward pass)."""

    name = "length"

    def __init__(self, pause: float = 0.0) -> None:
        self.pause, self.started = pause, threading.Event()

    def score(self, prompts, completions, progress=None):
        self.started.set()
        for _ in range(0, len(prompts), 500):
            time.sleep(self.pause)
        return np.array([len(c) for c in completions], dtype=np.float64)

    def close(self):
        pass


def _refusal(fn, *args) -> tuple[int, str]:
    with pytest.raises(Refused) as e:
        fn(*args)
    return e.value.status, e.value.detail


# -- The checks one by one --------------------------------------------------------------------------------------


@pytest.mark.parametrize("header, key, status", [
    (None, None, None), ("Bearer anything", None, None),  # no key set: every request passes
    ("Bearer k-1", "k-1", None), ("bearer k-1", "k-1", None), ("Bearer  k-1 ", "k-1", None),
    ("Bearer k-2", "k-1", 401), ("Bearer k-1x", "k-1", 401), ("Bearer ", "k-1", 401), ("k-1", "k-1", 401),
    ("Basic k-1", "k-1", 401), (None, "k-1", 401), ("Bearer kéy", "kéy".encode().decode("latin-1"), 401),
])
def test_the_key_must_be_sent_as_a_bearer_token(header, key, status):
    if status is None:
        check_key(header, key)
    else:
        got, detail = _refusal(check_key, header, key)
        assert got == status and "Bearer" in detail and (key not in detail)


def test_a_utf8_key_matches_the_header_bytes_starlette_hands_over():
    check_key("Bearer kéy".encode().decode("latin-1"), "kéy")  # Starlette decodes header bytes as latin-1


async def _chunks(pulled: list[int], sizes: list[int]):
    for n in sizes:
        pulled.append(n)
        yield b"x" * n


@pytest.mark.parametrize("length, sizes, limit, status, pulled", [
    ("50000000", [10] * 5, 100, 413, 0),  # refused on the header alone: not one chunk read
    (None, [40] * 10, 100, 413, 3),  # chunked: refused at the chunk that passes the limit
    ("abc", [10], 100, 400, 0),
    (None, [40, 60], 100, None, 2), ("100", [100], 100, None, 1),  # exactly the limit passes
])
def test_bodies_past_the_limit_are_refused_before_or_while_read(length, sizes, limit, status, pulled):
    seen: list[int] = []
    run = lambda: asyncio.run(read_body(length, _chunks(seen, sizes), limit))  # noqa: E731
    if status is None:
        assert run() == b"x" * sum(sizes)
    else:
        assert _refusal(run)[0] == status
    assert len(seen) == pulled


class _Body(BaseModel):
    query: list[str]


@pytest.mark.parametrize("raw, model, status, detail", [
    (b'{"query": [NaN]}', RewardRequest, 400, "the body is not JSON: expected value at line 1 column 12"),
    (b'{"query": ["a"], "prompts": ["a"], "x": Infinity}', RewardRequest, 400, "not JSON"),
    (b'{"query": ["a"], "x": -Infinity}', RewardRequest, 400, "not JSON"),
    (b'{"query": ["a\xff"]}', RewardRequest, 400, "invalid unicode code point at line 1 column 14"),
    (b'{"query": ["a\\ud800"]}', RewardRequest, 400, "not JSON"),  # a lone surrogate
    (b'{"query": ["a\\udc00b"]}', RewardRequest, 400, "not JSON"),
    (b"[1]", RewardRequest, 422, "the body is a JSON array; expected an object"),
    (b"null", RewardRequest, 422, "the body is a JSON null; expected an object"),
    (b'{"query": ["a", 7, 8]}', RewardRequest, 422, "query[1]: Input should be a valid string (got int)"),
    (b'{"query": ["a"], "prompts": [null]}', RewardRequest, 422,
     "prompts[0]: Input should be a valid string (got null)"),
    (b'{"prompts": ["a"]}', RewardRequest, 422, "query: Field required"),
    (b'{"prompts": 3}', RewardRequest, 422, "query: Field required; also bad: prompts"),
    (b'{"text_1": ["a", {}], "text_2": "b"}', ScoreRequest, 422,
     "text_1[1]: Input should be a valid string (got object)"),
    (b'{"text_1": "a", "text_2": 5}', ScoreRequest, 422, "text_2: Input should be a valid string (got int)"),
    (b'{"text_1": [], "text_2": [[]]}', ScoreRequest, 422, "text_2[0]: Input should be a valid string (got array)"),
])
def test_bad_json_and_bad_shapes_are_named_in_one_short_line(raw, model, status, detail):
    got, message = _refusal(parse, raw, model)
    assert got == status and detail in message and len(message) < 300


def test_a_surrogate_pair_is_one_character_and_a_million_bad_items_are_one_error():
    assert parse(b'{"query": ["\\ud83d\\ude00"]}', _Body).query == ["\U0001f600"]
    status, message = _refusal(parse, b'{"query": [' + b"1," * 10**6 + b'1], "prompts": [2]}', RewardRequest)
    assert (status, message) == (422, "query[0]: Input should be a valid string (got int); also bad: prompts")
    assert where(("text_2", "list[str]", 3)) == "text_2[3]" and where(()) == "the body"


# -- On a real server ---------------------------------------------------------------------------------------------


def _raw_post(base: str, head: str, body: bytes = b"") -> bytes:
    """POST `body` after the request line and `head` on a plain socket; the whole reply (the server closes)."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        s.sendall(f"POST /get_reward HTTP/1.1\r\nHost: {url.netloc}\r\n{head}\r\n".encode() + body)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):  # one JSON reply, headers first
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


@pytest.mark.slow
def test_a_50_mb_body_is_refused_in_under_1_s_with_a_reply_under_1_kb():
    junk = b"[" + b"1e999," * (50 * MB // 6)  # not even JSON, as the hostile probe sent
    with serving(build_app(_LengthRM())) as base:
        # Only the headers go out: the 413 comes back without the server waiting for a byte of the body.
        reply = _raw_post(base, "Content-Type: application/json\r\nContent-Length: 50000000\r\n")
        assert reply.startswith(b"HTTP/1.1 413 ") and len(reply) < 1024
        for content in (junk, iter([junk[i : i + MB] for i in range(0, len(junk), MB)])):  # sized, then chunked
            start = time.perf_counter()
            r = httpx.post(base + "/get_reward", content=content, timeout=10)
            took = time.perf_counter() - start
            assert r.status_code == 413 and len(r.content) < 1024 and took < 1.0
            assert r.json()["detail"].startswith("the request body is larger than this server's limit of 16000000 ")
        assert httpx.get(base + "/health").status_code == 200


def test_an_invalid_body_under_the_limit_is_a_short_422_and_leaves_health_answering():
    numbers = b'{"query": [' + b"12345," * (10 * MB // 6) + b'1], "prompts": ["Q: "]}'  # 10 MB of numbers
    with serving(build_app(_LengthRM())) as base:
        start = time.perf_counter()
        r = httpx.post(base + "/get_reward", content=numbers, timeout=10)
        took = time.perf_counter() - start
        assert r.status_code == 422 and len(r.content) < 1024 and took < 2.0
        assert r.json() == {"detail": "query[0]: Input should be a valid string (got int)"}
        assert httpx.get(base + "/health").json() == {"status": "ok", "model": "length"}


@pytest.mark.parametrize("raw", [
    b'{"query": [NaN], "prompts": ["Q: "]}', b'{"query": ["Q: a"], "prompts": ["Q: "], "labels": [Infinity]}',
    b'{"query": ["Q: a\xff\xfe"], "prompts": ["Q: "]}', b'{"query": ["Q: a\\ud800"], "prompts": ["Q: "]}',
    b'{"query": [1e999], "prompts": ["Q: "]}',
])
def test_nan_infinity_and_bad_unicode_are_4xx_on_every_endpoint(raw):
    score_raw = raw.replace(b'"query"', b'"text_2"').replace(b'"prompts"', b'"text_1"')
    with serving(build_app(_LengthRM())) as base:
        got = [httpx.post(base + path, content=body) for path, body in
               (("/get_reward", raw), ("/score", score_raw), ("/v1/score", score_raw))]
    assert [r.status_code in (400, 422) for r in got] == [True] * 3
    assert all(len(r.content) < 1024 and set(r.json()) == {"detail"} for r in got)


@pytest.mark.slow
def test_health_answers_within_100_ms_while_20000_texts_are_scored():
    rm = _LengthRM(pause=0.05)  # 40 forwards of 500 pairs: 2 s of scoring
    prompts = [f"Q{i}: " for i in range(20_000)]
    responses = [" ".join(f"w{j}" for j in range(i % 9 + 1)) for i in range(20_000)]
    body = json.dumps({"query": [p + r for p, r in zip(prompts, responses)], "prompts": prompts}).encode()
    got, waits = {}, []
    with serving(build_app(rm)) as base, httpx.Client(base_url=base, timeout=5) as http:
        http.get("/health")  # one connection, opened before the big request
        post = lambda: got.update(r=httpx.post(base + "/get_reward", content=body, timeout=60))  # noqa: E731
        worker = threading.Thread(target=post)
        worker.start()
        deadline = time.monotonic() + 60
        while worker.is_alive() and time.monotonic() < deadline:
            start = time.perf_counter()
            assert http.get("/health").status_code == 200
            waits.append(time.perf_counter() - start)
            time.sleep(0.01)
        worker.join(10)
    assert rm.started.is_set() and len(waits) > 40  # polled all through the parse and the 2 s of scoring
    assert max(waits) < 0.1, f"slowest /health: {max(waits) * 1e3:.0f} ms"
    assert got["r"].json()["rewards"] == [float(len(r)) for r in responses]


def test_the_api_key_is_required_accepted_and_rejected(monkeypatch):
    monkeypatch.setenv("RMTEACH_TEST_KEY", "k-Ok")
    monkeypatch.setenv("RMTEACH_TEST_WRONG_KEY", "k-no")
    body = {"model": "length", "text_1": "Q: ", "text_2": ["a", "bcd"]}
    with serving(build_app(_LengthRM(), api_key="k-Ok")) as base:
        none = httpx.post(base + "/v1/score", json=body)
        wrong = httpx.post(base + "/v1/score", json=body, headers={"Authorization": "Bearer k-no"})
        assert httpx.get(base + "/health").status_code == 200  # open, for load balancers' probes
        cfg = RemoteRMConfig(url=base + "/v1/score", protocol="score", backoff_s=60)
        got = HTTPRewardModel("r", cfg.model_copy(update={"api_key_env": "RMTEACH_TEST_KEY"})).score(
            ["Q: "] * 2, ["a", "bcd"])
        with pytest.raises(UserError, match="answered HTTP 401 Unauthorized: .*wrong API key"):
            HTTPRewardModel("r", cfg.model_copy(update={"api_key_env": "RMTEACH_TEST_WRONG_KEY"})).score(["p"], ["c"])
        with pytest.raises(UserError, match="answered HTTP 401 Unauthorized: .*this server needs an API key"):
            HTTPRewardModel("r", cfg).score(["p"], ["c"])
    assert (none.status_code, wrong.status_code) == (401, 401)
    assert none.headers["www-authenticate"] == "Bearer" and "k-Ok" not in none.text + wrong.text
    assert got.tolist() == [1.0, 3.0]
