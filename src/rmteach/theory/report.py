"""Plots, HTML and JSON of `rmteach theory`: turns the experiment dicts of `theory.experiments` into files.

One PNG per experiment (variance.png, accuracy.png, policies.png), theory.json and theory.html, all written
atomically. `theory_html_section` is the fragment the study report embeds (images as data URIs).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from ..core import io
from ..core.html import fig_to_png, html_page, html_table, png_data_uri

PLOTS = {"variance": "variance.png", "accuracy": "accuracy.png", "policies": "policies.png"}
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _figure(n_panels: int):
    """A fresh `Figure` with `n_panels` side by side (matplotlib's OO API, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * n_panels, 4.4), layout="constrained")
    return fig, fig.subplots(1, n_panels, squeeze=False)[0]


def _nan(values: list) -> np.ndarray:
    """JSON lists (None for inf) back to float arrays (nan)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_variance(block: dict):
    """Experiment 1: t_gamma against reward variance on log-log axes, fitted slope and the theory's rates."""
    fig, axes = _figure(2)
    for ax, key in zip(axes, ("tabular", "autoregressive")):
        b = block[key]
        var, t = _nan(b["variance"]), _nan(b["t_gamma"])
        fit, v = b["fit"], np.geomspace(np.nanmin(var), np.nanmax(var), 50)
        ax.loglog(var, t, "o", color="black", label=r"simulated $t_\gamma$ (accuracy 1)")
        if fit["slope"] is not None:
            ax.loglog(v, np.exp(fit["intercept"]) * v ** fit["slope"], "--", color="tab:blue",
                      label=f"least-squares fit: slope {fit['slope']:.3f}")
            ax.loglog(v, fit["c_half"] * v**-0.5, ":", color="tab:orange",
                      label=r"$c\,\mathrm{Var}^{-1/2}$ (tabular rate, Prop. 3)")
            ax.loglog(v, fit["c_third"] * v ** (-1 / 3), "-.", color="tab:green",
                      label=r"$c\,\mathrm{Var}^{-1/3}$ (general rate, Thm. 1)")
        size = f"|S|={b['n_prompts']}, |Y|={b['n_outputs']}" + (f", V={b['vocab']}" if "vocab" in b else "")
        ax.set_title(f"{'Tabular softmax' if key == 'tabular' else 'Two-token autoregressive'} ({size})")
        ax.set_xlabel("RM reward variance under the initial policy (mean over prompts)")
        ax.set_ylabel(rf"$t_\gamma$ (flow time to gain $\gamma$={b['gamma']:g} gold reward)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Experiment 1: lower reward variance, slower optimization (c: largest constant below all points)")
    return fig


def _gold_curves(ax, curves: list[dict], labels: list[str], t_gamma: list, target: float, legend: bool = True):
    """Gold reward against flow time (log axis) with the target line and each run's t_gamma."""
    # A log axis cannot show t = 0: start every curve at the earliest first step of any run, with the value of
    # its Euler trajectory (linear between steps) there.
    t0 = min(_nan(c["t"])[1] for c in curves)
    for i, (c, label, tg) in enumerate(zip(curves, labels, t_gamma)):
        t, g = _nan(c["t"]), _nan(c["gold"])
        keep = t > t0
        ax.plot(np.r_[t0, t[keep]], np.r_[np.interp(t0, t, g), g[keep]], color=_COLORS[i], label=label)
        if tg is not None:
            ax.axvline(tg, color=_COLORS[i], ls=":", lw=1)
    ax.axhline(target, color="gray", ls="--", lw=1, label=r"start + $\gamma$")
    ax.set_xscale("log")
    ax.set_xlabel("flow time t (log scale; dotted: each run's $t_\\gamma$)")
    ax.set_ylabel("expected ground-truth reward")
    ax.grid(True, which="both", alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="center left")


def plot_accuracy(block: dict):
    """Experiment 2: gold-reward curves of the accurate low-variance RM and the inaccurate separating one."""
    fig, axes = _figure(1)
    fig.set_figheight(5.2)
    rms = block["rms"]
    labels = [f"{r['name']} (acc {r['accuracy']:.3f}, var {r['variance']:.2g})" for r in rms]
    _gold_curves(axes[0], [r["curve"] for r in rms], labels, [r["t_gamma"] for r in rms],
                 block["start_gold"] + block["gamma"], legend=False)
    fig.legend(fontsize=8, loc="outside lower center")  # below the axes: the labels are long
    ratio = block["ratio"]
    verdict = rf"$t_\gamma$ accurate / inaccurate = {ratio:.0f}x" if ratio else "one RM never reached start + gamma"
    axes[0].set_title("Experiment 2: accuracy is not enough (Thm. 2)\n" + verdict)
    return fig


def plot_policies(block: dict):
    """Experiment 3: per initial policy, the gold-reward curves under the two RMs."""
    fig, axes = _figure(2)
    for i, (ax, name) in enumerate(zip(axes, block["policies"])):
        hi, lo = block["p_high"], block["p_low"]
        p1, p2 = (hi, lo) if i == 0 else (lo, hi)
        _gold_curves(ax, block["curves"][2 * i : 2 * i + 2], block["rms"], block["t_gamma"][i],
                     block["start_gold"][i] + block["gamma"])
        ax.set_title(rf"policy {name}: $\pi_0(y_1)$={p1:g}, $\pi_0(y_2)$={p2:g}")
    fig.suptitle("Experiment 3: different policies, different teachers (Thm. 3)")
    return fig


# ----------------------------------------------------------------------------------------------------------
# HTML


def _fmt(x) -> str:
    return "never" if x is None else f"{x:.4g}"


def _variance_html(b: dict) -> str:
    summary = html_table(
        ["policy class", "fitted log-log slope", "theory's rate (lower bound)", "t_gamma falls with variance",
         "t_gamma change at half step"],
        [[k, b[k]["fit"]["slope"], b[k]["theory_slope"], str(b[k]["checks"]["t_gamma_decreases"]),
          b[k].get("half_step_max_rel_change")] for k in ("tabular", "autoregressive")],
    )
    rows = [[k, a, v, acc, t] for k in ("tabular", "autoregressive")
            for a, v, acc, t in zip(b[k]["alphas"], b[k]["variance"], b[k]["accuracy"], b[k]["t_gamma"])]
    detail = html_table(["policy class", "shrink factor", "reward variance", "accuracy", "t_gamma"], rows)
    return (
        "<p>Perfectly accurate RMs: the ground truth with the rewards of the outputs that hold "
        f"{b['tabular']['mass']:.0%} of the initial policy's mass shrunk towards their mean (ranking kept). "
        "Theory: t_gamma &ge; c&middot;Var<sup>-1/2</sup> for tabular policies (Proposition 3) and "
        "&ge; c&middot;Var<sup>-1/3</sup> for general autoregressive ones (Theorem 1).</p>\n"
        f"{summary}\n<details><summary>every RM</summary>\n{detail}\n</details>"
    )


def _accuracy_html(b: dict) -> str:
    table = html_table(
        ["RM", "accuracy (all pairs)", "on-policy accuracy", "reward variance", "t_gamma"],
        [[r["name"], r["accuracy"], r["onpolicy_accuracy"], r["variance"], r["t_gamma"]] for r in b["rms"]],
    )
    return (
        "<p>A perfectly accurate RM that gives near-equal rewards to every likely output, against an RM that "
        "only separates one good output y<sub>&gamma;</sub> (accuracy &le; 2/|Y| over all pairs). "
        f"The accurate RM needs <b>{_fmt(b['ratio'])}x</b> the time of the inaccurate one.</p>\n{table}"
    )


def _policies_html(b: dict) -> str:
    t, v = b["t_gamma"], b["variance"]
    table = html_table(
        ["initial policy", *(f"t_gamma, {r}" for r in b["rms"]), *(f"variance, {r}" for r in b["rms"])],
        [[f"policy {p}", *t[i], *v[i]] for i, p in enumerate(b["policies"])],
    )
    return (
        f"<p>Policy A puts {b['p_high']:g} on y<sub>1</sub> and {b['p_low']:g} on y<sub>2</sub>, policy B the "
        "reverse; both start at the same gold reward. Each RM rewards one of the two (equally good) outputs. "
        f"The fast RM flips with the policy: <b>{b['checks']['flip']}</b>.</p>\n{table}"
    )


_SECTIONS = {
    "variance": ("1. Reward variance sets the speed", _variance_html),
    "accuracy": ("2. Accuracy is not enough (Theorem 2)", _accuracy_html),
    "policies": ("3. Different policies, different teachers (Theorem 3)", _policies_html),
}


def _section(result: dict, pngs: dict[str, bytes]) -> str:
    parts = [
        '<section id="theory">\n<h2>Theory: exact gradient-flow simulations</h2>',
        '<p class="note">Exact gradients of E<sub>x</sub>[E<sub>y~&pi;</sub> r(x,y)] &minus; &lambda; KL(&pi;||'
        "&pi;<sub>ref</sub>) for softmax policies, integrated by small Euler steps; t<sub>&gamma;</sub> is the "
        "flow time at which the expected ground-truth reward has risen by &gamma; (Razin et al., 2025).</p>",
    ]
    for name, block in result["experiments"].items():
        title, body = _SECTIONS[name]
        alt = html.escape(f"plot of experiment {title}")
        parts += [f"<h3>{html.escape(title)}</h3>", body(block),
                  f'<img src="{png_data_uri(pngs[name])}" alt="{alt}">']
    return "\n".join(parts) + "\n</section>"


def theory_html_section(result: dict, out: Path) -> str:
    """An HTML fragment with every experiment of `result`, its plots read from `out` and embedded.

    Arguments:
        result: the dict `rmteach.theory.experiments.run` returned (or theory.json's content).
        out: the folder holding the PNGs that `run` wrote.

    Returns:
        A `<section>` element as a string, with no external resources.
    """
    out = Path(out)
    return _section(result, {name: (out / PLOTS[name]).read_bytes() for name in result["experiments"]})


def write_outputs(result: dict, out: Path) -> None:
    """Write one PNG per experiment, theory.json and theory.html into `out`, each atomically.

    Arguments:
        result: the run's dict; each experiment block gets its "plot" file name added.
        out: the output folder, created if missing.
    """
    out = Path(out)
    plotters = {"variance": plot_variance, "accuracy": plot_accuracy, "policies": plot_policies}
    pngs = {}
    for name, block in result["experiments"].items():
        pngs[name] = fig_to_png(plotters[name](block))
        block["plot"] = PLOTS[name]
        io.write_bytes(out / PLOTS[name], pngs[name])
    io.write_json(out / "theory.json", result)
    io.write_text(out / "theory.html", html_page("rmteach theory", _section(result, pngs)))
