"""Steps per second of the vectorized tabular gradient flow against a per-prompt Python loop of the same math.

    python benchmarks/bench_theory.py [--prompts 100] [--outputs 1000] [--steps 10000] [--smoke] [--json PATH]

Both run fixed-step Euler on the exact gradient of E_x E_pi r - lam * KL with the ground-truth reward tracked
every step, on the same problem; they are checked to land on the same parameters. Pin one core for the
target "|S|=100, |Y|=1000, 10,000 steps in at most 10 s on one CPU core": `taskset -c 0 python ...`.
Prints numbers; asserts nothing. Needs no model, so no toy world.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from benchlib import add_options, run, save  # noqa: E402
from rmteach.theory import experiments, sim  # noqa: E402


def loop_flow(theta_ref, reward, gold, lam, dt, n_steps):
    """The same Euler steps, one prompt at a time, the way one would first write it."""
    S = theta_ref.shape[0]
    theta = theta_ref.copy()
    log_ref = [sim.log_softmax(row) for row in theta_ref]
    golds = []
    for _ in range(n_steps):
        g_mean = 0.0
        grads = []
        for x in range(S):
            pi = sim.softmax(theta[x])  # (Y,)
            adv = reward[x] - lam * (sim.log_softmax(theta[x]) - log_ref[x]) if lam else reward[x]
            grads.append(pi * (adv - pi @ adv) / S)
            g_mean += pi @ gold[x] / S
        golds.append(g_mean)
        for x in range(S):
            theta[x] += dt * grads[x]
    return theta, np.array(golds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--outputs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10_000, help="steps of the vectorized run")
    ap.add_argument("--loop-steps", type=int, default=200, help="steps of the (slow) loop run")
    ap.add_argument("--lam", type=float, default=0.0, help="KL coefficient")
    ap.add_argument("--dt", type=float, default=1.0, help="fixed time step")
    add_options(ap, world=False)
    args = ap.parse_args()
    if args.smoke:
        args.prompts, args.outputs, args.steps, args.loop_steps = 10, 50, 200, 20

    theta_ref, gold = experiments.tabular_instance(args.prompts, args.outputs, seed=0)
    reward = sim.shrink_likely(gold, sim.softmax(theta_ref), alpha=0.5)
    # gamma = inf: never stop early, time exactly `steps` steps.
    run = lambda n: sim.gradient_flow(theta_ref[None], sim.TabularField(theta_ref, reward, gold, args.lam),
                                         gamma=np.inf, step=args.dt, adaptive=False, max_steps=n)

    start = time.perf_counter()
    flow = run(args.steps)
    vec_s = time.perf_counter() - start
    start = time.perf_counter()
    theta_loop, _ = loop_flow(theta_ref, reward, gold, args.lam, args.dt, args.loop_steps)
    loop_s = time.perf_counter() - start

    same = np.allclose(run(args.loop_steps).params[0], theta_loop, rtol=1e-9, atol=1e-9)
    vec_rate, loop_rate = args.steps / vec_s, args.loop_steps / loop_s
    print(f"problem: |S|={args.prompts}, |Y|={args.outputs}, lam={args.lam}, fixed dt={args.dt}")
    print(f"vectorized: {args.steps} steps in {vec_s:.2f} s = {vec_rate:,.0f} steps/s (target: 10,000 steps <= 10 s)")
    print(f"per-prompt loop: {args.loop_steps} steps in {loop_s:.2f} s = {loop_rate:,.1f} steps/s")
    print(f"speed-up: {vec_rate / loop_rate:.1f}x   same parameters after {args.loop_steps} steps: {same}")
    print(f"final gold reward (vectorized): {flow.gold[-1, 0]:.4f}")
    sizes = {"prompts": args.prompts, "outputs": args.outputs, "steps": args.steps, "loop_steps": args.loop_steps,
             "lam": args.lam, "dt": args.dt, "smoke": args.smoke}
    save(args.json, "theory", {"speedup": vec_rate / loop_rate, "vectorized_steps_per_s": vec_rate,
                               "loop_steps_per_s": loop_rate, "vectorized_seconds": vec_s}, sizes,
         same_parameters=bool(same), final_gold_reward=float(flow.gold[-1, 0]))


if __name__ == "__main__":
    run(main)
