"""The config base every command shares: strict models, YAML loading, `--set` overrides, path resolution.

Every config is a pydantic model with ``extra="forbid"``: a misspelt key fails at load time, before any
model is loaded, with a message that names the key and the keys allowed there. Relative paths in a config
file are resolved against the file's folder, so a config travels with the data it names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import UserError


class Strict(BaseModel):
    """Base for every config block: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_device(v: str) -> str:
    """Validate a device name: auto, cpu, cuda, cuda:N or mps."""
    ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
    if not ok:
        raise ValueError(f"device must be one of auto, cpu, cuda, cuda:N, mps (got {v!r})")
    return v



# A config is a few hundred values; YAML aliases can make a few lines stand for billions ("billion laughs"),
# which the key checks below would copy level by level. The composed node graph is measured before any value
# is built: its size as a tree (each alias counted as what it stands for) and its depth.
MAX_CONFIG_BYTES = 2**20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def check_yaml_size(root: yaml.Node, source: str) -> None:
    """Refuse a composed YAML document that expands past `MAX_YAML_NODES` nodes or `MAX_YAML_DEPTH` levels, or
    holds an alias inside its own anchor (a loop), without expanding it: each node's tree size is counted once."""
    size: dict[int, int] = {}  # id(node) -> its size as a tree, aliases expanded
    open_ids: set[int] = set()  # the nodes on the path from the root: an alias to one of them is a loop
    stack = [(root, 1, False)]
    while stack:
        node, depth, closing = stack.pop()
        if closing:
            open_ids.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            if size[id(node)] > MAX_YAML_NODES:
                raise UserError(f"{source}: its anchors and aliases (&, *) expand to more than {MAX_YAML_NODES:,} "
                                "values; a config this large is not one rmteach reads")
            continue
        if id(node) in size:
            continue
        if id(node) in open_ids:
            raise UserError(f"{source}: an alias (*) inside the value of its own anchor (&) makes a loop")
        if depth > MAX_YAML_DEPTH:
            raise UserError(f"{source}: values nested more than {MAX_YAML_DEPTH} levels deep")
        open_ids.add(id(node))
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(node) if id(c) not in size)


def load_yaml(text: str, source: str) -> Any:
    """`yaml.safe_load` of `text`, refusing (one `UserError` naming `source`) a document whose aliases expand
    too far, before anything is expanded (`check_yaml_size`). Syntax errors stay `yaml.YAMLError`s."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_yaml_size(node, source)
        return loader.construct_document(node)
    except RecursionError:  # the composer is recursive: brackets nested a few hundred deep
        raise UserError(f"{source}: values nested more than {MAX_YAML_DEPTH} levels deep") from None
    finally:
        loader.dispose()


C = TypeVar("C", bound=BaseModel)


def format_error(err: dict[str, Any], model_cls: type[BaseModel], source: str) -> str:
    """One pydantic error as one line: the key's dotted path, what is wrong, and the allowed keys or value."""
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent = _model_at(model_cls, err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "?"
        return f"{source}: unknown key '{loc}' (allowed here: {allowed})"
    if err["type"] == "missing":
        return f"{source}: missing required key '{loc}'"
    got = err.get("input")
    got_s = f" (got {json.dumps(got, default=str)[:80]})" if not isinstance(got, dict) else ""
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: {loc + ': ' if loc else ''}{msg}{got_s}"


def _model_at(model_cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """Follow a validation error location down nested models, for the 'allowed keys' hint."""
    import typing

    cls: Any = model_cls
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann] + list(typing.get_args(ann))
        for a in list(candidates):
            candidates += list(typing.get_args(a))
        nxt = [a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nxt:
            return None
        cls = nxt[0]
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def validate(model_cls: type[C], data: Any, source: str = "config") -> C:
    """Validate a plain dict into `model_cls`, turning the first error into a one-line `UserError`."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of keys to values at the top level")
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise UserError(format_error(e.errors()[0], model_cls, source)) from None


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn `["a.b=1", "c=x"]` into a nested dict; values are parsed as YAML (`1` -> int, `x` -> str)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = load_yaml(raw, f"--set {key}") if raw else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {pair}: '{p}' is both a value and a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict, over: dict) -> dict:
    """Recursively merge `over` into a copy of `base` (lists and scalars are replaced)."""
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = deep_merge(merged[k], v)
        elif isinstance(v, dict) and isinstance(merged.get(k), list) and all(i.isascii() and i.isdigit() for i in v):
            items = list(merged[k])  # `--set reward_models.1.batch_size=8` edits one list item
            for i, sub in v.items():
                if int(i) >= len(items):
                    raise UserError(f"--set {k}.{i}: '{k}' has only {len(items)} items")
                item = items[int(i)]
                items[int(i)] = deep_merge(item, sub) if isinstance(sub, dict) and isinstance(item, dict) else sub
            merged[k] = items
        else:
            merged[k] = v
    return merged


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for a missing file or bad syntax."""
    from .io import read_user_text

    path = Path(path)
    text = read_user_text(path, "config file", MAX_CONFIG_BYTES)
    try:
        data = load_yaml(text, str(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def resolve_path(value: str, base: Path, *, model: bool) -> str:
    """Resolve a path relative to `base`; a model reference that is not a local path stays a hub id."""
    if "\x00" in value:
        raise UserError(f"path {value!r} holds a NUL character")
    p = Path(os.path.expanduser(value))
    try:
        (p if p.is_absolute() else base / p).exists()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise UserError(f"path {value[:80]!r}: {e.strerror or e}") from None
    if p.is_absolute():
        return str(p)
    local = base / p
    looks_local = value.startswith((".", "/", "~")) or local.exists() or not model
    return str(local.resolve()) if looks_local else value


def _resolve_each(value: Any, base: Path, *, model: bool) -> Any:
    """`resolve_path` of every string in a string, list or dict (a data set's `data_files`)."""
    if isinstance(value, str):
        return resolve_path(value, base, model=model)
    if isinstance(value, list):
        return [_resolve_each(v, base, model=model) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_each(v, base, model=model) for k, v in value.items()}
    return value


def resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve every known path field of a raw config dict against the config file's folder `base`.

    Walks nested dicts and lists: keys named `path` are resolved (model paths only when they exist
    locally or look like paths, so hub ids survive); `cache_dir`, an RM's `tokenizer` and
    `forecast.train_config` likewise; a data set's `hub` as a model path, its `data_files` (without `hub`)
    as paths.
    """

    def walk(node: Any, parent_key: str | None, loc: str) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k in ("path", "cache_dir", "tokenizer", "train_config") and isinstance(v, str):
                    is_model = parent_key in ("policy", "reward_model", "reward_models", "ground_truth", "policies",
                                              "custom", "judge")
                    try:
                        out[k] = resolve_path(v, base, model=is_model)
                    except UserError as e:
                        raise UserError(f"{loc}{k}: {e}") from None
                elif k in ("hub", "data_files") and not (k == "data_files" and "hub" in node):
                    # a data set's hub id (or local copy of one), its local data files (with hub: files of the hub's)
                    try:
                        out[k] = _resolve_each(v, base, model=k == "hub")
                    except UserError as e:
                        raise UserError(f"{loc}{k}: {e}") from None
                else:
                    out[k] = walk(v, k, f"{loc}{k}.")
            return out
        if isinstance(node, list):
            return [walk(v, parent_key, f"{loc}{i}.") for i, v in enumerate(node)]
        return node

    return walk(data, None, "")


def load_config(model_cls: type[C], path: str | os.PathLike, overrides: list[str] | None = None) -> C:
    """Load a YAML config file into `model_cls`, applying `--set key=value` overrides first.

    Arguments:
        model_cls: the config model of the command.
        path: the YAML file; relative paths inside are resolved against its folder.
        overrides: `key.sub=value` strings that replace values of the file.

    Returns:
        The validated config. Raises `UserError` naming the key for any unknown key or wrong value.
    """
    data = read_yaml(path)
    data = deep_merge(data, parse_overrides(overrides or []))
    data = resolve_paths(data, Path(path).resolve().parent)
    return validate(model_cls, data, source=str(path))


def to_plain(cfg: BaseModel) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (for reports)."""
    return cfg.model_dump(mode="json")


def non_defaults(cfg: BaseModel) -> dict[str, Any]:
    """The settings of `cfg` that differ from their defaults, as plain data: what a person wrote, or would.

    Loading the result back gives `cfg` again (`to_plain` of both is equal), since every left-out field takes
    its default.
    """
    return cfg.model_dump(mode="json", exclude_defaults=True)
