"""The custom reward backend: a scorer built by your own code, for RMs no other backend reads (a multi-head RM such
as ArmoRM, a model with its own loading or scoring code).

`custom.builder` names a function as `module:attribute`. It is called once, when the RM loads:

    builder(path=custom.path, device="cuda", dtype="bfloat16", **custom.kwargs) -> scorer

`path` is None when `custom.path` is unset; `device` is the command's device, resolved (cpu, cuda, cuda:1, mps);
`dtype` is the name of a torch dtype: the RM's own `dtype`, else the command's, `auto` being bfloat16 on CUDA
and float32 elsewhere. The scorer is called per batch of `batch_size` pairs (`auto`: 64 on CUDA, 16 elsewhere,
halved at each out-of-memory) with TRL's reward signature, `scorer(prompts=[...], completions=[...], **extras)`
(a prompt is a string or a list of `{role, content}` messages), and returns one reward per completion: a list,
tuple, 1-D array or tensor, or an (n, 1) column. Several heads are fine when `custom.output` picks the reward:
the key of a dict, the attribute of an object (a `ModelOutput`, ArmoRM's output), the column of an (n, heads)
array, tensor or list of rows, or a list of these applied in turn (`[rewards, 0]`). What comes out is checked
as a callable's is (`as_rewards`); anything else stops the command with one line naming the RM and the first
prompt of the call. A scorer with a `close()` method is closed with the RM. `timeout_s` bounds each call of the
scorer, as a callable's (`reward_callable.TimedCalls`: the call runs in a daemon thread, abandoned if it overruns).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig
from ..core.chat import prompt_text
from ..core.errors import ItemError, UserError, first_line
from .reward_callable import CallTimeout, TimedCalls, as_rewards, import_callable
from .reward_hf import Batches

Output = str | int | list[str | int] | None


def _column(got: Any, j: int) -> tuple[Any, str | None]:
    """Column `j` of an (n, heads) array, tensor or list of rows."""
    if hasattr(got, "shape") and hasattr(got, "ndim"):  # a numpy array or a torch tensor
        shape = tuple(got.shape)
        if len(shape) != 2:
            return None, f"returned an array of shape {shape}; output {j} picks a column of an (n, heads) array"
        if j >= shape[1]:
            last = shape[1] - 1
            return None, f"returned {shape[1]} heads (shape {shape}); output {j} is not one of columns 0 to {last}"
        return got[:, j], None
    if isinstance(got, (list, tuple)) and got and all(isinstance(r, (list, tuple)) for r in got):
        width = min(len(r) for r in got)
        if j >= width:
            return None, f"returned rows of {width} heads; output {j} is not one of columns 0 to {width - 1}"
        return [r[j] for r in got], None
    return None, f"returned a {type(got).__name__}; output {j} picks a column of an (n, heads) array"


def _field(got: Any, name: str) -> tuple[Any, str | None]:
    """Key or attribute `name` of a dict or an object."""
    if isinstance(got, Mapping):
        if name in got:
            return got[name], None
        keys = ", ".join(sorted(map(str, got))[:8])
        return None, f"returned a {type(got).__name__} without the key '{name}' that output names (keys: {keys})"
    if hasattr(got, name):
        return getattr(got, name), None
    return None, f"returned a {type(got).__name__} without the attribute '{name}' that output names"


def pick(got: Any, output: Output) -> tuple[Any, str | None]:
    """The part of a scorer's return value that `output` names, or (None, what is wrong with the value).

    An (n, 1) column comes back as its n values.

    >>> pick({"score": [[0.5], [2.0]], "heads": [[1, 2], [3, 4]]}, ["heads", 1])[0]
    [2, 4]
    >>> pick(np.zeros((2, 3)), 3)[1]
    'returned 3 heads (shape (2, 3)); output 3 is not one of columns 0 to 2'
    """
    for step in output if isinstance(output, list) else [] if output is None else [output]:
        got, problem = _column(got, step) if isinstance(step, int) else _field(got, step)
        if problem:
            return None, problem
    if getattr(got, "ndim", None) == 2 and got.shape[1] == 1:
        got = got[:, 0]
    return got, None


class CustomRewardModel:
    """A scorer made by the config's builder, called on batches of pairs; see the module's docstring."""

    def __init__(self, cfg: RewardModelConfig, *, device: str, dtype: str) -> None:
        from ..core.hf import torch_dtype

        assert cfg.custom is not None
        self.name, self.cfg, c = cfg.name, cfg, cfg.custom
        what = f"reward model '{cfg.name}'"
        builder = import_callable(c.builder, f"{what} builder")
        dtype_name = str(torch_dtype(cfg.dtype or dtype, device)).removeprefix("torch.")
        try:
            self.scorer = builder(path=c.path, device=device, dtype=dtype_name, **c.kwargs)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's code: its message; --debug: traceback
            msg = first_line(e, "(no message)")
            raise UserError(f"{what}: builder {c.builder} raised {type(e).__name__}: {msg}") from e
        if not callable(self.scorer):
            raise UserError(f"{what}: builder {c.builder} returned a {type(self.scorer).__name__}, not a scorer (a "
                            "callable (prompts, completions, **extras) -> rewards)")
        self.batches, self.output = Batches(cfg.batch_size, device, what), c.output
        self.calls = TimedCalls(cfg.timeout_s)
        shown = f", output {c.output!r}" if c.output is not None else ""
        self._who = f"{what} ({c.builder}{shown})"

    def plan(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[list[int]]:
        """The batches (lists of indices) `score` calls the scorer on: consecutive, the current batch size each."""
        return self.batches.chunks(range(len(prompts)))

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        """Rewards (n,) of the pairs; raises `ItemError` at the first pair of a call that failed."""
        out, output = np.empty(len(prompts), dtype=np.float64), self.output  # (n,)

        def step(idx: list[int]) -> None:
            start, stop = idx[0], idx[-1] + 1
            p, c = list(prompts[start:stop]), list(completions[start:stop])
            kw = {k: list(v[start:stop]) for k, v in (extras or {}).items()}
            where = f"on the call with {len(p)} completions starting at {{item}} ({prompt_text(p[0])[:40]!r})"
            try:
                got = self.calls(self.scorer, prompts=p, completions=c, **kw)
            except CallTimeout as e:
                raise ItemError(f"{self._who} {e} (timeout_s); {where}", start) from None
            except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's code: its message; --debug: traceback
                if self.batches.absorbs(e):
                    raise
                msg = first_line(e, "(no message)")
                raise ItemError(f"{self._who} raised {type(e).__name__}: {msg}; {where}", start) from e
            picked, problem = pick(got, output)
            rewards, problem = as_rewards(picked, len(p)) if problem is None else (None, problem)
            several = isinstance(got, Mapping) or getattr(got, "ndim", None) == 2 or (  # a dict, (n, heads), an object
                hasattr(got, "__dict__") and not hasattr(got, "ndim"))
            if problem and output is None and several:
                problem += "; custom.output picks the reward among several heads"
            if problem:
                raise ItemError(f"{self._who} {problem}; {where}", start)
            out[start:stop] = rewards
            if progress:
                progress(len(p))

        self.batches.run(range(len(prompts)), step)
        return out

    def close(self) -> None:
        from accelerate.utils.memory import clear_device_cache

        close = getattr(self.scorer, "close", None)
        if callable(close):
            close()
        del self.scorer
        clear_device_cache(garbage_collection=True)
