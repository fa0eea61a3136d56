# SPDX-License-Identifier: Apache-2.0
"""``run``, ``status`` and ``spool stats|export`` subcommands (registrars for ``cli.REGISTRARS``).

``cli`` is imported lazily inside each function: ``cli`` imports this module to build its registrar list.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _cli() -> Any:
    from ironlink_agent import cli

    return cli


def _run(args: argparse.Namespace) -> int:
    cli = _cli()
    config = cli.load_or_report(args.config)  # every config error, before any disk or network change
    if config is None:
        return int(cli.EXIT_CONFIG)
    from ironlink_service.logs import register_secret, setup_logging

    from .runtime import run_agent

    setup_logging(config.log_level)
    register_secret(config.uplink.password)
    if config.mqtt is not None:
        register_secret(config.mqtt.password)
    return run_agent(config)


def register_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run the agent (foreground; systemd Type=notify)")
    _cli().add_config_argument(p)
    p.set_defaults(handler=_run)


def _status(args: argparse.Namespace) -> int:
    from .status import fetch_health, read_health_file, summarize

    cli = _cli()
    url, health_file = args.url, args.file
    if url is None and health_file is None:
        config = cli.load_or_report(args.config)
        if config is None:
            return int(cli.EXIT_CONFIG)
        health_file = config.health.health_file
        url = f"http://{config.health.http_host}:{config.health.http_port}/health"
    doc = None
    errors = []
    if health_file is not None and Path(health_file).exists() and not args.url:
        try:
            doc = read_health_file(Path(health_file))
        except (OSError, ValueError) as exc:
            errors.append(f"{health_file}: {exc}")
    if (doc is None or "stale_s" in doc) and url:
        try:
            doc = fetch_health(url)
        except (OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
    if doc is None:
        print("agent status unknown: " + "; ".join(errors or ["no health file or URL"]), file=sys.stderr)
        return 3
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else summarize(doc))
    return 0 if doc.get("status") in ("ok", "degraded") and "stale_s" not in doc else 1


def register_status(sub: Any) -> None:
    p = sub.add_parser("status", help="summarise the running agent's health (exit 1 unhealthy, 3 unknown)")
    _cli().add_config_argument(p)
    p.add_argument("--url", help="query this /health URL instead of the config's")
    p.add_argument("--file", type=Path, help="read this health file instead of the config's")
    p.add_argument("--json", action="store_true", help="print the raw health document")
    p.set_defaults(handler=_status)


def _spool_path(args: argparse.Namespace) -> Path | None:
    if args.path is not None:
        return Path(args.path)
    config = _cli().load_or_report(args.config)
    return None if config is None else Path(config.spool.path)


def _spool_stats(args: argparse.Namespace) -> int:
    from .spool import SpoolError
    from .status import spool_stats

    path = _spool_path(args)
    if path is None:
        return int(_cli().EXIT_CONFIG)
    try:
        print(json.dumps(spool_stats(path), indent=2))
    except (SpoolError, OSError) as exc:
        print(f"spool stats: {exc}", file=sys.stderr)
        return 1
    return 0


def _spool_export(args: argparse.Namespace) -> int:
    import sqlite3

    from .spool import SpoolError
    from .status import export

    path = _spool_path(args)
    if path is None:
        return int(_cli().EXIT_CONFIG)
    try:
        export(path, args.what, sys.stdout, args.limit)
    except (SpoolError, OSError, sqlite3.Error) as exc:
        print(f"spool export: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `| head`
        return 0
    return 0


def register_spool(sub: Any) -> None:
    p = sub.add_parser("spool", help="inspect the spool (read-only, safe while the agent runs)")
    spool_sub = p.add_subparsers(dest="spool_command", required=True, metavar="SPOOL_COMMAND")
    for name, handler, help_text in (
        ("stats", _spool_stats, "depth, bytes, seq range, dead letters, file sizes (JSON)"),
        ("export", _spool_export, "readings and/or dead letters as JSON lines on stdout"),
    ):
        sp = spool_sub.add_parser(name, help=help_text)
        _cli().add_config_argument(sp)
        sp.add_argument("--path", type=Path, help="spool database (default: spool.path from the config)")
        if name == "export":
            sp.add_argument("--what", choices=("readings", "dead-letters", "all"), default="all")
            sp.add_argument("--limit", type=int, default=None)
        sp.set_defaults(handler=handler)


REGISTRARS = [register_run, register_status, register_spool]
