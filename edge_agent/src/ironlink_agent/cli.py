# SPDX-License-Identifier: Apache-2.0
"""``ironlink-agent`` command line.

Each subcommand is registered by a function ``register_<name>(subparsers)`` listed in ``REGISTRARS``; it adds
its parser and sets ``handler`` (``Namespace -> exit code``) as a default. To add a command (``run``,
``status``, ``spool stats``, ``spool export``), write its registrar, ideally in its own module, and append it
to ``REGISTRARS``. Exit codes: 0 ok, 2 invalid config or usage (argparse's own convention), 1 runtime failure.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ironlink_agent import __version__
from ironlink_agent.config import Config, ConfigError, load_config

Handler = Callable[[argparse.Namespace], int]
SubParsers = Any  # argparse._SubParsersAction is private; registrars only call .add_parser on it
DEFAULT_CONFIG = Path("/etc/ironlink/agent.yml")
EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def add_config_argument(parser: argparse.ArgumentParser, *, positional: bool = False) -> None:
    """The config-file argument every command shares (``-c/--config``, or positional for check-config)."""
    if positional:
        parser.add_argument("config", type=Path, metavar="FILE", help="agent config (YAML)")
    else:
        parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG, help="agent config (YAML)")


def load_or_report(path: Path) -> Config | None:
    """Load a config, or print every error to stderr and return None (callers exit EXIT_CONFIG)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        exc.report(path)
        return None


def summary(config: Config) -> str:
    """One line describing a valid config."""
    i = config.identity
    mqtt = len(config.mqtt.topics) if config.mqtt else 0
    return (
        f"ok: {i.client_id}/{i.site_id}/{i.gateway_id} ({i.environment}, {i.hostname}): "
        f"{mqtt} mqtt topic map(s), {len(config.modbus)} modbus device(s), {len(config.metrics)} metric(s), "
        f"uplink {config.uplink.host}:{config.uplink.port}"
    )


def _check_config(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return EXIT_CONFIG
    print(summary(config))
    return EXIT_OK


def register_check_config(sub: SubParsers) -> None:
    """``check-config FILE``: validate without touching disk (beyond reading) or network."""
    p = sub.add_parser("check-config", help="validate a config file and print every error")
    add_config_argument(p, positional=True)
    p.set_defaults(handler=_check_config)


def _runtime_registrars() -> list[Callable[[SubParsers], None]]:
    """``run``, ``status``, ``spool`` (cli_run): they import the runtime, which check-config never needs."""
    # cli_run imports this module lazily inside its functions, so importing it here is cycle-free.
    from ironlink_agent.cli_run import REGISTRARS as runtime_registrars

    return list(runtime_registrars)


REGISTRARS: list[Callable[[SubParsers], None]] = [register_check_config, *_runtime_registrars()]


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="ironlink-agent", description="Ironlink gateway agent")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``ironlink-agent`` console script and ``python -m ironlink_agent``)."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)
