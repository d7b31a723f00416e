"""`rmteach serve-rm` on the command line: load the config and the reward model, serve it until interrupted.

`rmteach.cli` registers it with `add_parser(subparsers)` and dispatches `args.command == "serve-rm"` to `run`.
Bad input raises `UserError` before anything listens, which `rmteach.cli.main` turns into one line and exit 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
from typing import Any

from ..core.errors import UserError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `serve-rm` on the `rmteach` command's subparsers; returns its parser."""
    p = subparsers.add_parser(
        "serve-rm", help="serve a reward model over HTTP (OpenRLHF's /get_reward, vLLM's /v1/score)",
        description="Load one reward model (any backend: an HF classifier, a Python callable) and serve it until "
        "interrupted: POST /get_reward (OpenRLHF's remote RM format: query = prompt + response, prompts), POST "
        "/score and /v1/score (vLLM's score API: text_1 = prompts, text_2 = responses), GET /health. Point "
        "OpenRLHF's --remote_rm_url, or another rmteach config's `http:` reward model, at it.",
        epilog="Example: rmteach serve-rm -c serve.yaml --port 5000, with serve.yaml holding "
        "`reward_model: {name: my_rm, path: ./rm}` (and optionally device, dtype, host, port, max_body_mb, "
        "api_key_env). Beyond this machine (--host 0.0.0.0), set api_key_env: anyone who reaches the port can "
        "use the model otherwise.",
    )
    p.add_argument("--config", "-c", required=True, help="YAML config file (ServeConfig)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set reward_model.batch_size=32 (repeatable)")
    p.add_argument("--host", default=None, help="address to listen on (default: the config's, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: the config's, 8000)")
    p.add_argument("--max-body-mb", type=float, default=None, metavar="MB",
                   help="largest request body in MB, refused with 413 beyond (default: the config's, 16)")
    return p


def run(args: argparse.Namespace) -> int:
    """Serve the reward model an `rmteach serve-rm` command line names; returns the exit code (0) once stopped."""
    from ..backends.reward_http import api_key_from_env
    from ..backends.rewards import check_reward_source, load_reward_model
    from ..core.config import load_config
    from ..core.hf import resolve_device
    from .app import build_app
    from .config import ServeConfig

    try:
        import fastapi  # noqa: F401 - build_app's, checked before any weights load
        import uvicorn
    except ImportError as e:
        raise UserError(f"serve-rm needs fastapi and uvicorn ({e}): pip install 'rmteach[serve]'") from None
    overrides = list(args.overrides)
    overrides += [f"host={args.host}"] if args.host is not None else []
    overrides += [f"port={args.port}"] if args.port is not None else []
    overrides += [f"max_body_mb={args.max_body_mb}"] if args.max_body_mb is not None else []
    cfg = load_config(ServeConfig, args.config, overrides)
    key = api_key_from_env(cfg.api_key_env, args.config) if cfg.api_key_env else None
    address = check_listen(cfg.host, cfg.port)
    if key is None and not ipaddress.ip_address(address).is_loopback:
        print(f"warning: serve-rm listens on {cfg.host} (beyond this machine) without an API key: anyone who can "
              f"reach port {cfg.port} can use the reward model; set api_key_env", file=sys.stderr, flush=True)
    check_reward_source(cfg.reward_model, f"reward model '{cfg.reward_model.name}'")
    rm = load_reward_model(cfg.reward_model, device=resolve_device(cfg.device), dtype=cfg.dtype)
    try:
        print(f"serving reward model '{rm.name}': POST /get_reward, /score, /v1/score; GET /health", flush=True)
        app = build_app(rm, max_body_mb=cfg.max_body_mb, api_key=key)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info")
    finally:
        rm.close()
    return 0


def check_listen(host: str, port: int) -> str:
    """Fail with one line, before any weights load, when (host, port) cannot be listened on (a port in use).

    Returns:
        The IP address `host` resolves to (`127.0.0.1` for `localhost`), to tell loopback from the network.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # the family uvicorn binds with
    try:
        addr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0][4]
    except socket.gaierror as e:
        raise UserError(f"host '{host}': {e.strerror}") from None
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
        try:
            s.bind(addr)
        except OSError as e:
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return str(addr[0]).split("%")[0]  # an IPv6 scope (fe80::1%eth0) is not part of the address
