"""Property-based fuzzing of every command's input: whatever the config or the flags, exit 0 or 2, never a
traceback, never a partial --out.

Valid configs of `evaluate`, `train` and `study` are mutated (a key deleted, a value replaced by one of
another type, out of range, huge or in odd unicode, an unknown key added, a `--set` override) and run
through the real CLI in process. Runs are cut short before any weights load: model paths point at folders
that do not exist (so preflight ends the run with exit 2), `train` also runs as `--dry-run`, and the hub is
offline (a mutated path that reads as a hub id fails at once). The flags of `theory`, `toy build` and `demo`
are fuzzed where a valid draw is cheap (`demo` itself is replaced by a recorder). Draws are derandomized,
so CI sees the same few hundred every time.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import run_cli, write_eval_config
from study_world import study_dict
from train_world import config_dict

pytestmark = pytest.mark.slow  # fuzzing: `make test-all`

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NOWHERE = "/nonexistent/rmteach-fuzz"

# Values of every kind a config key may wrongly get.
ODD_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([2**31, 2**32, 2**64, 10**30, -(10**30)]),
    st.floats(allow_nan=True, allow_infinity=True), ODD_TEXT,
    st.sampled_from(["", " ", ".", "auto", "cpu", "cuda:0", "rm_fns:gold", "rm_fns:nope", "../x", "~", "/", "é\u202e",
                     "1e309", "NaN", "[1, 2]"]),
    st.lists(st.integers(-2, 2), max_size=3), st.dictionaries(ODD_TEXT, st.integers(0, 2), max_size=2),
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """A fuzzed model path that reads as a hub id must fail at once, not wait on the network."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _paths(node: Any, at: tuple = ()) -> list[tuple]:
    """Every key path into a nested dict/list config."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        found.append(at + (k,))
        found += _paths(v, at + (k,))
    return found


def _similar(value: Any) -> st.SearchStrategy:
    """Values of the same type as `value` that may be out of range, huge, empty or odd."""
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return st.sampled_from([-1, 0, 1, 2, 2**31, 2**63, 10**30, value * 1000])
    if isinstance(value, float):
        return st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 0.0, -1.0, 5e-324])
    if isinstance(value, str):
        return st.one_of(ODD_TEXT, st.sampled_from(["", value + "é", value.upper(), "../" + value, value * 40]))
    if isinstance(value, list):
        return st.sampled_from([[], value * 3, value[:1] * 2])
    return st.just({})


@st.composite
def mutated(draw: Any, base: dict) -> dict:
    """`base` with 1-3 mutations: delete a key, replace a value (by one of its type, or of any type), add an
    unknown key, wrap a value in a list."""
    cfg = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(cfg)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = cfg
        for k in path[:-1]:
            parent = parent[k]
        key, op = path[-1], draw(st.sampled_from(["delete", "similar", "similar", "similar", "replace", "unknown",
                                                  "wrap"]))
        if op == "delete":
            del parent[key]
        elif op == "similar":
            parent[key] = draw(_similar(parent[key]))
        elif op == "replace":
            parent[key] = draw(VALUES)
        elif op == "unknown" and isinstance(parent, dict):
            parent[draw(ODD_TEXT) or "x"] = draw(VALUES)
        else:
            parent[key] = [parent[key]]
    return cfg


OVERRIDE = st.tuples(st.sampled_from(["sampling.seed", "policy.path", "reward_models.0.name", "reward_models.7.x",
                                      "prompts.limit", "device", "", "a..b", "reward_models.\u0663", "train.steps",
                                      "seeds", "forecast.primary"]) | ODD_TEXT, ODD_TEXT)


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run(argv_for: Any, capsys) -> tuple[int, str]:
    """Run one draw in a fresh folder; check the contract; return (exit code, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = Path(tmp) / "outs"
        outs.mkdir()
        argv = argv_for(Path(tmp), outs / "run")
        code, _, err = run_cli(argv, capsys)
        assert code in (0, 2), err
        assert "Traceback" not in err
        if code == 2:
            last = err.strip().splitlines()[-1]
            assert ": error: " in last and last.startswith("rmteach"), err
        assert _listing(outs) == [], _listing(outs)  # no draw here writes anything (dry runs, recorders)
    return code, err


def _write(tmp: Path, name: str, cfg: dict) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return p


def _overrides(pairs: list[tuple[str, str]]) -> list[str]:
    return [a for k, v in pairs for a in ("--set", f"{k}={v}")]


# ----------------------------------------------------------------------------------------------------------


def _evaluate_base(tiny: dict) -> dict:
    cfg = yaml.safe_load(write_eval_config(Path(tempfile.mkdtemp()) / "e.yaml", tiny).read_text())
    cfg["policy"]["path"] = f"{NOWHERE}/policy"
    cfg["reward_models"][0]["path"] = f"{NOWHERE}/rm"
    return cfg


def test_fuzz_evaluate(tiny, capsys):
    base = _evaluate_base(tiny)

    @FUZZ
    @given(cfg=mutated(base), sets=st.lists(OVERRIDE, max_size=2))
    def check(cfg, sets):
        _run(lambda tmp, out: ["evaluate", "-c", _write(tmp, "e.yaml", cfg), "-o", out, *_overrides(sets)], capsys)

    check()


ROW = st.dictionaries(st.sampled_from(["id", "prompt", "chosen", "rejected", "x"]), VALUES, max_size=4)
LINE = st.one_of(ROW.map(json.dumps),
                 st.sampled_from(["", "{", "[1]", "null", '{"prompt": "w1"}', '{"prompt": "w1", "chosen": "a",'
                                  ' "rejected": "a"}', '{"prompt": "w1", "chosen": "a", "rejected": "b"}']))
FILE = st.one_of(st.lists(LINE, max_size=4).map(lambda ls: "\n".join(ls).encode("utf-8")), st.binary(max_size=40))


def test_fuzz_prompt_and_preference_files(tiny, capsys):
    """Whatever bytes a prompt or preference file holds: one line naming it, or the run goes on to preflight."""
    @FUZZ
    @given(prompts=FILE, prefs=FILE)
    def check(prompts, prefs):
        def argv(tmp: Path, out: Path) -> list:
            (tmp / "p.jsonl").write_bytes(prompts)
            (tmp / "q.jsonl").write_bytes(prefs)
            cfg = write_eval_config(tmp / "e.yaml", tiny, prompts={"path": str(tmp / "p.jsonl")},
                                    preferences={"path": str(tmp / "q.jsonl")}, policy={"path": f"{NOWHERE}/p"})
            return ["evaluate", "-c", cfg, "-o", out]

        code, err = _run(argv, capsys)
        assert code == 2  # the policy is never there

    check()


def test_fuzz_train(world, capsys):
    base = config_dict(world, steps=2, eval_every=None)

    @FUZZ
    @given(cfg=mutated(base), dry=st.booleans(), sets=st.lists(OVERRIDE, max_size=1))
    def check(cfg, dry, sets):
        if not dry:  # a real run: cut short by a policy that is not there (unless the draw broke the config)
            if isinstance(cfg.get("policy"), dict) and isinstance(cfg["policy"].get("path"), str):
                cfg["policy"]["path"] = f"{NOWHERE}/policy"
        _run(lambda tmp, out: ["train", "-c", _write(tmp, "t.yaml", cfg), "-o", out,
                               *(["--dry-run"] if dry else []), *_overrides(sets)], capsys)

    check()


def test_fuzz_study(tiny, capsys):
    base = study_dict(prompts={"train": {"path": str(tiny["prompts"])}, "eval": {"path": str(tiny["prompts"])}},
                      preferences={"path": str(tiny["prefs"])})
    base["policies"] = [{"name": p["name"], "path": f"{NOWHERE}/{p['name']}"} for p in base["policies"]]

    @FUZZ
    @given(cfg=mutated(base))
    def check(cfg):
        policies = cfg["policies"] if isinstance(cfg.get("policies"), list) else []
        for p in policies:
            if isinstance(p, dict) and isinstance(p.get("path"), str):  # never a real model: preflight ends it
                p["path"] = f"{NOWHERE}/{len(p['path'])}"
        _run(lambda tmp, out: ["study", "-c", _write(tmp, "s.yaml", cfg), "-o", out], capsys)

    check()


FLAG = st.one_of(ODD_TEXT, st.integers(-(2**70), 2**70).map(str), st.sampled_from(["-1", "0", "1e3", " 3", "0x10"]))


def test_fuzz_flags_of_theory_toy_and_demo(capsys, monkeypatch):
    import rmteach.demo

    calls = []
    monkeypatch.setattr(rmteach.demo, "run_demo", lambda *a, **k: calls.append((a, k)) or {})

    @settings(FUZZ, max_examples=80)
    @given(command=st.sampled_from(["theory", "toy", "demo"]), seed=FLAG, other=FLAG)
    def check(command, seed, other):
        if command == "theory":  # an unknown experiment: checked before anything runs
            argv = ["theory", "--seed", seed, "--experiment", f"x{other}"]
        elif command == "toy":  # an unknown preset: checked before anything is built
            argv = ["toy", "build", "--seed", seed, "--preset", f"x{other}"]
        else:
            argv = ["demo", "--quick", "--seed", seed, "--seeds", other]
        _run(lambda tmp, out: [*argv, "--out", out], capsys)

    check()
    assert calls  # some demo draws were valid and reached the (recorded) demo
