# SPDX-License-Identifier: Apache-2.0
"""``ironlink-ingest`` command line: ``check-config FILE``, ``run --config FILE [--instance N]``,
``retire --config FILE --instance N`` (scale-down: drain and end the session),
``dead-letters --config FILE [--instance N] [--limit K] [--reason R]``.

Exit codes as the agent's: 0 ok, 2 invalid config or usage, 1 runtime failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ironlink_service.logs import register_secret, setup_logging

from ironlink_ingest import __version__
from ironlink_ingest.config import ConfigError, IngestConfig, load_config

DEFAULT_CONFIG = Path("/etc/ironlink/ingest.yml")
EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def _load(path: Path) -> IngestConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        exc.report(path)
        return None


def _check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    b = config.broker
    print(
        f"ok: broker {b.host}:{b.port} ({'tls' if b.tls else 'plain'}), share group {b.share_group}, "
        f"influxdb {config.influxdb.url}, {len(config.clients)} client(s): "
        + ", ".join(sorted(config.clients))
    )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    if args.http_port is not None:
        config = dataclasses.replace(config, http_port=args.http_port)
    for secret in config.secrets():
        register_secret(secret)
    setup_logging(config.log_level)
    from ironlink_ingest.service import Service

    try:
        service = Service(config, args.instance, retire_idle_s=getattr(args, "idle_s", None))
        return asyncio.run(service.run())
    except OSError as exc:
        print(f"ironlink-ingest: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _dead_letters(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from ironlink_ingest.deadletter import DeadLetterStore
    from ironlink_ingest.service import state_paths

    path = state_paths(config, args.instance)[1]
    if not path.exists():
        print(f"no dead-letter store at {path}", file=sys.stderr)
        return EXIT_FAILURE
    store = DeadLetterStore(path, max_bytes=config.dead_letter_max_bytes, max_payload_bytes=1024)
    try:
        letters = list(store.list(args.limit, args.reason))  # at most --limit rows
    finally:
        store.close()
    if not letters:
        # On stderr: the operator reads "nothing rejected", not silence; stdout stays JSON lines only.
        which = f" with reason {args.reason}" if args.reason is not None else ""
        print(f"no dead letters{which} in {path}", file=sys.stderr)
    for dl in letters:
        doc = {
            "id": dl.id,
            "ts_ms": dl.ts_ms,
            "reason": dl.reason,
            "detail": dl.detail,
            "topic": dl.topic,
            "payload_len": dl.payload_len,
            "payload_b64": base64.b64encode(dl.payload).decode() if args.payload else None,
        }
        print(json.dumps(doc, separators=(",", ":")))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlink-ingest", description="Ironlink cloud ingest worker")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("check-config", help="validate a config file and print every error")
    p.add_argument("config", type=Path, metavar="FILE")
    p.set_defaults(handler=_check_config)
    for name, handler, text in (
        ("run", _run, "run one ingest worker"),
        ("retire", _run, "leave the share group, drain this instance's queued messages, end its session"),
        ("dead-letters", _dead_letters, "list dead letters as JSON lines, newest first"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
        p.add_argument(
            "--instance",
            default="1",
            type=_instance,
            help="worker instance (systemd %%i): MQTT client id suffix and state subdirectory",
        )
        p.set_defaults(handler=handler)
        if name == "retire":
            p.add_argument("--idle-s", type=float, default=5.0, help="stop after this long without messages")
        if name in ("run", "retire"):
            p.add_argument(
                "--http-port",
                type=int,
                help="override health.http_port (one port per instance: the systemd unit passes it)",
            )
        if name == "dead-letters":
            p.add_argument("--limit", type=int, default=100)
            p.add_argument("--reason")
            p.add_argument("--payload", action="store_true", help="include the payload (base64)")
    return parser


def _instance(text: str) -> str:
    if not text or len(text) > 32 or not all(c.isalnum() or c in "-_" for c in text):
        raise argparse.ArgumentTypeError(f"{text!r}: use 1-32 letters, digits, '-' or '_'")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
