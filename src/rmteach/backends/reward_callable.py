"""The callable reward backend: any function with TRL's reward signature, named as `module:attribute`.

`(prompts, completions, **kwargs) -> list[float]`, the signature TRL's trainers call reward functions with.
What comes back is checked: one real number (or None, for "no reward") per completion, in a list, tuple or
1-D array. A function that raises, or returns anything else, stops the command with one line naming the RM,
what was expected, and the first prompt of the failing call (`rmteach --debug` shows the function's own
traceback).

`timeout_s` (here and on the custom backend) bounds each call. Python cannot stop a running call from outside:
`signal.alarm` would, between bytecodes, but only in the main thread (`rmteach serve-rm` scores in worker
threads), only on Unix, and it takes SIGALRM from the user's own code. So `TimedCalls` runs each call in a
daemon worker thread and waits at most `timeout_s` for it; one that overruns is abandoned, still running, and
the command ends with one line (exit 2): interpreter shutdown never joins a daemon thread, so the process exits.
Every later call of that RM is refused, so the abandoned call never runs beside another. The worker gets the
caller's context variables and torch's per-thread settings (grad and inference mode, the current CUDA device).
"""

from __future__ import annotations

import contextvars
import importlib
import math
import numbers
import sys
import threading
from contextlib import ExitStack, nullcontext
from typing import Any, Callable, ContextManager, Mapping, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig
from ..core.chat import prompt_text
from ..core.errors import ItemError, UserError, first_line


def import_callable(spec: str, what: str) -> Callable[..., Any]:
    """Import `module:attribute` (attribute may be dotted), with a one-line error when it fails."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"{what}: callable '{spec}' must look like 'module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"{what}: cannot import module '{module_name}' ({e})") from e
    except Exception as e:  # noqa: BLE001 - the module's own code failed while importing: the user's to fix
        raise UserError(f"{what}: importing module '{module_name}' raised {type(e).__name__}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what}: module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"{what}: '{spec}' is not callable")
    return obj


class CallTimeout(Exception):
    """A call of `TimedCalls` that did not return within its timeout (it may still be running)."""


def _torch_state() -> Callable[[], ContextManager[Any]]:
    """A context-manager factory that sets torch's per-thread settings of the calling thread in another thread:
    grad mode, inference mode and the current CUDA device (nothing without torch imported)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return nullcontext
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    device = torch.cuda.current_device() if torch.cuda.is_initialized() else None

    def enter() -> ExitStack:
        stack = ExitStack()
        stack.enter_context(torch.inference_mode() if inference else torch.set_grad_enabled(grad))
        if device is not None:
            stack.enter_context(torch.cuda.device(device))
        return stack

    return enter


class TimedCalls:
    """Calls of a user's function given at most `timeout_s` seconds each (None: called directly, no thread).

    See the module's docstring for why a daemon thread. Raises `CallTimeout` when a call overruns, and at once
    for every call after that one.

    >>> TimedCalls(1.0)(sorted, [2, 1])
    [1, 2]
    """

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s, self.overran = timeout_s, False

    def __call__(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if self.timeout_s is None:
            return fn(*args, **kwargs)
        if self.overran:
            raise CallTimeout("an earlier call did not return and may still be running")
        box: dict[str, Any] = {}
        done, context, torch_state = threading.Event(), contextvars.copy_context(), _torch_state()

        def work() -> None:
            try:
                with torch_state():
                    box["value"] = context.run(fn, *args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the caller, which reports it
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=work, name=f"rmteach-call-{getattr(fn, '__name__', 'fn')}", daemon=True).start()
        if not done.wait(self.timeout_s):
            self.overran = True
            raise CallTimeout(f"did not return within timeout_s={self.timeout_s:g} s")
        if "error" in box:
            raise box.pop("error")
        return box["value"]


def as_rewards(got: Any, n: int) -> tuple[np.ndarray | None, str | None]:
    """A callable's return value as (n,) float64 rewards (None -> NaN), or (None, what is wrong with it).

    >>> as_rewards([1, 2.5, None], 3)[0].tolist()
    [1.0, 2.5, nan]
    >>> as_rewards(["1.5"], 1)[1]
    "returned a str ('1.5') at position 0; expected a number"
    """
    if hasattr(got, "detach") and hasattr(got, "tolist"):  # a torch tensor (any dtype, bfloat16 too)
        got = got.detach().cpu().tolist()
    if isinstance(got, np.ndarray):
        if got.ndim != 1:
            return None, f"returned an array of shape {tuple(got.shape)}; expected {n} numbers, one per completion"
        got = got.tolist()
    if got is None:
        return None, f"returned None; expected a list of {n} numbers, one per completion (a missing return?)"
    if not isinstance(got, (list, tuple)):
        return None, f"returned a {type(got).__name__}; expected a list of {n} numbers, one per completion"
    if len(got) != n:
        return None, f"returned {len(got)} rewards for {n} completions (expected one number per completion)"
    out = np.empty(n, dtype=np.float64)
    for i, x in enumerate(got):
        if x is None:
            out[i] = math.nan
        elif isinstance(x, numbers.Real):
            try:
                out[i] = float(x)
            except OverflowError:
                return None, f"returned {str(x)[:20]}... at position {i}, too large for a float"
        else:
            return None, f"returned a {type(x).__name__} ({str(x)[:30]!r}) at position {i}; expected a number"
    return out, None


class CallableRewardModel:
    """A Python function with TRL's reward-function signature, scored in chunks of `batch_size`."""

    def __init__(self, cfg: RewardModelConfig) -> None:
        assert cfg.callable is not None
        self.name, self.cfg = cfg.name, cfg
        self.fn = import_callable(cfg.callable, f"reward model '{cfg.name}'")
        self.calls = TimedCalls(cfg.timeout_s)

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        """Rewards (n,) of the pairs; raises `ItemError` at the first pair of a call that failed."""
        out = []
        bs = max(self.cfg.batch_size, 256) if self.cfg.batch_size != "auto" else 256  # no padding: large is cheap
        who = f"reward model '{self.name}' ({self.cfg.callable})"
        for start in range(0, len(prompts), bs):
            p, c = list(prompts[start : start + bs]), list(completions[start : start + bs])
            kw = {k: list(v[start : start + bs]) for k, v in (extras or {}).items()}
            where = f"on the call with {len(p)} completions starting at {{item}} ({prompt_text(p[0])[:40]!r})"
            try:
                got = self.calls(self.fn, prompts=p, completions=c, **kw)
            except CallTimeout as e:
                raise ItemError(f"{who} {e} (timeout_s); {where}", start) from None
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's code: its message; --debug: traceback
                msg = first_line(e, "(no message)")
                raise ItemError(f"{who} raised {type(e).__name__}: {msg}; {where}", start) from e
            rewards, problem = as_rewards(got, len(p))
            if problem:
                raise ItemError(f"{who} {problem}; {where}", start)
            out.append(rewards)
            if progress:
                progress(len(p))
        return np.concatenate(out) if out else np.zeros(0)

    def close(self) -> None:
        pass
