"""The HTTP reward backend against real servers on loopback: `serve-rm`'s app, and scripted failing endpoints."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from http_server import Script, free_port, serving, slowly
from rm_fns import gold

from rmteach.backends.reward_http import HTTPRewardModel
from rmteach.backends.rewards import load_reward_model, score_grid
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import validate
from rmteach.core.errors import UserError
from rmteach.core.remote import RemoteRMConfig
from rmteach.serve.app import build_app

WORDS = [f"w{i}" for i in range(12)]
PATHS = {"openrlhf": "/get_reward", "score": "/v1/score"}
FAST = {"backoff_s": 0.001, "timeout_s": 10.0}  # retries in milliseconds


def _pairs(n: int) -> tuple[list[str], list[str]]:
    """n (prompt, completion) pairs of varied lengths, some prompts repeated."""
    prompts = [" ".join(WORDS[i % 5 : i % 5 + 1 + i % 3]) for i in range(n)]
    completions = [" ".join(WORDS[(3 * i) % 12 : (3 * i) % 12 + 1 + i % 4]) for i in range(n)]
    return prompts, completions


def _client(url: str, **kw) -> HTTPRewardModel:
    return HTTPRewardModel("remote", RemoteRMConfig(url=url, **FAST | kw))


def _gold_reply(n: int, body: dict) -> tuple[int, dict]:
    responses = [q[len(p) :] for q, p in zip(body["query"], body["prompts"])]
    return 200, {"rewards": gold(body["prompts"], responses)}


@pytest.mark.parametrize("protocol", ["openrlhf", "score"])
def test_served_hf_rm_scores_exactly_as_in_process(tiny, protocol):
    rm = load_reward_model(RewardModelConfig(name="rm", path=str(tiny["rm_llama"]), batch_size=4))
    prompts, completions = _pairs(11)
    with serving(build_app(rm)) as base:
        whole = _client(base + PATHS[protocol], protocol=protocol, batch_size=64).score(prompts, completions)
        chunked = _client(base + PATHS[protocol], protocol=protocol, batch_size=3, concurrency=3).score(
            prompts, completions)
    assert whole.dtype == np.float64 and np.array_equal(whole, rm.score(prompts, completions))
    # The server scores each request as one call: the same chunks in process give the same floats, in order.
    by_chunk = np.concatenate([rm.score(prompts[s : s + 3], completions[s : s + 3]) for s in range(0, 11, 3)])
    assert np.array_equal(chunked, by_chunk)
    rm.close()


@pytest.mark.parametrize("protocol", ["openrlhf", "score"])
def test_served_callable_scores_in_order_with_progress(protocol):
    rm = load_reward_model(RewardModelConfig(name="gold", callable="rm_fns:gold"))
    prompts, completions = _pairs(23)
    done: list[int] = []
    with serving(build_app(rm)) as base:
        remote = _client(base + PATHS[protocol], protocol=protocol, model="gold" if protocol == "score" else None,
                         batch_size=5, concurrency=3)
        got = remote.score(prompts, completions, progress=done.append)
        grid = score_grid(remote, prompts[:6], [completions[i : i + 3] for i in range(6)])
    assert np.array_equal(got, np.asarray(gold(prompts, completions)))
    assert sorted(done) == [3, 5, 5, 5, 5]
    assert np.array_equal(grid, score_grid(rm, prompts[:6], [completions[i : i + 3] for i in range(6)]))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_at_most_concurrency_requests_in_flight(concurrency):
    script = Script(lambda n, body: slowly(0.05, _gold_reply(n, body)))
    prompts, completions = _pairs(8)
    with serving(script.app()) as base:
        got = _client(base + "/get_reward", batch_size=1, concurrency=concurrency).score(prompts, completions)
    assert np.array_equal(got, np.asarray(gold(prompts, completions)))
    assert script.calls == 8 and script.max_in_flight == concurrency


def test_score_protocol_reorders_by_index():
    def reply(n, body):
        scores = [float(len(t)) for t in body["text_2"]]
        return 200, {"data": [{"index": i, "score": s} for i, s in reversed(list(enumerate(scores)))]}

    script = Script(reply)
    with serving(script.app()) as base:
        got = _client(base + "/score", protocol="score").score(["a", "b", "c"], ["x", "yy", "zzz"])
    assert got.tolist() == [1.0, 2.0, 3.0]
    assert script.bodies == [{"text_1": ["a", "b", "c"], "text_2": ["x", "yy", "zzz"]}]  # no model: none sent


@pytest.mark.parametrize("status", [503, 429, 502])
def test_retries_until_the_server_answers(status):
    script = Script(lambda n, body: (status, {"detail": "busy"}) if n <= 2 else _gold_reply(n, body))
    prompts, completions = _pairs(4)
    with serving(script.app()) as base:
        got = _client(base + "/get_reward", retries=2).score(prompts, completions)
    assert np.array_equal(got, np.asarray(gold(prompts, completions)))
    assert script.calls == 3


def test_gives_up_after_the_retries_naming_the_url():
    script = Script(lambda n, body: (500, "model exploded"))
    with serving(script.app()) as base:
        url = base + "/get_reward"
        with pytest.raises(UserError) as e:
            _client(url, retries=2).score(["p"], ["c"])
    assert script.calls == 3
    assert str(e.value) == (f"reward model 'remote' at {url} answered HTTP 500 Internal Server Error: "
                            "'model exploded', after 3 attempts")


def test_a_client_error_is_not_retried():
    script = Script(lambda n, body: (404, {"detail": "Not Found"}))
    with serving(script.app()) as base:
        with pytest.raises(UserError, match=r"at http://127\.0\.0\.1:\d+/nowhere answered HTTP 404 Not Found"):
            _client(base + "/nowhere", retries=3).score(["p"], ["c"])
    assert script.calls == 1


@pytest.mark.parametrize("protocol, payload, message", [
    ("openrlhf", {"rewards": [1.0]}, "returned 1 rewards for 2 completions"),
    ("openrlhf", [1.0, 2.0, 3.0], "returned 3 rewards for 2 completions"),
    ("openrlhf", {"rewards": [1.0, "high"]}, "returned a str ('high') at position 1; expected a number"),
    ("openrlhf", {"reward": [1.0, 2.0]}, "answered a JSON object with keys ['reward']; expected 'rewards'"),
    ("openrlhf", "<html>gateway</html>", "answered something that is not JSON: '<html>gateway</html>'"),
    ("score", {"data": [{"index": 0, "score": 1.0}]}, "returned 1 rewards for 2 completions"),
    ("score", {"data": [{"index": 0, "score": 1}, {"index": 0, "score": 2}]}, "answered the indices [0, 0]"),
    ("score", {"scores": [1.0, 2.0]}, "expected {'data': [{'index': i, 'score': s}, ...]}"),
])
def test_an_answer_of_the_wrong_shape_is_one_clear_error(protocol, payload, message):
    script = Script(lambda n, body: (200, payload))
    with serving(script.app()) as base:
        with pytest.raises(UserError) as e:
            _client(base + "/x", protocol=protocol).score(["p0", "p1"], ["a", "b"])
    assert f"reward model 'remote' at {base}/x " in str(e.value) and message in str(e.value)
    assert "starting at item 0" in str(e.value) and script.calls == 1  # a wrong answer is not retried


def test_wrong_shape_names_the_prompt_through_score_grid():
    script = Script(lambda n, body: (200, {"rewards": [1.0] * (1 if "p1" in body["prompts"] else 2)}))
    with serving(script.app()) as base:
        with pytest.raises(UserError, match="on the request with 2 pairs starting at prompt id 'q1'"):
            score_grid(_client(base + "/x", batch_size=2), ["p0", "p1"], [["a", "b"], ["c", "d"]], ids=["q0", "q1"])


def test_a_slow_server_times_out():
    script = Script(lambda n, body: slowly(0.3, _gold_reply(n, body)))
    with serving(script.app()) as base:
        with pytest.raises(UserError, match=r"at http://\S+/get_reward timed out after 0.05 s \(ReadTimeout\), "
                                            r"after 2 attempts"):
            _client(base + "/get_reward", timeout_s=0.05, retries=1).score(["p"], ["c"])
    assert script.calls == 2


def test_a_server_that_is_not_there():
    url = f"http://127.0.0.1:{free_port()}/get_reward"
    with pytest.raises(UserError, match=rf"at {url} could not be reached \(ConnectError: .*\), after 1 attempt"):
        _client(url, retries=0).score(["p"], ["c"])


def test_works_inside_a_running_event_loop():
    script = Script(_gold_reply)
    prompts, completions = _pairs(5)

    async def from_async_code():
        return remote.score(prompts, completions)

    with serving(script.app()) as base:
        remote = _client(base + "/get_reward", batch_size=2)
        got = asyncio.run(from_async_code())
    assert np.array_equal(got, np.asarray(gold(prompts, completions)))


def test_headers_are_sent_with_variables_from_the_environment(monkeypatch):
    monkeypatch.setenv("RMTEACH_TEST_TOKEN", "s3cret")
    script = Script(_gold_reply)
    with serving(script.app()) as base:
        _client(base + "/get_reward", headers={"Authorization": "Bearer ${RMTEACH_TEST_TOKEN}"}).score(["p"], ["c"])
    assert script.headers[0]["authorization"] == "Bearer s3cret"
    monkeypatch.delenv("RMTEACH_TEST_TOKEN")
    with pytest.raises(UserError, match="needs the environment variable RMTEACH_TEST_TOKEN, which is not set"):
        _client("http://127.0.0.1:1/x", headers={"Authorization": "Bearer ${RMTEACH_TEST_TOKEN}"})


def test_the_api_key_is_read_from_its_variable_and_sent_as_a_bearer_token(monkeypatch):
    monkeypatch.setenv("RMTEACH_TEST_KEY", "k-42")
    script = Script(_gold_reply)
    with serving(script.app()) as base:
        got = load_reward_model(RewardModelConfig(name="keyed", http={
            "url": base + "/get_reward", "api_key_env": "RMTEACH_TEST_KEY", "headers": {"X-Team": "rl"}})).score(
            ["p", "q"], ["c", "w1"])
    assert (script.headers[0]["authorization"], script.headers[0]["x-team"]) == ("Bearer k-42", "rl")
    assert got.tolist() == gold(["p", "q"], ["c", "w1"])
    monkeypatch.setenv("RMTEACH_TEST_KEY", " ")
    with pytest.raises(UserError, match="api_key_env names the environment variable RMTEACH_TEST_KEY, which is not"):
        _client("http://127.0.0.1:1/x", api_key_env="RMTEACH_TEST_KEY")


def test_no_pairs_no_request():
    assert _client(f"http://127.0.0.1:{free_port()}/x").score([], []).shape == (0,)


@pytest.mark.parametrize("data, message", [
    ({"url": "localhost:5000/get_reward"}, "url: url must look like http://host:port/path"),
    ({"url": "http://h/x", "protocol": "grpc"}, "protocol: Input should be 'openrlhf' or 'score'"),
    ({"url": "http://h/x", "concurrency": 0}, "concurrency: Input should be greater than or equal to 1"),
    ({"url": "http://h/x", "timeout": 3}, "unknown key 'timeout'"),
    ({"url": "http://h/x", "api_key_env": "$KEY"}, "api_key_env: String should match pattern"),
    ({"url": "http://h/x", "api_key_env": "KEY", "headers": {"authorization": "Bearer x"}},
     "give the API key either as api_key_env or as an Authorization header, not both"),
])
def test_config_errors_are_one_line(data, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(RemoteRMConfig, data, "rm.yaml")
