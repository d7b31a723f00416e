"""Bounded input (issue 22, item 3): every unbounded read or call ends in one line and exit 2, within seconds.

A YAML alias bomb, a FIFO without a writer, /dev/zero, a file far too large, a reward function that never
returns; and what must still work: ordinary anchors, large JSONL sets, limits, quick reward functions.
"""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from helpers import write_eval_config
from rmteach.cli import main

FAST_S = 10.0  # every bad input here must be answered within this


def run_bounded(argv: list, capsys) -> tuple[int, str, float]:
    """`rmteach ARGV` in process on a daemon thread, so a read that blocks fails the test instead of hanging it.

    Returns (exit code, stderr, seconds taken)."""
    got: dict[str, int] = {}
    t0 = time.perf_counter()
    worker = threading.Thread(target=lambda: got.setdefault("code", main([str(a) for a in argv])), daemon=True)
    worker.start()
    worker.join(FAST_S)
    took = time.perf_counter() - t0
    assert not worker.is_alive(), f"rmteach {argv[0]} still running after {FAST_S} s"
    return got["code"], capsys.readouterr().err, took


def one_line(code: int, err: str, took: float, *words: str) -> str:
    """Exit 2, no traceback, one error line (the last) holding every word, within `FAST_S`."""
    assert code == 2 and "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ": error: " in ln]
    assert errors == [err.strip().splitlines()[-1]], err
    for w in words:
        assert w in errors[0], (w, errors[0])
    assert took < FAST_S
    return errors[0]


def bomb(levels: int = 9) -> str:
    """A billion-laughs YAML document: each level a list of 9 aliases of the level below (9**levels values)."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f'{names[0]}: &{names[0]} ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip(names, names[1:])]
    return "\n".join(lines) + "\n"


# -- YAML -------------------------------------------------------------------------------------------------


def test_an_alias_bomb_in_a_config_is_refused_before_it_expands(tmp_path, capsys):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(bomb() + "policy: {path: x}\n")
    line = one_line(*run_bounded(["evaluate", "-c", cfg, "-o", tmp_path / "o"], capsys),
                    "bomb.yaml", "anchors and aliases", "100,000")
    assert line.startswith("rmteach evaluate: error:") and not (tmp_path / "o").exists()


def test_an_alias_bomb_in_a_set_value_is_refused(tiny, tmp_path, capsys):
    cfg = write_eval_config(tmp_path / "e.yaml", tiny)
    value = bomb().replace("\n", ", ").rstrip(", ")
    one_line(*run_bounded(["evaluate", "-c", cfg, "-o", tmp_path / "o", "--set", f"sampling={{{value}}}"], capsys),
             "--set sampling", "anchors and aliases")


@pytest.mark.parametrize("text, words", [
    ("a: &a [1, *a]\n", ["alias (*) inside the value of its own anchor"]),
    ("a: " + "[" * 100 + "]" * 100 + "\n", ["nested more than 64 levels"]),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", ["nested more than 64 levels"]),  # the composer's own recursion
])
def test_alias_loops_and_deep_nesting_are_refused(text, words, tmp_path):
    from rmteach.core.config import read_yaml
    from rmteach.core.errors import UserError

    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(UserError) as e:
        read_yaml(tmp_path / "c.yaml")
    assert all(w in str(e.value) for w in words), str(e.value)


def test_ordinary_anchors_aliases_and_merge_keys_still_load(tiny, tmp_path):
    """The same config written with an anchor, an alias and a merge key loads as written out in full."""
    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig

    plain = write_eval_config(tmp_path / "plain.yaml", tiny)
    data = yaml.safe_load(plain.read_text())
    rms = data.pop("reward_models")
    text = yaml.safe_dump(data) + textwrap.dedent(f"""\
        reward_models:
          - &hf {{name: rm_llama, path: {rms[0]['path']}, batch_size: 5}}
          - {{<<: *hf, name: rm_other_tok, path: {rms[1]['path']}, batch_size: 7}}
          - {{name: gold_cubed, callable: "rm_fns:gold_cubed"}}
        """)
    (tmp_path / "anchors.yaml").write_text(text)
    assert "&hf" in text and "<<: *hf" in text
    assert load_config(EvaluateConfig, tmp_path / "anchors.yaml") == load_config(EvaluateConfig, plain)


def test_shipped_configs_still_load():
    """Every preset in configs/ passes the size checks (none uses anchors today; the check must not refuse one)."""
    from rmteach.core.config import read_yaml

    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 5
    for c in configs:
        assert read_yaml(c) == (yaml.safe_load(c.read_text()) or {}), c


# -- files that are not files, or far too large -----------------------------------------------------------


@pytest.fixture
def fifo(tmp_path):
    """A FIFO without a writer (opening it to read would wait forever); released after the test if opened."""
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    yield path
    try:  # a reader stuck in open() is let go by a writer's open
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nobody is reading it, as it should be
        pass


def evaluate_on(tiny, tmp_path, **changes) -> list:
    return ["evaluate", "-c", write_eval_config(tmp_path / "e.yaml", tiny, **changes), "-o", tmp_path / "o"]


def test_dev_zero_as_prompts_is_refused(tiny, tmp_path, capsys):
    one_line(*run_bounded(evaluate_on(tiny, tmp_path, prompts={"path": "/dev/zero"}), capsys),
             "prompt set /dev/zero is a character device", "not a regular file")


@pytest.mark.parametrize("where", ["prompts", "preferences_json", "data_files_glob", "config"])
def test_a_fifo_without_a_writer_is_refused_not_waited_on(where, fifo, tiny, tmp_path, capsys):
    if where == "config":
        argv = ["evaluate", "-c", fifo, "-o", tmp_path / "o"]
    elif where == "prompts":
        argv = evaluate_on(tiny, tmp_path, prompts={"path": str(fifo)})
    elif where == "preferences_json":  # a .json path goes through `datasets`, which would open it too
        os.rename(fifo, tmp_path / "pipe.json")
        os.mkfifo(fifo)  # the fixture's release looks here
        argv = evaluate_on(tiny, tmp_path, preferences={"path": str(tmp_path / "pipe.json")})
    else:
        (tmp_path / "a.jsonl").write_text('{"prompt": "w1"}\n')
        argv = evaluate_on(tiny, tmp_path, prompts={"data_files": str(tmp_path / "*.jsonl")})
    one_line(*run_bounded(argv, capsys), "pipe.json", "is a FIFO (named pipe), not a regular file")


def test_a_huge_config_and_a_huge_line_are_refused_quickly(tiny, tmp_path, capsys):
    """Sparse files of 64 GiB (no disk used): refused by size, or at the first line past 64 MiB."""
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(64 * 2**30)
    one_line(*run_bounded(["evaluate", "-c", huge, "-o", tmp_path / "o"], capsys),
             "config file", "huge.yaml", "larger than 1.0 MiB (65536.0 MiB)")
    zeros = tmp_path / "zeros.jsonl"
    zeros.write_bytes(b'{"prompt": "w1"}\n')
    with open(zeros, "r+b") as f:
        f.truncate(64 * 2**30)
    one_line(*run_bounded(evaluate_on(tiny, tmp_path, prompts={"path": str(zeros)}), capsys),
             "prompt set", "zeros.jsonl", "line 2 is longer than 64.0 MiB")


def test_read_user_text_caps_a_file_that_reports_no_size(tmp_path, monkeypatch):
    """A regular file whose size says 0 (as /proc's do) is still read at most one byte past the cap."""
    import rmteach.core.io as io
    from rmteach.core.errors import UserError

    p = tmp_path / "r.json"
    p.write_text("x" * 100)
    real = os.fstat
    monkeypatch.setattr(io.os, "fstat", lambda fd: os.stat_result((*real(fd)[:6], 0, *real(fd)[7:])))
    assert io.read_user_text(p, "report", max_bytes=100) == "x" * 100
    with pytest.raises(UserError, match="report .*r.json is larger than"):
        io.read_user_text(p, "report", max_bytes=99)


# -- large ordinary sets still load, streamed -------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 4 * 2**20])
def test_a_jsonl_set_streams_to_the_rows_of_a_plain_parse(chunk, tmp_path, monkeypatch):
    """Lines across block boundaries, a byte-order mark, blank and CRLF lines, U+2028 inside a string."""
    import rmteach.core.io as io
    from rmteach.core.blocks import DataConfig
    from rmteach.core.sources import read_rows

    rows = [{"id": i, "prompt": f"w{i} \u2028 caf\u00e9"} for i in range(40)]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    body = "\ufeff" + "\n".join(lines[:20]) + "\n\n  \r\n" + "\r\n".join(lines[20:])  # no final newline
    p = tmp_path / "p.jsonl"
    p.write_bytes(body.encode("utf-8"))
    monkeypatch.setattr(io, "CHUNK_BYTES", chunk)
    expected = [json.loads(ln) for ln in body.lstrip("\ufeff").split("\n") if ln.strip()]
    assert expected == rows
    assert read_rows(DataConfig(path=str(p)), "prompt") == rows
    assert read_rows(DataConfig(path=str(p), limit=3), "prompt") == rows[:3]


def test_a_limit_stops_reading_and_errors_name_their_line(tmp_path):
    from rmteach.core.blocks import DataConfig
    from rmteach.core.errors import UserError
    from rmteach.core.sources import read_rows

    p = tmp_path / "p.jsonl"
    p.write_bytes(b'{"prompt": "a"}\n{"prompt": "b"}\n{oops\n' + b"\xff\n")
    assert [r["prompt"] for r in read_rows(DataConfig(path=str(p), limit=2), "prompt")] == ["a", "b"]
    with pytest.raises(UserError, match=r"p.jsonl:3: not valid JSON"):
        read_rows(DataConfig(path=str(p)), "prompt")
    p.write_bytes(b'{"prompt": "a"}\n' * 3 + b'{"prompt": "\xff"}\n')
    with pytest.raises(UserError, match=r"not UTF-8 text \(byte 0xff on line 4\)"):
        read_rows(DataConfig(path=str(p)), "prompt")


def test_a_large_set_shows_reading_and_checking_progress(tmp_path, monkeypatch, capsys):
    import rmteach.core.data as data
    import rmteach.core.io as io
    from rmteach.core.blocks import DataConfig

    n = 2000
    p = tmp_path / "big.jsonl"
    p.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"w{i % 12}"}) + "\n" for i in range(n)))
    monkeypatch.setattr(io, "PROGRESS_BYTES", 1)
    monkeypatch.setattr(data, "BIG_SET", n)
    prompts = data.load_prompts(DataConfig(path=str(p)))
    assert [q.id for q in prompts] == [f"p{i}" for i in range(n)]
    err = capsys.readouterr().err
    assert "reading prompt set big.jsonl" in err and "checking big.jsonl" in err and f"{n}/{n}" in err
    monkeypatch.setenv("RANK", "1")  # a later process of a launch draws nothing
    data.load_prompts(DataConfig(path=str(p)))
    assert capsys.readouterr().err == ""


# -- reward functions that do not return ------------------------------------------------------------------

SLEEPERS = '''
import threading
import time

RELEASE = threading.Event()
CALLS = []


def forever(prompts, completions, **kwargs):
    CALLS.append(len(prompts))
    RELEASE.wait()  # "forever": until the test lets it go
    return [0.0] * len(completions)


def sleep_forever(prompts, completions, **kwargs):
    while True:
        time.sleep(3600)


def spin_forever(prompts, completions, **kwargs):
    while True:
        pass


def build(*, path, device, dtype, **kwargs):
    return forever
'''


@pytest.fixture
def sleepers(tmp_path, monkeypatch):
    """A module `bounded_sleepers` of reward functions that never return (released after the test)."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "bounded_sleepers.py").write_text(SLEEPERS)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    import bounded_sleepers

    bounded_sleepers.RELEASE.clear()
    bounded_sleepers.CALLS.clear()
    yield bounded_sleepers
    bounded_sleepers.RELEASE.set()


@pytest.mark.parametrize("source", ["callable", "custom"])
def test_a_reward_function_that_never_returns_ends_at_its_timeout(source, sleepers, tiny, tmp_path, capsys):
    rm = {"callable": "bounded_sleepers:forever"} if source == "callable" else {
        "custom": {"builder": "bounded_sleepers:build"}}
    argv = evaluate_on(tiny, tmp_path, reward_models=[{"name": "judge", "timeout_s": 0.5, **rm}], preferences=None)
    code, err, took = run_bounded(argv, capsys)
    one_line(code, err, took, "reward model 'judge'", "did not return within timeout_s=0.5 s",
             "prompt id 'p0'")
    assert len(sleepers.CALLS) == 1 and sleepers.CALLS[0] > 0  # one call, abandoned; none after it


def test_timed_calls_return_raise_carry_thread_state_and_refuse_after_an_overrun(sleepers):
    import torch

    from rmteach.backends.reward_callable import CallTimeout, TimedCalls

    calls = TimedCalls(5.0)
    assert calls(sorted, [3, 1, 2]) == [1, 2, 3]
    with pytest.raises(ZeroDivisionError):
        calls(lambda: 1 / 0)
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller's")
    with torch.no_grad():
        assert calls(lambda: (var.get(), torch.is_grad_enabled(), threading.current_thread().daemon)) == (
            "caller's", False, True)
    assert calls(torch.is_grad_enabled) is True
    assert TimedCalls(None)(threading.current_thread) is threading.main_thread()  # no limit: called directly
    short = TimedCalls(0.2)
    t0 = time.perf_counter()
    with pytest.raises(CallTimeout, match="did not return within timeout_s=0.2 s"):
        short(sleepers.forever, prompts=["p"], completions=["c"])
    assert time.perf_counter() - t0 < 2
    with pytest.raises(CallTimeout, match="earlier call did not return"):  # never beside the abandoned call
        short(sorted, [1])
    assert sleepers.CALLS == [1]


def test_timeout_s_is_refused_where_it_would_do_nothing():
    from pydantic import ValidationError

    from rmteach.core.blocks import RewardModelConfig

    assert RewardModelConfig(name="c", callable="m:f", timeout_s=2).timeout_s == 2.0
    assert RewardModelConfig(name="c", custom={"builder": "m:b"}, timeout_s=0.5).timeout_s == 0.5
    with pytest.raises(ValidationError, match="timeout_s is an option of 'callable' and 'custom' RMs only; this "
                                              "one uses 'path'"):
        RewardModelConfig(name="h", path="x", timeout_s=2)
    with pytest.raises(ValidationError, match=r"http.timeout_s"):
        RewardModelConfig(name="h", http={"url": "http://localhost:1"}, timeout_s=2)
    with pytest.raises(ValidationError, match="greater than 0"):
        RewardModelConfig(name="c", callable="m:f", timeout_s=0)


@pytest.mark.slow
@pytest.mark.parametrize("fn", ["sleep_forever", "spin_forever"])
def test_the_process_exits_after_a_timeout(fn, sleepers, tiny, tmp_path):
    """The real command in its own process: the abandoned daemon thread (asleep, or spinning in Python) does not
    keep the interpreter from exiting."""
    cfg = write_eval_config(tmp_path / "e.yaml", tiny, preferences=None, reward_models=[
        {"name": "judge", "callable": f"bounded_sleepers:{fn}", "timeout_s": 1}])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), str(Path(__file__).parent),
                                                         *sys.path])}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rmteach", "evaluate", "-c", str(cfg), "-o", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - t0
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("rmteach evaluate: error: reward model 'judge'")
    assert "did not return within timeout_s=1 s" in done.stderr and "Traceback" not in done.stderr
    assert took < 60, took
