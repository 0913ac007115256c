"""The command line's arguments: the parser, its help text and every value check.

A bad value or combination is a usage error: one line on stderr (``trackwire …: error: …``)
and exit 2, before anything connects.  Options that only shape the embedded reference server
of ``watch`` sit in their own help group and are refused with ``--url``.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from trackwire.itrack import check_hash

__all__ = ["EMBEDDED_GROUP", "FleetOptions", "Parser", "build_parser", "parse"]

EMBEDDED_GROUP = "embedded server (without --url)"
"""The help group of ``watch``'s options that shape the embedded reference server."""

_FLEET_DEFAULTS = {"vehicles": 10, "rate": 1.0, "seed": 1, "heartbeat_ms": 30000, "port": 0}


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors are one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class FleetOptions:
    """What the simulated fleet of a reference server is made of (``serve``, or ``watch``
    without ``--url``)."""

    __slots__ = ("heartbeat_ms", "port", "rate", "seed", "vehicles")

    def __init__(self, args: argparse.Namespace) -> None:
        values: dict[str, Any] = {}
        for name, default in _FLEET_DEFAULTS.items():
            given = getattr(args, name, None)
            values[name] = default if given is None else given
        self.vehicles = int(values["vehicles"])
        self.rate = float(values["rate"])
        self.seed = int(values["seed"])
        self.heartbeat_ms = int(values["heartbeat_ms"])
        self.port = int(values["port"])


# -- value checks -----------------------------------------------------------------------------


def _integer(minimum: int, what: str) -> Callable[[str], int]:
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}")
        return value

    return check


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def _seconds_or_off(text: str) -> float:
    """A number of seconds, ``0`` for off."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds (0: off), not {text!r}")
    return value


def _port(text: str) -> int:
    value = _integer(0, "a port number (0-65535)")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), not {text!r}")
    return value


_positive = _integer(1, "a positive integer")


def _trackers(text: str) -> list[int] | None:
    """``all`` (``None``) or comma-separated tracker ids."""
    if text.strip().lower() == "all":
        return None
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdecimal() or int(part) < 1:
            raise argparse.ArgumentTypeError(
                f"expected all or tracker ids such as 1,2,3, not {text!r}"
            )
        ids.append(int(part))
    return ids


_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")


def _types(text: str) -> list[str]:
    types = [part.strip() for part in text.split(",")]
    if not all(_TYPE.match(t) for t in types):
        raise argparse.ArgumentTypeError(
            f"expected subscription types such as assetGeneral,assetAdvanced, not {text!r}"
        )
    return types


def _url(schemes: tuple[str, ...], example: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        split = urlsplit(text)
        if split.scheme.lower() not in schemes or not split.hostname:
            raise argparse.ArgumentTypeError(f"expected a URL such as {example}, not {text!r}")
        return text

    return check


def _hash(text: str) -> str:
    try:
        return check_hash(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- the parser -------------------------------------------------------------------------------


def _fleet_options(group: argparse._ArgumentGroup, *, heartbeat: bool) -> None:
    group.add_argument(
        "--vehicles",
        type=_positive,
        metavar="N",
        help="simulated vehicles of the demo account (default 10; the other account gets half)",
    )
    group.add_argument(
        "--rate",
        type=_positive_number,
        metavar="HZ",
        help="position updates per second per vehicle (default 1)",
    )
    group.add_argument("--seed", type=int, metavar="N", help="seed of the simulation (default 1)")
    if heartbeat:
        group.add_argument(
            "--heartbeat-ms",
            type=_integer(0, "a number of milliseconds"),
            metavar="MS",
            help="heartbeat interval asked of clients, in ms; 0: none (default 30000)",
        )


def _serve_options(parser: argparse.ArgumentParser, *, heartbeat: bool) -> None:
    """The options of ``serve itrack`` and ``serve fleetfreedom``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, metavar="N", help="port (default: a free one)")
    parser.add_argument(
        "--duration", type=_positive_number, metavar="S", help="stop after S seconds"
    )
    parser.add_argument(
        "--session-ttl",
        type=_positive_number,
        metavar="S",
        help="end every session S seconds after its login (default: sessions last)",
    )
    parser.add_argument(
        "--loop",
        choices=("trio", "asyncio"),
        default="trio",
        help="the event loop that serves (default trio; both run the same sans-IO server)",
    )
    parser.add_argument(
        "--redis",
        type=_url(("redis",), "redis://127.0.0.1:6379/0"),
        metavar="URL",
        help="share sessions, versions and pushes with the other processes on this Redis "
        "(one of them moves the fleet; trio only)",
    )
    _fleet_options(parser.add_argument_group("simulated fleet"), heartbeat=heartbeat)


def _watch_options(parser: argparse.ArgumentParser, *, heartbeat: bool) -> None:
    parser.add_argument(
        "--stall-timeout",
        type=_seconds_or_off,
        default=30.0,
        metavar="S",
        help="say so when no data came for S seconds while subscribed (default 30, 0: never)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="one JSON object per application event")
    output.add_argument(
        "--count",
        type=_positive,
        metavar="N",
        help="stop after N application events (each one --json prints: positions, responses, …)",
    )
    output.add_argument(
        "--duration", type=_positive_number, metavar="S", help="stop after S seconds"
    )
    embedded = parser.add_argument_group(EMBEDDED_GROUP)
    _fleet_options(embedded, heartbeat=heartbeat)
    embedded.add_argument("--port", type=_port, metavar="N", help="port (default: a free one)")


def build_parser() -> Parser:
    """The whole ``trackwire`` parser (``conformance`` comes from the conformance kit)."""
    from trackwire.conformance import add_subcommands as add_conformance

    parser = Parser(
        prog="trackwire",
        description="Watch a live GPS fleet over the iTrack or FleetFreedom real-time APIs, "
        "serve a reference server with a simulated fleet, or judge a peer's conformance.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    watch = commands.add_parser(
        "watch",
        help="watch a live fleet",
        description="Watch a live fleet: a table on a terminal, otherwise one line per "
        "position (or one JSON object per event) on stdout and status on stderr.",
    )
    platforms = watch.add_subparsers(dest="platform", required=True, metavar="PLATFORM")

    itrack = platforms.add_parser(
        "itrack",
        help="iTrack / Navixy (Atmosphere)",
        description="Watch an iTrack / Navixy fleet.  Without --url an embedded reference "
        "server with a simulated fleet starts on a free loopback port (login demo / demo).",
    )
    itrack.add_argument(
        "--url",
        type=_url(("http", "https"), "https://api.itrack.live/v2/"),
        metavar="BASE",
        help="API base URL, e.g. https://api.itrack.live/v2/ (needs --login and --password, "
        "or --hash)",
    )
    itrack.add_argument("--login", help="user/auth login (without --url: demo)")
    itrack.add_argument("--password", help="the password of --login")
    itrack.add_argument(
        "--hash", type=_hash, help="a session or API-key hash instead of --login/--password"
    )
    itrack.add_argument(
        "--trackers",
        type=_trackers,
        default=None,
        metavar="all|ID,…",
        help="tracker ids to watch, or all (default all)",
    )
    itrack.add_argument(
        "--batch",
        action="store_true",
        help="subscribe to state_batch (the changes of every tracker, at most once a second) "
        "instead of state (one event per change)",
    )
    itrack.add_argument(
        "--track-message-length",
        action="store_true",
        help="ask for TrackMessageSize framing (length|message)",
    )
    _watch_options(itrack, heartbeat=True)

    ff = platforms.add_parser(
        "fleetfreedom",
        help="FleetFreedom / Trak-iT",
        description="Watch a FleetFreedom / Trak-iT company's assets.  Without --url an "
        "embedded reference server with a simulated fleet starts on a free loopback port "
        "(demo@example.com / demo, company 1).",
    )
    ff.add_argument(
        "--url",
        type=_url(("ws", "wss"), "wss://socket.trakit.ca/"),
        metavar="WSURL",
        help="WebSocket URL, e.g. wss://socket.trakit.ca/ (needs --username and --password, "
        "or --ghost-id)",
    )
    ff.add_argument("--username", help="login user name (without --url: demo@example.com)")
    ff.add_argument("--password", help="the password of --username")
    ff.add_argument("--ghost-id", help="resume this session instead of logging in")
    ff.add_argument(
        "--company",
        type=_positive,
        default=1,
        metavar="ID",
        help="the company whose assets to watch (default 1)",
    )
    ff.add_argument(
        "--types",
        type=_types,
        default=["assetGeneral", "assetAdvanced"],
        metavar="T,…",
        help="subscription types (default assetGeneral,assetAdvanced)",
    )
    _watch_options(ff, heartbeat=False)

    serve = commands.add_parser(
        "serve",
        help="run a reference server with a simulated fleet",
        description="Serve a reference server with a simulated fleet until interrupted (or "
        "--duration); prints one line with its URL and demo account.",
    )
    servers = serve.add_subparsers(dest="platform", required=True, metavar="PLATFORM")
    itrack_server = servers.add_parser(
        "itrack", help="the iTrack reference server (user/auth, tracker/list, the events)"
    )
    _serve_options(itrack_server, heartbeat=True)
    _serve_options(
        servers.add_parser("fleetfreedom", help="the FleetFreedom reference server"),
        heartbeat=False,
    )

    add_conformance(commands)
    return parser


def _check_watch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The combinations of ``watch`` options that make no sense."""
    prog = f"trackwire watch {args.platform}"
    if args.platform == "itrack":
        user, user_flag, session, session_flag = args.login, "--login", args.hash, "--hash"
    else:
        user, user_flag = args.username, "--username"
        session, session_flag = args.ghost_id, "--ghost-id"
    password = args.password

    def fail(message: str) -> NoReturn:
        parser.exit(2, f"{prog}: error: {message} (see {prog} --help)\n")

    if session is not None and (user is not None or password is not None):
        fail(f"{session_flag} replaces {user_flag} and --password")
    if (user is None) != (password is None):
        fail(f"{user_flag} and --password go together")
    if args.url is None:
        if session is not None:
            fail(f"{session_flag} needs --url (the embedded server issues its own)")
    else:
        if session is None and user is None:
            fail(f"--url needs {user_flag} and --password, or {session_flag}")
        given = [name for name in _FLEET_DEFAULTS if getattr(args, name, None) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            fail(f"{flag} shapes the embedded server, which --url replaces")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the command line (``SystemExit`` 2 with one line for bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "watch":
        _check_watch(parser, args)
    elif args.command == "serve" and args.redis is not None and args.loop != "trio":
        parser.error("--redis runs under --loop trio only")
    return args
