"""Build the toy world, time it, print its report card per policy, and optionally probe it with policy gradient.

    python benchmarks/bench_toy.py [--out runs/bench_toy] [--preset default] [--twice] [--probe] [--smoke] [--json PATH]

Without --out the worlds go to a temporary folder, removed at the end. --smoke builds the tiny preset.

--twice builds a second copy and compares every file byte for byte (determinism). --probe runs a small
plain-PyTorch RLOO (leave-one-out baseline, rewards normalized by the RM's mean/std over initial-policy
samples, KL penalty in the reward) for each (policy, RM) and prints the ground-truth increase: a quick check
that the world supports the study's claims, not the product's trainer (`rmteach train` uses TRL). Prints
numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from benchlib import add_options, run, save


def evaluate_all(root: Path, cache: Path) -> dict[str, dict]:
    from rmteach.core.config import load_config
    from rmteach.evaluate.config import EvaluateConfig
    from rmteach.evaluate.run import evaluate

    manifest = json.loads((root / "manifest.json").read_text())
    out = {}
    for policy, cfg_path in manifest["configs"]["evaluate_per_policy"].items():
        cfg = load_config(EvaluateConfig, root / cfg_path, [f"cache_dir={cache}"])
        report, _ = evaluate(cfg)
        out[policy] = {rm["name"]: rm for rm in report["reward_models"]}
    return out


def report_card(cards: dict[str, dict]) -> dict[str, dict]:
    """{rm: {"<policy>_variance", "<policy>_onpolicy_accuracy", ..., "offpolicy_accuracy"}}; prints it as a table."""
    first = next(iter(cards.values()))  # the off-policy set is the same for every policy
    heads = " | ".join(f"{p}: variance | {p}: on-policy acc" for p in cards)
    print(f"| reward model | {heads} | off-policy acc |")
    print("|---|" + "---|---|" * len(cards) + "---|")
    table = {}
    for n in first:
        row = {}
        for p in cards:
            row[f"{p}_variance"] = cards[p][n]["reward_variance"]["mean"]
            row[f"{p}_onpolicy_accuracy"] = cards[p][n]["onpolicy_accuracy"]
        row["offpolicy_accuracy"] = first[n]["offpolicy_accuracy"]
        table[n] = row
        print(f"| {n} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    return table


def compare_trees(a: Path, b: Path) -> list[str]:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return [str(f) for f in files if not (b / f).is_file() or (a / f).read_bytes() != (b / f).read_bytes()]


# ----------------------------------------------------------------------------------------------------------
# Policy-gradient probe


def probe(root: Path, policy: str, rm_cfg: dict, *, steps: int, lr: float, optim: str, seed: int) -> list[float]:
    """Ground-truth increase (mean r_G over eval prompts, 4 samples each) every 20 steps of RLOO."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rmteach.core.blocks import RewardModelConfig
    from rmteach.core.chat import format_prompt
    from rmteach.backends.rewards import load_reward_model
    from rmteach.toy.task import ground_truth

    rm_cfg = dict(rm_cfg)
    if "path" in rm_cfg:
        rm_cfg["path"] = str(root / rm_cfg["path"])
    rm = load_reward_model(RewardModelConfig(**rm_cfg))
    read = lambda p: [json.loads(x)["prompt"] for x in (root / p).read_text().splitlines()]  # noqa: E731
    manifest = json.loads((root / "manifest.json").read_text())
    train, evals = read(manifest["prompts"]["train"]), read(manifest["prompts"]["eval"])[:128]
    tok = AutoTokenizer.from_pretrained(root / "policies" / policy)
    tok.padding_side = "left"
    ref = AutoModelForCausalLM.from_pretrained(root / "policies" / policy)

    def generate(model, prompts, k, s):
        enc = tok([format_prompt(tok, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(s)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=True, top_k=0, max_new_tokens=16, num_return_sequences=k,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        return enc, gen

    def logp(model, enc, gen, k):
        n = enc["input_ids"].shape[1]
        new = gen[:, n:]
        eos = (new == tok.eos_token_id).int()
        mask = ((torch.cumsum(eos, 1) - eos) == 0).float()  # (B, T): tokens up to the first EOS
        attn = torch.cat([enc["attention_mask"].repeat_interleave(k, 0), mask.long()], 1)
        logits = model(input_ids=gen, attention_mask=attn).logits[:, n - 1 : -1]
        return (torch.log_softmax(logits, -1).gather(-1, new[..., None])[..., 0] * mask).sum(1)  # (B,)

    def gt(model):
        enc, gen = generate(model, evals, 4, 999)
        done = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return float(np.mean(ground_truth([p for p in evals for _ in range(4)], done)))

    enc, gen = generate(ref, train[:256], 4, 123)  # normalization over initial-policy samples
    r0 = rm.score([p for p in train[:256] for _ in range(4)],
                  tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True))
    mu, sd = r0.mean(), max(r0.std(), 1e-12)
    model = copy.deepcopy(ref)
    opt = (torch.optim.SGD if optim == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    start, curve, k, b, beta = gt(model), [], 4, 16, 0.05
    for step in range(steps):
        prompts = [train[i] for i in rng.integers(0, len(train), b)]
        model.eval()
        enc, gen = generate(model, prompts, k, seed * 100_000 + step)
        model.train()
        done = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        r = (rm.score([p for p in prompts for _ in range(k)], done) - mu) / sd
        lp = logp(model, enc, gen, k)
        with torch.no_grad():
            kl = (lp - logp(ref, enc, gen, k)).numpy()
        rr = torch.tensor((r - beta * kl).reshape(b, k), dtype=torch.float32)
        adv = (rr - (rr.sum(1, keepdim=True) - rr) / (k - 1)).reshape(-1)  # leave-one-out baseline
        loss = -(adv * lp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 20 == 0:
            curve.append(gt(model) - start)
    rm.close()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="keep the world(s) here (default: a temporary folder, removed at the end)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--twice", action="store_true", help="build a second copy and compare every file")
    ap.add_argument("--probe", action="store_true", help="RLOO probe: ground-truth increase per (policy, RM)")
    ap.add_argument("--optim", default="sgd", choices=["sgd", "adam"])
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--probe-seeds", type=int, default=1)
    add_options(ap, world=False)
    args = ap.parse_args()
    if args.smoke:
        args.preset, args.steps = "tiny", 20
    with tempfile.TemporaryDirectory(prefix="rmteach-bench-") if args.out is None else nullcontext(args.out) as out:
        bench(Path(out), args)


def bench(out: Path, args: argparse.Namespace) -> None:
    import torch

    from rmteach.toy.build import run_build

    figures, extra = {}, {}
    t0 = time.perf_counter()
    manifest = run_build(out / "world", seed=args.seed, preset=args.preset, overwrite=True)
    figures["build_s"] = time.perf_counter() - t0
    print(f"build ({args.preset}, seed {args.seed}): {figures['build_s']:.1f} s")
    if args.twice:
        t0 = time.perf_counter()
        run_build(out / "world2", seed=args.seed, preset=args.preset, overwrite=True)
        figures["second_build_s"] = time.perf_counter() - t0
        extra["differing_files"] = diffs = compare_trees(out / "world", out / "world2")
        print(f"second build: {figures['second_build_s']:.1f} s; differing files: {diffs or 'none'}")
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    cards = evaluate_all(out / "world", out / "cache")
    figures["evaluate_s"] = time.perf_counter() - t0
    print(f"evaluate both policies: {figures['evaluate_s']:.1f} s\n")
    extra["report_card"] = report_card(cards)
    if args.probe:
        rms = [rm["config"] for rm in manifest["reward_models"]] + [manifest["ground_truth"]]
        print(f"\nRLOO probe ({args.optim}, lr {args.lr}, {args.steps} steps, 16 prompts x 4 samples, KL 0.05): "
              "ground-truth increase every 20 steps")
        for p in manifest["policies"]:
            for cfg in rms:
                curves = [probe(out / "world", p["name"], cfg, steps=args.steps, lr=args.lr, optim=args.optim, seed=s)
                          for s in range(args.probe_seeds)]
                mean = np.mean(curves, axis=0)
                extra.setdefault("probe", {})[f"{p['name']}/{cfg['name']}"] = mean.tolist()
                print(f"{p['name']:8s} {cfg['name']:14s} " + " ".join(f"{x:+.3f}" for x in mean), flush=True)
    sizes = {"preset": args.preset, "seed": args.seed, "twice": args.twice, "probe": args.probe,
             "probe_steps": args.steps if args.probe else None, "smoke": args.smoke}
    save(args.json, "toy", figures, sizes, **extra)


if __name__ == "__main__":
    run(main)
