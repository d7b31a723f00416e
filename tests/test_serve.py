"""`rmteach serve-rm`: the app's endpoints on a real server, one forward at a time, and the command line."""

from __future__ import annotations

import argparse
import threading
import time

import httpx
import numpy as np
import pytest
from http_server import free_port, serving
from rm_fns import gold

from rmteach.backends.reward_http import HTTPRewardModel
from rmteach.backends.rewards import load_reward_model
from rmteach.core.blocks import RewardModelConfig
from rmteach.core.config import validate
from rmteach.core.errors import UserError
from rmteach.core.remote import RemoteRMConfig
from rmteach.serve import cli
from rmteach.serve.app import build_app
from rmteach.serve.config import ServeConfig


def _callable_app(fn: str = "gold"):
    return build_app(load_reward_model(RewardModelConfig(name=fn, callable=f"rm_fns:{fn}")))


def test_health_and_both_protocols():
    with serving(_callable_app()) as base, httpx.Client(base_url=base) as http:
        assert http.get("/health").json() == {"status": "ok", "model": "gold"}
        r = http.post("/get_reward", json={"query": ["Q: w1 w1", "Q: w2"], "prompts": ["Q: ", "Q: "], "labels": None})
        assert r.json() == {"rewards": gold(["Q: "] * 2, ["w1 w1", "w2"]), "scores": gold(["Q: "] * 2, ["w1 w1", "w2"])}
        for path in ("/score", "/v1/score"):
            r = http.post(path, json={"model": "gold", "text_1": "Q: ", "text_2": ["w1", "w2 w3"]}).json()
            assert r["object"] == "list" and r["model"] == "gold"
            assert r["data"] == [{"index": i, "object": "score", "score": s}
                                 for i, s in enumerate(gold(["Q: "] * 2, ["w1", "w2 w3"]))]


def test_a_reward_that_is_not_finite_is_a_422_naming_the_item():
    with serving(_callable_app("nan_on_w3")) as base:
        r = httpx.post(base + "/get_reward", json={"query": ["w4 b", "w3 a"], "prompts": ["w4 ", "w3 "]})
        ok = httpx.post(base + "/get_reward", json={"query": ["w4 b"], "prompts": ["w4 "]})
    assert r.status_code == 422 and r.json()["detail"].startswith("the reward model returned nan for item 1 of 2 ")
    assert ok.json()["rewards"] == [1.0]


@pytest.mark.parametrize("path, body, status, detail", [
    ("/get_reward", {"query": ["Q: a"]}, 400, "needs 'prompts' beside 'query'"),
    ("/get_reward", {"query": ["Q: a"], "prompts": ["P: "]}, 400, "query 0 does not start with prompt 0 ('P: ')"),
    ("/get_reward", {"query": ["Q: a"], "prompts": []}, 400, "'query' has 1 items but 'prompts' has 0"),
    ("/v1/score", {"text_1": ["a", "b"], "text_2": ["c"]}, 400, "'text_1' has 2 items but 'text_2' has 1"),
    ("/v1/score", {"model": "other", "text_1": "a", "text_2": "c"}, 404, "the model 'other' does not exist"),
])
def test_bad_requests_are_answered_with_the_reason(path, body, status, detail):
    with serving(_callable_app()) as base:
        r = httpx.post(base + path, json=body)
    assert r.status_code == status and detail in r.json()["detail"]


def test_a_model_that_fails_is_a_422_the_client_reports_at_once():
    with serving(_callable_app("raises")) as base:
        with pytest.raises(UserError, match="answered HTTP 422 Unprocessable .*raised ValueError: the judge is down"):
            HTTPRewardModel("r", RemoteRMConfig(url=base + "/get_reward", backoff_s=60)).score(["p"], ["c"])


class _GatedRM:
    """A reward model whose forward waits on `gate`, counting forwards running at once."""

    name = "gated"

    def __init__(self) -> None:
        self.gate, self.running, self.most, self.started = threading.Event(), 0, 0, threading.Event()

    def score(self, prompts, completions, progress=None):
        self.running += 1
        self.most = max(self.most, self.running)
        self.started.set()
        self.gate.wait(10)
        time.sleep(0.01)
        self.running -= 1
        return np.arange(len(prompts), dtype=np.float64)

    def close(self):
        pass


def test_one_forward_at_a_time_and_the_server_stays_responsive():
    rm = _GatedRM()
    with serving(build_app(rm)) as base:
        client = HTTPRewardModel("r", RemoteRMConfig(url=base + "/v1/score", protocol="score", batch_size=2,
                                                     concurrency=4))
        result = {}
        worker = threading.Thread(target=lambda: result.update(got=client.score(["p"] * 8, ["c"] * 8)))
        worker.start()
        assert rm.started.wait(10)
        assert httpx.get(base + "/health", timeout=2).status_code == 200  # while a forward is blocked
        rm.gate.set()
        worker.join(20)
    assert rm.most == 1
    assert result["got"].tolist() == [0.0, 1.0] * 4


def test_the_parser_registers_serve_rm():
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve-rm", "-c", "s.yaml", "--port", "5000", "--set", "device=cpu",
                              "--max-body-mb", "2.5"])
    assert (args.command, args.config, args.port, args.host, args.overrides, args.max_body_mb) == (
        "serve-rm", "s.yaml", 5000, None, ["device=cpu"], 2.5)


def test_the_command_serves_the_configured_model(tmp_path, monkeypatch):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    (tmp_path / "serve.yaml").write_text("reward_model: {name: g, callable: 'rm_fns:gold'}\ndevice: cpu\n")
    args = argparse.Namespace(config=str(tmp_path / "serve.yaml"), overrides=["reward_model.name=judge"],
                              host="127.0.0.1", port=5123, max_body_mb=None)
    assert cli.run(args) == 0
    assert (served["host"], served["port"]) == ("127.0.0.1", 5123)
    with serving(served["app"]) as base:
        got = HTTPRewardModel("r", RemoteRMConfig(url=base + "/score", protocol="score", model="judge")).score(
            ["Q: "], ["w1"])
    assert got.tolist() == gold(["Q: "], ["w1"])


@pytest.mark.parametrize("text, message", [
    ("reward_model: {name: g, callable: 'rm_fns:gold'}\nport: 70000\n", "port: Input should be less than or equal"),
    ("reward_model: {name: g, callable: 'rm_fns:gold'}\ndevice: gpu\n", "device: device must be one of"),
    ("reward_model: {name: g, callable: 'rm_fns:nowhere'}\n", "module 'rm_fns' has no attribute 'nowhere'"),
])
def test_bad_input_fails_before_anything_listens(tmp_path, monkeypatch, text, message):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("must not serve"))
    (tmp_path / "serve.yaml").write_text(text)
    with pytest.raises(UserError, match=message):
        cli.run(argparse.Namespace(config=str(tmp_path / "serve.yaml"), overrides=[], host=None, port=None,
                                   max_body_mb=None))


def test_a_port_in_use_fails_before_the_model_loads(tmp_path, monkeypatch):
    import socket

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("must not serve"))
    (tmp_path / "serve.yaml").write_text("reward_model: {name: g, path: ./no_such_rm}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            cli.run(argparse.Namespace(config=str(tmp_path / "serve.yaml"), overrides=[], host=None, port=port,
                                       max_body_mb=None))


def test_serve_config_defaults_listen_on_loopback():
    cfg = validate(ServeConfig, {"reward_model": {"name": "g", "callable": "m:f"}})
    assert (cfg.host, cfg.port, cfg.device, cfg.dtype) == ("127.0.0.1", 8000, "auto", "float32")
    assert (cfg.max_body_mb, cfg.api_key_env) == (16.0, None)


def test_an_http_reward_model_config_scores_through_the_served_model_with_its_transform():
    """`http:` in an RM config reaches the HTTP backend through `load_reward_model`, transform included."""
    prompts, completions = [f"w{i} w{i + 1}" for i in range(6)], [f"w{i}" for i in range(6)]
    with serving(_callable_app()) as url:
        for protocol, path in (("openrlhf", "/get_reward"), ("score", "/score")):
            cfg = RewardModelConfig(name="remote", http={"url": url + path, "protocol": protocol},
                                    transform={"fraction": 1.0, "factor": 2.0})
            got = load_reward_model(cfg).score(prompts, completions)
            np.testing.assert_array_equal(got, 2.0 * np.asarray(gold(prompts=prompts, completions=completions)))


def test_an_rm_has_exactly_one_source_and_the_cli_knows_serve_rm(capsys):
    from rmteach.cli import main

    with pytest.raises(Exception, match="needs exactly one of 'path' or 'callable' or 'http'"):
        RewardModelConfig(name="x", path="/m", http={"url": "http://127.0.0.1:1/get_reward"})
    try:
        code = main(["serve-rm", "--help"])
    except SystemExit as e:  # argparse's own exit for --help
        code = e.code
    assert code == 0 and "serve-rm" in capsys.readouterr().out


@pytest.mark.parametrize("host, key, warned", [
    ("0.0.0.0", None, True), ("0.0.0.0", "k-123", False), ("127.0.0.1", None, False), ("localhost", None, False),
])
def test_listening_beyond_loopback_without_a_key_warns_in_one_line(tmp_path, monkeypatch, capsys, host, key, warned):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setenv("RMTEACH_TEST_SERVE_KEY", key or "")
    text = "reward_model: {name: g, callable: 'rm_fns:gold'}\ndevice: cpu\n"
    (tmp_path / "serve.yaml").write_text(text + ("api_key_env: RMTEACH_TEST_SERVE_KEY\n" if key else ""))
    args = argparse.Namespace(config=str(tmp_path / "serve.yaml"), overrides=[], host=host, port=free_port(),
                              max_body_mb=None)
    assert cli.run(args) == 0 and served["host"] == host
    err = capsys.readouterr().err
    assert err == (f"warning: serve-rm listens on 0.0.0.0 (beyond this machine) without an API key: anyone who can "
                   f"reach port {args.port} can use the reward model; set api_key_env\n" if warned else "")
    with serving(served["app"]) as base:
        body = {"query": ["Q: w1"], "prompts": ["Q: "]}
        anyone = httpx.post(base + "/get_reward", json=body)
        keyed = httpx.post(base + "/get_reward", json=body, headers={"Authorization": f"Bearer {key}"})
    assert anyone.status_code == (401 if key else 200)
    assert keyed.json() == {"rewards": gold(["Q: "], ["w1"]), "scores": gold(["Q: "], ["w1"])}


def test_the_body_limit_and_key_come_from_the_config_and_flags(tmp_path, monkeypatch):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.delenv("RMTEACH_TEST_UNSET_KEY", raising=False)
    (tmp_path / "serve.yaml").write_text("reward_model: {name: g, callable: 'rm_fns:gold'}\nmax_body_mb: 0.0001\n")
    args = argparse.Namespace(config=str(tmp_path / "serve.yaml"), overrides=[], host=None, port=free_port(),
                              max_body_mb=None)
    cli.run(args)
    small = {"query": ["Q: w1"], "prompts": ["Q: "]}  # about 40 bytes of JSON: under the 100 of 0.0001 MB
    big = {"query": ["Q: " + "w1 " * 40], "prompts": ["Q: "]}  # about 160 bytes: over 100, under 1000
    with serving(served["app"]) as base:
        assert [httpx.post(base + "/get_reward", json=b).status_code for b in (small, big)] == [200, 413]
    cli.run(argparse.Namespace(**vars(args) | {"max_body_mb": 0.001}))  # the flag wins over the config: 1000 bytes
    with serving(served["app"]) as base:
        assert httpx.post(base + "/get_reward", json=big).status_code == 200
    with pytest.raises(UserError, match="api_key_env names the environment variable RMTEACH_TEST_UNSET_KEY, which is"):
        cli.run(argparse.Namespace(**vars(args) | {"overrides": ["api_key_env=RMTEACH_TEST_UNSET_KEY"]}))
    with pytest.raises(UserError, match="api_key_env: String should match pattern"):
        cli.run(argparse.Namespace(**vars(args) | {"overrides": ["api_key_env=NOT A NAME"]}))
