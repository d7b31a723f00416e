"""`rmteach world build --preset real`: a world of real pretrained models, in the toy world's manifest format.

`build.build_real` writes it; `prompts` makes its prompt sets, `scorers` holds its cheap candidate RMs (TRL
reward callables), `convert` turns the packaged GGUF policy into a safetensors folder.
"""

from .build import build_real

__all__ = ["build_real"]
