"""``trackwire conformance``: list the cases, judge a server, judge a client.

The ``trackwire`` command line mounts these with :func:`add_subcommands` and runs them with
:func:`run`; both work on any :mod:`argparse` parser, so other tools can embed them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, TextIO

from ._catalogue import PROTOCOLS, select
from ._probes import ProbeOptions
from ._probes_client import CLOSE_SIGNAL
from ._report import Report, render_json, render_junit, render_text
from ._runner import DEFAULT_TIMEOUT, probed_cases, run_client_cases, run_server_cases

__all__ = ["add_subcommands", "run"]

_DEFAULTS = ProbeOptions()


def add_subcommands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``conformance`` (with ``list``, ``server`` and ``client``) to ``subparsers`` (what
    ``parser.add_subparsers()`` returned); returns the ``conformance`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "conformance",
        help="judge a server or a client against the protocol specifications",
        description="Judge any server or client of the Atmosphere, iTrack or FleetFreedom "
        "protocols against the case catalogue (every MUST and SHOULD of the specs).",
    )
    commands = parser.add_subparsers(dest="conformance_command", required=True)

    listing = commands.add_parser("list", help="list the cases")
    listing.add_argument("--protocol", choices=PROTOCOLS)
    listing.add_argument("--role", choices=("server", "client"))
    listing.add_argument("--cases", metavar="GLOB", help="only ids matching this glob")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--protocol", choices=PROTOCOLS, required=True)
        p.add_argument("--cases", metavar="GLOB", help="only ids matching this glob")
        p.add_argument("--strict", action="store_true", help="failed SHOULD cases fail the run too")
        p.add_argument("--json", metavar="FILE", help="write the JSON report here")
        p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report here")
        p.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            metavar="S",
            help=f"seconds one probe may take (default {DEFAULT_TIMEOUT:g})",
        )
        p.add_argument(
            "--reply-wait",
            type=float,
            default=_DEFAULTS.reply_wait,
            metavar="S",
            help="seconds to wait for an answer the subject must send",
        )
        p.add_argument(
            "--settle",
            type=float,
            default=_DEFAULTS.settle,
            metavar="S",
            help="seconds to watch for frames the subject must not send",
        )
        p.add_argument(
            "--slow",
            action="store_true",
            help="also run the cases that wait minutes (idle heartbeats, 5-minute keep-alives)",
        )
        p.add_argument("-v", "--verbose", action="store_true", help="details of every case")

    server = commands.add_parser(
        "server",
        help="judge a server (the kit is the client)",
        description="URL: the Atmosphere endpoint (atmosphere), the API base URL such as "
        "https://api.example/v2/ (itrack), or the WebSocket endpoint (fleetfreedom).",
    )
    server.add_argument("url")
    common(server)
    server.add_argument("--login", help="iTrack user/auth login")
    server.add_argument("--username", help="FleetFreedom login username")
    server.add_argument("--password", help="the password of --login or --username")
    server.add_argument("--second-login", help="iTrack login of another tenant (isolation cases)")
    server.add_argument(
        "--second-username", help="FleetFreedom user of another company (isolation cases)"
    )
    server.add_argument("--second-password", help="the password of the second account")
    server.add_argument(
        "--operator",
        metavar="MODULE:NAME",
        help="a callable (or object) giving the server's Operator, for the cases that need "
        "one (block a tracker, end a session); see trackwire.conformance.Operator",
    )
    server.add_argument(
        "--push-wait",
        type=float,
        default=_DEFAULTS.push_wait,
        metavar="S",
        help="seconds to wait for the server's own pushes",
    )
    server.add_argument(
        "--idle-wait",
        type=float,
        default=_DEFAULTS.idle_wait,
        metavar="S",
        help="seconds to wait for an idle server heartbeat (default 65, which needs --slow; "
        "a little more than the server's interval)",
    )

    client = commands.add_parser(
        "client",
        help="judge a client (the kit serves scripted scenarios)",
        description="Serve scripted scenarios and judge the clients that connect.  Start a "
        "fresh client whenever the previous one stopped or was refused (HTTP 410), with "
        "reconnects on, until the report is printed.  A client that ends its session when "
        f"it receives {CLOSE_SIGNAL!r} lets the kit judge its close.",
    )
    common(client)
    client.add_argument("--host", default="127.0.0.1")
    client.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    client.add_argument(
        "--client-wait",
        type=float,
        default=_DEFAULTS.client_wait,
        metavar="S",
        help="seconds to wait for a client to connect for each scenario",
    )
    client.add_argument(
        "--reconnect-wait",
        type=float,
        default=_DEFAULTS.reconnect_wait,
        metavar="S",
        help="seconds to wait for a dropped client to reconnect",
    )
    client.add_argument(
        "--heartbeat-ms",
        type=int,
        default=_DEFAULTS.heartbeat_ms,
        help="client heartbeat interval the kit announces",
    )
    client.add_argument(
        "--keepalive",
        type=float,
        default=_DEFAULTS.keepalive,
        metavar="S",
        help="the FleetFreedom client's noop interval, when it is configurable (default 300)",
    )
    client.add_argument(
        "--inactivity-timeout",
        type=float,
        default=_DEFAULTS.inactivity_timeout,
        metavar="S",
        help="the Atmosphere client's inactivity timeout, when it is configurable (default 300)",
    )
    client.add_argument(
        "--time-limit", type=float, metavar="S", help="stop the whole run after S seconds"
    )
    return parser


def load_operator(spec: str | None) -> Any:
    """The :class:`~trackwire.conformance.Operator` named ``MODULE:NAME`` (called when it is
    a class or function), or ``None``."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"--operator {spec!r}: expected MODULE:NAME")
    found = getattr(importlib.import_module(module), name)
    return found() if callable(found) else found


def _list(args: argparse.Namespace, out: TextIO) -> int:
    server = probed_cases("server")
    client = probed_cases("client")
    for case in select(args.protocol, args.role, args.cases):
        probed = [name for name, ids in (("server", server), ("client", client)) if case.id in ids]
        mark = "+".join(probed) or "-"
        print(
            f"{case.id:<60} {case.level.value:<6} {case.role:<6} {case.section:<3} "
            f"probe:{mark:<13} {case.description}",
            file=out,
        )
    return 0


def _options(args: argparse.Namespace) -> ProbeOptions:
    values: dict[str, Any] = {
        "reply_wait": args.reply_wait,
        "settle": args.settle,
        "slow": args.slow,
    }
    for name in (
        "push_wait",
        "idle_wait",
        "client_wait",
        "reconnect_wait",
        "heartbeat_ms",
        "keepalive",
        "inactivity_timeout",
    ):
        if hasattr(args, name):
            values[name] = getattr(args, name)
    return ProbeOptions(**values)


def _emit(report: Report, args: argparse.Namespace, out: TextIO) -> int:
    out.write(render_text(report, verbose=args.verbose))
    if args.json:
        Path(args.json).write_text(render_json(report), encoding="utf-8")
    if args.junit:
        Path(args.junit).write_text(render_junit(report), encoding="utf-8")
    return report.exit_code


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run what :func:`add_subcommands` parsed; the process exit code (0: no MUST case
    failed; with ``--strict`` no SHOULD case either)."""
    stream = out or sys.stdout
    command = args.conformance_command
    if command == "list":
        return _list(args, stream)
    if command == "server":
        report = run_server_cases(
            args.url,
            args.protocol,
            cases=args.cases,
            login=args.login,
            password=args.password,
            username=args.username,
            second_login=args.second_login,
            second_username=args.second_username,
            second_password=args.second_password,
            operator=load_operator(args.operator),
            timeout=args.timeout,
            options=_options(args),
            strict=args.strict,
        )
        return _emit(report, args, stream)

    def ready(url: str) -> None:
        print(
            f"serving {args.protocol} client scenarios on {url}\n"
            "start a fresh client whenever the previous one stopped or was refused; "
            f"it should end its session on {CLOSE_SIGNAL!r}",
            file=stream,
            flush=True,
        )

    report = run_client_cases(
        args.protocol,
        host=args.host,
        port=args.port,
        cases=args.cases,
        timeout=args.timeout,
        options=_options(args),
        strict=args.strict,
        time_limit=args.time_limit,
        ready=ready,
    )
    return _emit(report, args, stream)
