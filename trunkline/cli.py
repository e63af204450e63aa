"""``trunkline`` command line: serve, migrate and the admin commands.

The admin commands print exactly what they made, one value on the last line of
stdout, so operators can capture it (``ORG=$(trunkline org create --name x)``);
the ``list`` commands and ``calls tail`` print tab-separated tables with a header.
Start-up failures an operator can fix (a bad setting, a port in use, an
unreachable database, a bad secret key) are one ``trunkline: error: …`` line on
stderr and exit code 2; a refused admin command exits 1.
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
from trunkline.crypto import MasterKeyError
from trunkline.data_dir import private_umask
from trunkline.logs import configure_logging
from trunkline.storage import DatabaseUnavailable

STARTUP_FAILED = 2


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with settings [$TRUNKLINE_CONFIG]")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="data directory [$TRUNKLINE_DATA_DIR, else data_dir in the settings file,"
        " else $XDG_DATA_HOME/trunkline, else ~/.local/share/trunkline]",
    )


def _add_org_filter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", help="only this organisation's (default: every organisation)")


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
    org_list = org_commands.add_parser("list", help="list organisations: id, name, created")
    _add_common(org_list)

    identity = commands.add_parser("identity", help="agent identities")
    identity_commands = identity.add_subparsers(dest="action", required=True, metavar="ACTION")
    identity_create = identity_commands.add_parser("create", help="create an agent identity")
    _add_common(identity_create)
    identity_create.add_argument("--org", required=True, help="organisation id")
    identity_create.add_argument("--handle", required=True, help="agent handle (leading @ dropped)")
    identity_create.add_argument("--display-name")
    identity_list = identity_commands.add_parser(
        "list", help="list agent identities: id, organisation, handle, display name, created"
    )
    _add_common(identity_list)
    _add_org_filter(identity_list)
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

    number = commands.add_parser("number", help="phone numbers")
    number_commands = number.add_subparsers(dest="action", required=True, metavar="ACTION")
    number_list = number_commands.add_parser(
        "list",
        help="list numbers: id, organisation, number, type, status, agent, action, provider,"
        " trunk (never a password)",
    )
    _add_common(number_list)
    _add_org_filter(number_list)

    calls = commands.add_parser("calls", help="calls")
    calls_commands = calls.add_subparsers(dest="action", required=True, metavar="ACTION")
    calls_tail = calls_commands.add_parser(
        "tail",
        help="the latest calls from the database; --follow prints each change until Ctrl-C",
    )
    _add_common(calls_tail)
    _add_org_filter(calls_tail)
    calls_tail.add_argument("-f", "--follow", action="store_true", help="keep printing changes")
    calls_tail.add_argument(
        "-n", "--lines", type=int, default=20, help="recent calls printed first [20]"
    )
    calls_tail.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls with --follow [1]"
    )
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


def _startup_failed(message: object) -> int:
    print(f"trunkline: error: {message}", file=sys.stderr)
    return STARTUP_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings_from(args)
    except ConfigError as exc:
        return _startup_failed(exc)
    configure_logging(settings.process.log_level, settings.process.log_format)
    private_umask()  # what this process writes into the data directory is the user's only
    from trunkline.daemon import StartupError

    try:
        return _run(settings, args)
    except (StartupError, DatabaseUnavailable, MasterKeyError) as exc:
        return _startup_failed(exc)


def _run(settings: Settings, args: argparse.Namespace) -> int:
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
        elif (args.command, getattr(args, "action", None)) == ("calls", "tail"):
            return asyncio.run(admin.tail_calls(settings, args, _print_now))
        else:
            output = asyncio.run(admin.run_command(settings, args))
    except admin.AdminError as exc:
        print(f"trunkline: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C ends calls tail --follow
        return 0
    for line in output:
        print(line)
    return 0


def _print_now(line: str) -> None:
    print(line, flush=True)
