"""The output-folder discipline every command follows: never lose a user's file, never leave half an output.

1. `check_out`: an empty, root or home `--out` is refused, and the location is probed by creating and removing
   a file there before any work (so an unwritable `--out` fails in seconds, as root too).
2. A manifest (`OWNERSHIP`, a small hidden JSON) names the command that owns a folder and the top-level names
   it may write; it is written before anything else. `--overwrite` removes only those names (`clear_owned`)
   and refuses a folder holding anything else, naming the first such entry; a folder without a manifest is not
   an rmteach output and is never cleared.
3. `staged`: one-shot commands (evaluate, rm pairs, theory) write into a fresh folder beside `--out` and move
   it into place whole when complete; an interrupt leaves `--out` as it was.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError

OWNERSHIP = ".rmteach-out.json"
SCHEMA = "rmteach.out/1"

# The top-level names each command writes (glob patterns allowed); a command's legacy marker (before manifests)
# is what `owner` recognizes a folder of an older rmteach by.
OWNED: dict[str, tuple[str, ...]] = {
    "evaluate": ("report.json", "rewards.parquet", "prompts.parquet", "concentration.png", "preference_rewards.parquet",
                 "summary.md", "timing.json"),
    "rm pairs": ("summary.json", "pairs.jsonl", "pairs.parquet", "samples.jsonl"),
    "theory": ("theory.json", "theory.html", "variance.png", "accuracy.png", "policies.png"),
    "train": ("run.json", "metrics.jsonl", "final", "tensorboard", "README.md", "checkpoint-*", "done.json"),
    "rm train": ("run.json", "metrics.jsonl", "model", "data", "tensorboard", "README.md", "checkpoint-*"),
    "study": ("config.json", "study.json", "timing.json", "report.html", "summary.md", "plots", "evaluate", "runs",
              "curation", "logs", "submitit", "study.yaml", "demo.json"),
    "toy build": ("build.json", "manifest.json", "evaluate.yaml", "evaluate_*.yaml", "data", "policies", "on_policy",
                  "reward_models"),
    "world build": ("build.json", "manifest.json", "evaluate.yaml", "evaluate_*.yaml", "data", "policies", "rms"),
    # curate's folders are named by the RMs: any name a safe RM name can be; `curate.output.check_own` then
    # refuses what its curation.json does not name
    "curate": ("curation.json", "summary.md", "[A-Za-z0-9]*"),
}
LEGACY = {  # an output written before manifests is recognized by its marker file and that file's schema
    "evaluate": ("report.json", "rmteach.evaluate/"), "rm pairs": ("summary.json", "rmteach.rm.pairs/"),
    "theory": ("theory.json", "rmteach.theory/"), "train": ("run.json", "rmteach.train/"),
    "rm train": ("run.json", "rmteach.rm.train/"), "study": ("config.json", "rmteach.study-config/"),
    "toy build": ("build.json", "rmteach.toy/"),
}


# ----------------------------------------------------------------------------------------------------------
# 1. Where an output may go


def _probe(folder: Path, out: Path) -> None:
    """Create and remove a file in `folder`: the one check that holds for root and for /proc alike."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".rmteach-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write in {folder} ({e.strerror or e})") from None


def check_out(out: str | os.PathLike, *, beside: bool = False) -> Path:
    """Refuse an output folder that cannot be one, before any work.

    Refused: an empty `--out` (an unset variable), the root or home folder, a file, a path under a file, and a
    place where a file cannot actually be created (the nearest existing folder is probed; with `beside`, the
    folder `out` is created in, where a staged output is written first).

    Returns:
        `out` as a `Path` (nothing is left behind).
    """
    if not str(out).strip():
        raise UserError("--out is empty (an unset variable?): name the output folder")
    out = Path(out)
    try:
        real = out.expanduser().resolve()
        if real == Path(real.anchor) or real == Path.home().resolve():
            raise UserError(f"--out {out} is the {'root' if real == Path(real.anchor) else 'home'} folder: "
                            "name a folder of its own")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file, not a folder")
        first = out if out.exists() and not beside else out.absolute().parent
        while not first.exists():  # the nearest existing folder, where `out` will be created
            first = first.parent
    except OSError as e:  # a name too long, a folder we may not look into
        raise UserError(f"--out {out}: {e.strerror or e}") from None
    if not first.is_dir():
        raise UserError(f"--out {out}: {first} is a file, not a folder")
    _probe(first, out)
    return out


# ----------------------------------------------------------------------------------------------------------
# 2. Ownership


def entries(out: Path) -> list[str]:
    """The names in `out`, sorted (none when it is absent); a folder that cannot be listed is a `UserError`."""
    try:
        return sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    except OSError as e:  # a folder we may not list
        raise UserError(f"--out {out}: {e.strerror or e}") from None


def contents(out: Path) -> list[str]:
    """The names in `out` besides its manifest (a manifest alone: a run killed as it began, an empty folder)."""
    return [e for e in entries(out) if e != OWNERSHIP]


def owner(out: Path) -> tuple[str, tuple[str, ...]] | None:
    """(command, owned names) of an rmteach output folder; None for a folder no rmteach command claimed."""
    try:
        data = json.loads((out / OWNERSHIP).read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("command") in OWNED and isinstance(data.get("names"), list):
            return data["command"], tuple(str(n) for n in data["names"])
    except (OSError, ValueError):
        pass
    if (out / OWNERSHIP).exists():  # a manifest that does not parse: nothing is assumed
        return None
    for command, (marker, schema) in LEGACY.items():
        try:
            legacy = json.loads((out / marker).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(legacy, dict) and str(legacy.get("schema", "")).startswith(schema):
            return command, OWNED[command]
    return None


def _owned_by(name: str, names: Iterable[str]) -> bool:
    return name == OWNERSHIP or any(fnmatch.fnmatchcase(name, pat) for pat in names)


def foreign(out: Path, command: str) -> str | None:
    """Why `--overwrite` may not clear `out` for `command` (a message), or None when it may (empty or all ours)."""
    names_here = contents(out)
    if not names_here:
        return None
    found = owner(out)
    if found is None:
        return f"--out {out} is not an rmteach output (it holds {names_here[0]}); choose another folder"
    kind, names = found
    if kind != command:
        return f"--out {out} holds an rmteach {kind} output, not a {command} one; choose another folder"
    names = tuple(set(names) & set(OWNED[command])) or OWNED[command]
    other = next((e for e in names_here if not _owned_by(e, names)), None)
    if other is not None:
        return (f"--out {out} holds {other}, which no {command} run wrote; rmteach replaces only a run's own "
                "files: move it away or choose another folder")
    return None


def claim(out: Path, command: str) -> None:
    """Write the manifest saying `command` owns `out` (created if missing), before any other output."""
    from . import io

    out.mkdir(parents=True, exist_ok=True)
    found = owner(out) if (out / OWNERSHIP).is_file() else None
    # a manifest alone in a folder (a run killed at once) is replaced; an older version's names are brought up
    # to date, so that names this version writes (a study's `curation`) are its own to `--overwrite`
    if found is None or found[0] != command or set(found[1]) != set(OWNED[command]):
        io.write_json(out / OWNERSHIP, {"schema": SCHEMA, "command": command, "names": list(OWNED[command])})


def clear_owned(out: Path, command: str, *, remove_empty: bool = False) -> None:
    """Delete what a `command` run wrote in `out` and nothing else; refuse (UserError) a folder holding anything else.

    The manifest goes too (`claim` writes it again); `remove_empty`: then `out` itself, if nothing is left.
    """
    if not out.is_dir():
        return
    why = foreign(out, command)
    if why is not None:
        raise UserError(why)
    for name in sorted(entries(out), key=lambda n: n == OWNERSHIP):  # the manifest last
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    if remove_empty and not any(out.iterdir()):
        out.rmdir()


# ----------------------------------------------------------------------------------------------------------
# 3. Staged one-shot outputs


@contextmanager
def staged(out: str | os.PathLike, command: str) -> Iterator[Path]:
    """Yield a fresh folder beside `out` to write a whole output in; on success it replaces `out` whole.

    `out` may be absent, empty, or an earlier output of `command` (checked again here: anything else stops the
    move, with `out` untouched). On any exception or interrupt the fresh folder is removed and `out` is left
    as it was.
    """
    out = Path(os.path.abspath(out))  # "." or "x/..": a name to move a folder onto
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.rmteach-new."
    remove_stale_stages(out.parent, prefix)
    stage = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}.", dir=out.parent))
    try:
        claim(stage, command)
        yield stage
        publish(stage, out, command)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def remove_stale_stages(folder: Path, prefix: str) -> list[Path]:
    """Remove the fresh folders (`PREFIX<pid>.*`) that a killed run (`kill -9`) left in `folder`.

    Only folders whose process is gone and that hold an rmteach manifest: a live run's folder and anything
    else of that name stay. Returns the folders removed.
    """
    removed = []
    for p in folder.glob(f"{glob.escape(prefix)}*"):
        pid = p.name[len(prefix):].split(".")[0]
        if not (pid.isdigit() and p.is_dir() and owner(p) is not None) or _alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def publish(stage: Path, out: Path, command: str) -> None:
    """Move the complete folder `stage` onto `out` (absent, empty or an earlier `command` output).

    An absent `out` is one rename. An existing one keeps its own folder (a mount point, a link, the current
    folder): its old entries move aside, the new ones in (the manifest first), the old ones are removed; a
    failure part-way moves everything back.
    """
    why = foreign(out, command) if out.exists() else None
    if why is not None:
        raise UserError(why)
    if not out.exists():
        os.replace(stage, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.rmteach-old.", dir=stage.parent))
    old, new = entries(out), sorted(entries(stage), key=lambda n: n != OWNERSHIP)
    moved_old: list[str] = []
    moved_new: list[str] = []
    try:
        for name in old:
            os.replace(out / name, trash / name)
            moved_old.append(name)
        for name in new:
            os.replace(stage / name, out / name)
            moved_new.append(name)
    except BaseException:
        for name in reversed(moved_new):
            os.replace(out / name, stage / name)
        for name in reversed(moved_old):
            os.replace(trash / name, out / name)
        raise
    finally:
        if len(moved_new) == len(new) or not any(trash.iterdir()):  # else the old entries stay there, named
            shutil.rmtree(trash, ignore_errors=True)
