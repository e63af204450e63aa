"""``trunkline`` command line: serve, migrate and the admin commands.

The admin commands print exactly what they made, one value on the last line of
stdout, so operators can capture it (``ORG=$(trunkline org create --name x)``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trunkline import __version__
from trunkline.config import ConfigError, Settings, describe_settings, load_settings
from trunkline.data_dir import private_umask
from trunkline.logs import configure_logging


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with settings")
    parser.add_argument("--data-dir", type=Path, help="data directory [./trunkline-data]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trunkline",
        description="Self-hosted telephony gateway for AI agents.",
        epilog=describe_settings(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trunkline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the gateway daemon",
        epilog=describe_settings(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(serve)
    serve.add_argument("--host", help="HTTP listen address [0.0.0.0]")
    serve.add_argument("--port", type=int, help="HTTP port [8080]")
    serve.add_argument("--sip-port", type=int, help="SIP UDP port [5060]")
    serve.add_argument("--workers", type=int, help="event-loop processes [1]")
    serve.add_argument(
        "--dev",
        action="store_const",
        const=True,
        help="development mode: allow ws:// and private/loopback agent URLs (TRUNKLINE_DEV)",
    )

    migrate = commands.add_parser("migrate", help="apply database schema migrations")
    _add_common(migrate)

    org = commands.add_parser("org", help="organisations")
    org_commands = org.add_subparsers(dest="action", required=True, metavar="ACTION")
    org_create = org_commands.add_parser("create", help="create an organisation, print its id")
    _add_common(org_create)
    org_create.add_argument("--name", required=True)

    identity = commands.add_parser("identity", help="agent identities")
    identity_commands = identity.add_subparsers(dest="action", required=True, metavar="ACTION")
    identity_create = identity_commands.add_parser("create", help="create an agent identity")
    _add_common(identity_create)
    identity_create.add_argument("--org", required=True, help="organisation id")
    identity_create.add_argument("--handle", required=True, help="agent handle (leading @ dropped)")
    identity_create.add_argument("--display-name")
    signing = identity_commands.add_parser(
        "signing-key", help="create (or --rotate) the identity's webhook signing key, print it once"
    )
    _add_common(signing)
    signing.add_argument("--identity", required=True, help="agent identity id")
    signing.add_argument("--rotate", action="store_true", help="replace an existing key")

    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    token_create = token_commands.add_parser("create", help="create an API token, print it once")
    _add_common(token_create)
    token_create.add_argument("--org", required=True, help="organisation id")
    token_create.add_argument("--identity", help="scope the token to one agent identity")
    expiry = token_create.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in", help="lifetime: seconds, or a number with s, m, h or d (e.g. 90d)"
    )
    expiry.add_argument(
        "--expires-at", help="expiry as ISO 8601 with a UTC offset (2027-01-31T00:00:00+00:00)"
    )
    token_list = token_commands.add_parser(
        "list", help="list tokens: id, display prefix, scope, expiry, status (never the token)"
    )
    _add_common(token_list)
    token_list.add_argument("--org", help="only this organisation's tokens")
    token_revoke = token_commands.add_parser(
        "revoke", help="revoke a token by id or display prefix; refused from the next request"
    )
    _add_common(token_revoke)
    token_revoke.add_argument("token", metavar="ID_OR_PREFIX", help="token id or display prefix")
    _add_first_call_commands(commands)
    return parser


def _add_first_call_commands(commands: Any) -> None:
    """``call`` (a test caller) and ``quickstart`` (a number pointed at an example agent)."""
    from trunkline.testcall.command import add_arguments

    call = commands.add_parser(
        "call", help="place a test call over SIP/RTP from loopback and print what happened"
    )
    call.add_argument("--config", type=Path, help="TOML file with settings (for the SIP port)")
    add_arguments(call)

    from trunkline import quickstart

    demo = commands.add_parser(
        "quickstart",
        help="create an organisation, identity, token and a number for the example agent",
    )
    _add_common(demo)
    quickstart.add_arguments(demo)


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {"data_dir": getattr(args, "data_dir", None)}
    if args.command == "serve":
        overrides.update(
            host=args.host,
            http_port=args.port,
            sip_port=args.sip_port,
            workers=args.workers,
            dev=args.dev,
        )
    return load_settings(config_file=args.config, overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings_from(args)
    except ConfigError as exc:
        print(f"trunkline: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.process.log_level, settings.process.log_format)
    private_umask()  # what this process writes into the data directory is the user's only
    if args.command == "call":
        from trunkline.testcall.command import run

        return run(args, settings)
    if args.command == "serve":
        if settings.process.workers > 1:
            from trunkline.supervisor import supervise

            return supervise(settings)
        from trunkline import daemon

        return daemon.run(settings)
    from trunkline import admin

    try:
        if args.command == "quickstart":
            from trunkline import quickstart

            output = asyncio.run(quickstart.run(settings, args))
        else:
            output = asyncio.run(admin.run_command(settings, args))
    except admin.AdminError as exc:
        print(f"trunkline: {exc}", file=sys.stderr)
        return 1
    for line in output:
        print(line)
    return 0
