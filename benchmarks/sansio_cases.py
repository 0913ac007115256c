"""The sans-IO cases (1-5) and the per-connection memory of idle server stacks (7, first part).

Every builder returns a :class:`~run.Case` whose ``ours`` and baselines handle the same
messages; each checks once, before timing, that ``ours`` really produced the typed events.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

from payloads import ASSET_ADVANCED, ASSET_LINE, STATE_EVENT, asset_line
from run import Baseline, Body, Case, Item, Result, Settings, Target, at_most, result, timed
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto.connection import Connection, ConnectionType
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.handshake import H11Handshake

try:  # a baseline and a hook when installed (pip install orjson), skipped otherwise
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None

try:  # the fast decoder and its baselines (pip install 'trackwire[fast]'), skipped otherwise
    import msgspec
except ImportError:  # pragma: no cover - depends on the environment
    msgspec = None

from trackwire import set_decoder, set_json_loads
from trackwire.atmosphere import AtmosphereClient, Message, encode_message
from trackwire.fleetfreedom import (
    Account,
    FleetFreedomClient,
    FleetFreedomHub,
    Merged,
    ObjectCache,
)
from trackwire.itrack import (
    Directory,
    ITrackClient,
    ITrackServer,
    SourceState,
    StateEvent,
    StatePush,
)
from trackwire.ws import ClientStack, Connected, ServerStack, UpgradeRequest

BATCH = 200
"""Messages per call of a body (enough to make the call overhead vanish)."""
HASH = "0123456789abcdef0123456789abcdef"
HANDSHAKE = "b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|"
URL = "http://127.0.0.1/v2/event/subscription"
JSON_TARGET = at_most(1.15)
LAYOUT_TARGET = {"1": JSON_TARGET, "20": at_most(1.10), "3": at_most(1.30)}
"""Issue 13's targets: 20 messages per frame and one message over 3 frames."""
SAME_PATH_TARGET = at_most(1.10)
"""Against the same code on its usual input: what a variant may cost more."""
STATE_EVENT_TEXT = STATE_EVENT.replace('"active"', '"activé"')
"""The state event with one non-ASCII character (its status, as a localised server says)."""
ORJSON_TARGET = at_most(1.5)
STACK_TARGET = at_most(1.10)
TYPED_TARGET = at_most(2.0)
"""The fast decoder: at most 2 × msgspec's own typed decode of the payload."""
FAST_STACK_TARGET = at_most(0.30)
"""The whole stack on the fast decoder: at most 0.30 × (websockets sans-IO + json.loads)."""

loads = json.loads
scan_once = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

STATE_OBJ: dict[str, Any] = json.loads(STATE_EVENT)
TRACKER = 10284


def _json_loads(payloads: list[str], target: Target = JSON_TARGET) -> Baseline:
    def body() -> None:
        for payload in payloads:
            loads(payload)

    return Baseline("json.loads", body, target)


def _orjson_loads(payloads: list[str]) -> Baseline:
    oloads = orjson.loads

    def body() -> None:
        for payload in payloads:
            oloads(payload)

    return Baseline("orjson.loads", body, ORJSON_TARGET)


def _scanner(payloads: list[str]) -> Baseline:
    """The stdlib C scanner called directly: json.loads without its Python wrappers."""

    def body() -> None:
        for payload in payloads:
            scan_once(payload, 0)

    return Baseline("json C scanner bare", body)


def _naive(frames: list[str], sep: str) -> Baseline:
    """A naive parser: ``frame.partition(sep)`` + json.loads of what follows."""

    def body() -> None:
        for frame in frames:
            loads(frame.partition(sep)[2])

    return Baseline(f"naive partition({sep!r}) + json.loads", body)


def _with_hook(hook: Callable[[str], Any] | None, body: Callable[[], None]) -> Callable[[], None]:
    """Run ``body`` with the JSON hook swapped (per call of 200 messages: the swap is noise)."""
    if hook is None:
        return body

    def swapped() -> None:
        set_json_loads(hook)
        try:
            body()
        finally:
            set_json_loads(None)

    return swapped


def _with_decoder(fast: bool, body: Callable[[], None]) -> Callable[[], None]:
    """Run ``body`` on the fast decoder (every other case runs on the default one)."""
    if not fast:
        return body

    def swapped() -> None:
        set_decoder("fast")
        try:
            body()
        finally:
            set_decoder("default")

    return swapped


def _typed_decoders() -> tuple[Callable[[str], Any], Callable[[str], Any]]:
    """msgspec's compiled decoders of the two payloads into Structs of every field they
    hold: the floor a typed decoder can reach (``trackwire[fast]``'s cases' baseline)."""
    import _typed

    state = msgspec.json.Decoder(_typed.StateMessage).decode
    asset = msgspec.json.Decoder(_typed.AssetAdvanced).decode
    assert state(STATE_EVENT).data.gps.location.lat == STATE_OBJ["data"]["gps"]["location"]["lat"]
    assert asset(ASSET_LINE.partition(" ")[2]).position.speed == 42.5
    return state, asset


def _typed(decode: Callable[[str], Any], payloads: list[str], what: str) -> Baseline:
    def body() -> None:
        for payload in payloads:
            decode(payload)

    return Baseline(f"msgspec typed decode ({what})", body, TYPED_TARGET)


def _frames(track: bool, layout: str, payload: str = STATE_EVENT) -> list[str]:
    """``BATCH`` state messages as frames: one per frame, 20 per frame or one over 3."""
    message = encode_message(payload) if track else payload
    if layout == "1":
        return [message] * BATCH
    if layout == "20":
        return [message * 20] * (BATCH // 20)
    third = len(message) // 3
    return [message[:third], message[third : 2 * third], message[2 * third :]] * BATCH


_LAYOUT = {"1": "1 msg/frame", "20": "20 msgs/frame", "3": "1 msg over 3 frames"}


# -- 1. the Atmosphere client -----------------------------------------------------------------


def _atmosphere(track: bool) -> AtmosphereClient:
    client = AtmosphereClient(URL, track_message_length=track, inactivity_timeout=0)
    client.connection_made(0.0)
    client.receive(encode_message(HANDSHAKE) if track else HANDSHAKE, 0.0)
    client.events()
    return client


def _atmosphere_body(
    frames: list[str], track: bool, decode: Callable[[str], Any] | None
) -> Callable[[], None]:
    client = _atmosphere(track)
    receive = client.receive
    events = client.events

    if decode is None:

        def body() -> None:
            for frame in frames:
                receive(frame, 1.0)
            events()

    else:

        def body() -> None:
            for frame in frames:
                receive(frame, 1.0)
            for event in events():
                if type(event) is Message:
                    decode(event.data)

    receive(frames[0], 1.0)
    for frame in frames[1:]:
        receive(frame, 1.0)
    produced = events()
    assert len(produced) == BATCH, len(produced)
    assert all(type(e) is Message for e in produced), produced[:2]
    return body


def atmosphere_case(
    track: bool, layout: str, orjson_hook: bool = False, non_ascii: bool = False
) -> Item:
    tms = "on" if track else "off"
    decoder = "orjson.loads" if orjson_hook else "json.loads"
    text = ", non-ASCII" if non_ascii else ""
    name = f"1 atmosphere client + {decoder}: {_LAYOUT[layout]}{text}, TMS {tms}"

    def build() -> Case:
        payload = STATE_EVENT_TEXT if non_ascii else STATE_EVENT
        frames = _frames(track, layout, payload)
        payloads = [payload] * BATCH
        ours = _atmosphere_body(frames, track, orjson.loads if orjson_hook else loads)
        if orjson_hook:
            baselines = [_orjson_loads(payloads)]
        else:
            baselines = [_json_loads(payloads, LAYOUT_TARGET[layout])]
            if non_ascii:
                # The same client on the ASCII payload (information: json.loads itself takes
                # a little longer on non-ASCII text; the target is the json.loads one).
                ascii_body = _atmosphere_body(_frames(track, layout), track, loads)
                baselines.append(Baseline("same client, ASCII text", ascii_body))
            elif track and layout == "1":
                baselines.append(_naive(frames, "|"))
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


def atmosphere_alone(non_ascii: bool = False) -> Item:
    text = ", non-ASCII" if non_ascii else ""
    name = f"1 atmosphere client alone (no JSON): 1 msg/frame{text}, TMS on"

    def build() -> Case:
        payload = STATE_EVENT_TEXT if non_ascii else STATE_EVENT
        ours = _atmosphere_body(_frames(True, "1", payload), True, None)
        baselines = [_json_loads([payload] * BATCH)]
        if non_ascii:
            ascii_body = _atmosphere_body(_frames(True, "1"), True, None)
            baselines.append(Baseline("same client alone, ASCII text", ascii_body))
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


# -- 2. the iTrack client ---------------------------------------------------------------------


def _itrack(track: bool) -> ITrackClient:
    transport = AtmosphereClient(URL, track_message_length=track, inactivity_timeout=0)
    client = ITrackClient(URL, HASH, transport=transport)
    client.connection_made(0.0)
    client.receive(encode_message(HANDSHAKE) if track else HANDSHAKE, 0.0)
    client.events()
    return client


def _itrack_body(frames: list[str], track: bool, fast: bool = False) -> Callable[[], None]:
    client = _itrack(track)
    receive = client.receive
    events = client.events

    def body() -> None:
        for frame in frames:
            receive(frame, 1.0)
        events()

    def run() -> list[Any]:
        for frame in frames:
            receive(frame, 1.0)
        return events()

    produced = _with_result(fast, run)
    assert len(produced) == BATCH, len(produced)
    if fast:  # the fast decoder's events are subclasses (raw decoded on demand)
        assert all(isinstance(e, StateEvent) and type(e) is not StateEvent for e in produced)
    else:
        assert all(type(e) is StateEvent for e in produced), produced[:2]
    return _with_decoder(fast, body)


def _with_result(fast: bool, run: Callable[[], Any]) -> Any:
    """``run()`` once on the chosen decoder (for the checks before timing)."""
    set_decoder("fast" if fast else "default")
    try:
        return run()
    finally:
        set_decoder("default")


def itrack_fast_case(track: bool) -> Item:
    tms = "on" if track else "off"
    name = f"2 itrack client -> StateEvent: 1 msg/frame, TMS {tms}, fast decoder"

    def build() -> Case:
        frames = _frames(track, "1")
        payloads = [STATE_EVENT] * BATCH
        state, _asset = _typed_decoders()
        ours = _itrack_body(frames, track, fast=True)
        baselines = [
            _typed(state, payloads, "Structs of every field"),
            Baseline("json.loads", _json_loads(payloads).body),
            Baseline("same client, default decoder", _itrack_body(frames, track)),
        ]
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


def itrack_case(track: bool, layout: str, orjson_hook: bool = False) -> Item:
    tms = "on" if track else "off"
    hook = ", orjson hook" if orjson_hook else ""
    name = f"2 itrack client -> StateEvent: {_LAYOUT[layout]}, TMS {tms}{hook}"

    def build() -> Case:
        frames = _frames(track, layout)
        payloads = [STATE_EVENT] * BATCH
        ours = _itrack_body(frames, track)
        if orjson_hook:
            default = ours
            ours = _with_hook(orjson.loads, default)
            baselines = [
                _orjson_loads(payloads),
                Baseline("same client, default (stdlib) hook", default),
            ]
        else:
            baselines = [_json_loads(payloads, LAYOUT_TARGET[layout])]
            if layout == "1":
                baselines.append(_scanner(payloads))
                if track:
                    baselines.append(_naive(frames, "|"))
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


# -- 3. the FleetFreedom client ---------------------------------------------------------------


def _fleetfreedom() -> FleetFreedomClient:
    client = FleetFreedomClient("ws://127.0.0.1/", keepalive=0, command_timeout=0)
    client.connection_made(0.0)
    client.receive(
        'connectionResponse {"errorCode":0,"ghostId":"g","user":{"login":"u","company":1}}', 0.0
    )
    client.events()
    return client


def _asset_lines() -> list[str]:
    """``BATCH`` pieces: 10 assets, 20 increasing versions each (every one applies)."""
    return [asset_line(5000 + n % 10, 1 + n // 10) for n in range(BATCH)]


def _fleetfreedom_body(lines: list[str], cache: bool, fast: bool = False) -> Callable[[], None]:
    client = _fleetfreedom()
    receive = client.receive
    events = client.events

    if cache:

        def body() -> None:
            apply = ObjectCache().apply
            for line in lines:
                receive(line, 1.0)
            for event in events():
                apply(event)

    else:

        def body() -> None:
            for line in lines:
                receive(line, 1.0)
            events()

    def run() -> list[Any]:
        for line in lines:
            receive(line, 1.0)
        return events()

    produced = _with_result(fast, run)
    assert len(produced) == BATCH, len(produced)
    assert all(type(e) is Merged for e in produced), produced[:2]
    if cache:
        store = ObjectCache()
        assert all(store.apply(e) for e in produced), "every piece must be newer"

    return _with_decoder(fast, body)


def fleetfreedom_fast_case(cache: bool) -> Item:
    via = " + ObjectCache.apply" if cache else ""
    name = f"3 fleetfreedom client -> Merged{via}: ~400-byte lines, fast decoder"

    def build() -> Case:
        lines = _asset_lines() if cache else [ASSET_LINE] * BATCH
        bodies = [line.partition(" ")[2] for line in lines]
        _state, asset = _typed_decoders()
        untyped = msgspec.json.Decoder().decode

        def msgspec_dicts() -> None:
            for body in bodies:
                untyped(body)

        ours = _fleetfreedom_body(lines, cache, fast=True)
        baselines = [
            _typed(asset, bodies, "Structs of every field"),
            Baseline("msgspec decode into dicts", msgspec_dicts),
            Baseline("json.loads", _json_loads(bodies).body),
            Baseline("same client, default decoder", _fleetfreedom_body(lines, cache)),
        ]
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


def fleetfreedom_case(cache: bool, orjson_hook: bool = False) -> Item:
    via = " + ObjectCache.apply" if cache else ""
    hook = ", orjson hook" if orjson_hook else ""
    name = f"3 fleetfreedom client -> Merged{via}: ~400-byte lines{hook}"

    def build() -> Case:
        lines = _asset_lines() if cache else [ASSET_LINE] * BATCH
        bodies = [line.partition(" ")[2] for line in lines]
        ours = _fleetfreedom_body(lines, cache)
        if orjson_hook:
            default = ours
            ours = _with_hook(orjson.loads, default)
            baselines = [
                _orjson_loads(bodies),
                Baseline("same client, default (stdlib) hook", default),
            ]
        else:
            baselines = [_json_loads(bodies)]
            if cache:
                baselines.append(Baseline("client alone", _fleetfreedom_body(lines, False)))
            else:
                baselines.append(_naive(lines, " "))
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


# -- 4. the server side: emitting -------------------------------------------------------------


def _dumps_times(payload: object, copies: int) -> Callable[[], None]:
    dumps = json.dumps

    def body() -> None:
        for _ in range(copies):
            dumps(payload, separators=(",", ":"))

    return body


def _dumps_wsproto_times(payload: object, copies: int) -> Callable[[], None]:
    """The bare minimum of a WebSocket server: encode, then frame with wsproto, per copy."""
    dumps = json.dumps
    send = Connection(ConnectionType.SERVER).send

    def body() -> None:
        for _ in range(copies):
            send(TextMessage(dumps(payload, separators=(",", ":"))))

    return body


def _upgrade_bytes(target: str) -> bytes:
    """A client's WebSocket upgrade request for ``target``."""
    return H11Handshake(ConnectionType.CLIENT).send(Request(host="127.0.0.1", target=target))


def _itrack_directory() -> Directory:
    directory = Directory()
    directory.add_user("demo", "demo")
    directory.add_api_key("demo", HASH)
    directory.add_tracker("demo", TRACKER, source_id=TRACKER)
    return directory


_SUBSCRIBE = json.dumps(
    {"action": "subscribe", "hash": HASH, "requests": [{"type": "state", "trackers": [TRACKER]}]}
)
_TMS_TARGET = "/v2/event/subscription?X-Atmosphere-tracking-id=0&X-Atmosphere-Framework=3.1.3-javascript&X-Atmosphere-Transport=websocket&X-Atmosphere-TrackMessageSize=true&X-atmo-protocol=true"  # noqa: E501


def _itrack_servers(count: int, directory: Directory) -> list[ITrackServer]:
    cores = []
    for _ in range(count):
        core = ITrackServer(_TMS_TARGET, directory)
        core.connection_made(0.0)
        core.receive(_SUBSCRIBE, 0.0)
        core.events()
        core.data_to_send()
        assert core.subscribed
        cores.append(core)
    return cores


def _itrack_server_stacks(count: int, directory: Directory) -> list[ServerStack[ITrackServer]]:
    request = _upgrade_bytes(_TMS_TARGET)
    frames = Connection(ConnectionType.CLIENT).send(TextMessage(_SUBSCRIBE))
    stacks = []
    for _ in range(count):
        stack: ServerStack[ITrackServer] = ServerStack(
            lambda up: ITrackServer(up.target, directory)
        )
        stack.connection_made(0.0)
        stack.receive(request, 0.0)
        stack.receive(frames, 0.0)
        stack.events()
        stack.data_to_send()
        assert stack.core.subscribed
        stacks.append(stack)
    return stacks


def itrack_emit_case(subscribers: int, stack: bool, shared: bool = False) -> Item:
    through = " + ServerStack -> bytes" if stack else ""
    how = " (StatePush, encoded once)" if shared else ""
    name = f"4 itrack server push_state{how}{through}: {subscribers:,} subscriber(s)"

    def build() -> Case:
        directory = _itrack_directory()
        state = SourceState(STATE_OBJ["data"])
        repeat = max(1, BATCH // subscribers)
        copies = repeat * subscribers
        if stack:
            stacks = _itrack_server_stacks(subscribers, directory)
            pairs = [(s.core.push_state, s.data_to_send) for s in stacks]
        else:
            cores = _itrack_servers(subscribers, directory)
            pairs = [(c.push_state, c.data_to_send) for c in cores]

        def ours() -> None:
            for _ in range(repeat):
                update = StatePush(state) if shared else state  # one encode per update
                for push, _drain in pairs:
                    push(TRACKER, update, 1.0)
                for _push, drain in pairs:
                    drain()

        ours()
        push, drain = pairs[0]
        push(TRACKER, state, 1.0)
        out: Any = drain()
        if stack:
            assert isinstance(out, bytes)
            assert out.endswith(STATE_EVENT.encode()), out
        else:
            assert out == [encode_message(STATE_EVENT)], out
        baselines = [Baseline(f"json.dumps x{subscribers:,}", _dumps_times(STATE_OBJ, copies))]
        if stack:
            baselines.append(
                Baseline(
                    f"json.dumps + wsproto send x{subscribers:,}",
                    _dumps_wsproto_times(STATE_OBJ, copies),
                )
            )
        return Case(name, ours, baselines, copies)

    return timed(name, build)


def _hub(count: int) -> tuple[FleetFreedomHub, list[Any]]:
    account = Account("u", 1)
    hub = FleetFreedomHub(lambda user, password: account)
    conns = []
    for _ in range(count):
        conn = hub.connect()
        conn.connection_made(0.0)
        conn.receive('login {"reqId":1,"username":"u","password":"p"}', 0.0)
        conn.receive(
            'subscribe {"reqId":2,"company":{"id":1},"subscriptionTypes":["assetAdvanced"]}', 0.0
        )
        conn.events()
        conn.data_to_send()
        conns.append(conn)
    return hub, conns


def fleetfreedom_emit_case(subscribers: int) -> Item:
    name = f"4 fleetfreedom hub publish: {subscribers:,} subscriber(s)"

    def build() -> Case:
        hub, conns = _hub(subscribers)
        drains = [c.data_to_send for c in conns]
        repeat = max(1, BATCH // subscribers)
        copies = repeat * subscribers
        publish = hub.publish
        body = ASSET_ADVANCED

        def ours() -> None:
            for _ in range(repeat):
                publish("assetAdvancedMerged", 1, body)
                for drain in drains:
                    drain()

        assert len(publish("assetAdvancedMerged", 1, body)) == subscribers
        assert drains[0]() == [ASSET_LINE]
        baselines = [Baseline(f"json.dumps x{subscribers:,}", _dumps_times(body, copies))]
        return Case(name, ours, baselines, copies)

    return timed(name, build)


# -- 5. the whole sans-IO stack ---------------------------------------------------------------


def _server_frames(messages: list[str]) -> list[bytes]:
    send = Connection(ConnectionType.SERVER).send
    return [send(TextMessage(m)) for m in messages]


def _open_client_stack(core: Any, target: str) -> ClientStack[Any]:
    stack: ClientStack[Any] = ClientStack(core, "127.0.0.1", target)
    stack.connection_made(0.0)
    server = H11Handshake(ConnectionType.SERVER)
    server.receive_data(stack.data_to_send())
    assert isinstance(next(iter(server.events())), Request)
    stack.receive(server.send(AcceptConnection()), 0.0)
    stack.receive(_server_frames([HANDSHAKE])[0], 0.0)
    assert any(isinstance(e, Connected) for e in stack.events())
    stack.data_to_send()
    return stack


def _reads(per_read: int) -> list[bytes]:
    frame = _server_frames([STATE_EVENT])[0]
    return [frame * per_read] * (BATCH // per_read)


def _split_fragment(stack: ClientStack[Any]) -> None:
    """A state event in two fragments, cut across two reads: the stack's reader hands them
    to wsproto, then must take the hot path again."""
    send = Connection(ConnectionType.SERVER).send
    data = STATE_EVENT
    wire = send(TextMessage(data[:100], message_finished=False)) + send(TextMessage(data[100:]))
    stack.receive(wire[:50], 0.0)
    stack.receive(wire[50:], 0.0)
    assert len(stack.events()) == 1
    assert stack._quick, "the reader must be back in front of wsproto"


def _stack_body(stack: ClientStack[Any], reads: list[bytes], atmosphere: bool) -> Body:
    receive = stack.receive
    events = stack.events
    if atmosphere:

        def body() -> None:
            for data in reads:
                receive(data, 1.0)
                for event in events():
                    if type(event) is Message:
                        loads(event.data)

    else:

        def body() -> None:
            for data in reads:
                receive(data, 1.0)
                events()

    return body


def stack_case(
    core_name: str,
    per_read: int,
    orjson_hook: bool = False,
    fast: bool = False,
    after_split: bool = False,
) -> Item:
    hook = ", orjson hook" if orjson_hook else ", fast decoder" if fast else ""
    split = ", after a split fragment" if after_split else ""
    what = "Message + json.loads" if core_name == "atmosphere" else "StateEvent"
    name = f"5 stack: ws bytes -> {core_name} {what}, {per_read} frame(s)/read{hook}{split}"

    def core() -> Any:
        if core_name == "atmosphere":
            return AtmosphereClient(URL, inactivity_timeout=0)
        return ITrackClient(URL, HASH, transport=AtmosphereClient(URL, inactivity_timeout=0))

    def build() -> Case:
        reads = _reads(per_read)
        target = "/v2/event/subscription?X-Atmosphere-tracking-id=0"
        stack = _open_client_stack(core(), target)
        if after_split:
            _split_fragment(stack)
        atmosphere = core_name == "atmosphere"
        ours = _stack_body(stack, reads, atmosphere)
        want: type = Message if atmosphere else StateEvent

        def run() -> list[Any]:
            for data in reads:
                stack.receive(data, 1.0)
            return stack.events()

        produced = _with_result(fast, run)
        assert len(produced) == BATCH, len(produced)
        assert all(isinstance(e, want) for e in produced), produced[:2]
        assert fast or all(type(e) is want for e in produced), produced[:2]

        decode = orjson.loads if orjson_hook else loads
        decoder = "orjson.loads" if orjson_hook else "json.loads"
        conn = Connection(ConnectionType.CLIENT)
        conn_receive = conn.receive_data
        conn_events = conn.events

        def wsproto_json() -> None:
            for data in reads:
                conn_receive(data)
                for event in conn_events():  # only TextMessage here; no isinstance in the loop
                    decode(event.data)  # type: ignore[attr-defined]

        def wsproto_alone() -> None:
            for data in reads:
                conn_receive(data)
                for _event in conn_events():
                    pass

        proto = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
        proto_receive = proto.receive_data
        proto_events = proto.events_received

        def websockets_json() -> None:
            for data in reads:
                proto_receive(data)
                for frame in proto_events():  # only text Frames here
                    decode(frame.data.decode())  # type: ignore[union-attr]

        if orjson_hook:
            ours = _with_hook(orjson.loads, ours)
        if fast:
            ours = _with_decoder(True, ours)
            return Case(
                name,
                ours,
                [
                    Baseline("websockets sans-IO + json.loads", websockets_json, FAST_STACK_TARGET),
                    Baseline("wsproto alone + json.loads", wsproto_json),
                ],
                BATCH,
            )
        baselines = [
            Baseline(
                f"wsproto alone + {decoder}", wsproto_json, None if orjson_hook else STACK_TARGET
            ),
        ]
        if after_split:
            fresh = _stack_body(_open_client_stack(core(), target), reads, atmosphere)
            baselines.append(Baseline("same stack, no split fragment", fresh, SAME_PATH_TARGET))
        else:
            baselines.append(Baseline("wsproto alone (no JSON)", wsproto_alone))
            baselines.append(Baseline(f"websockets sans-IO + {decoder}", websockets_json))
        return Case(name, ours, baselines, BATCH)

    return timed(name, build)


def fleetfreedom_stack_case(per_read: int) -> Item:
    name = f"5 stack: ws bytes -> fleetfreedom Merged, {per_read} frame(s)/read, fast decoder"

    def build() -> Case:
        frame = _server_frames([ASSET_LINE])[0]
        reads = [frame * per_read] * (BATCH // per_read)
        client = FleetFreedomClient("ws://127.0.0.1/", keepalive=0, command_timeout=0)
        stack: ClientStack[Any] = ClientStack(client, "127.0.0.1", "/")
        stack.connection_made(0.0)
        server = H11Handshake(ConnectionType.SERVER)
        server.receive_data(stack.data_to_send())
        assert isinstance(next(iter(server.events())), Request)
        stack.receive(server.send(AcceptConnection()), 0.0)
        hello = 'connectionResponse {"errorCode":0,"ghostId":"g","user":{"login":"u","company":1}}'
        stack.receive(_server_frames([hello])[0], 0.0)
        assert any(isinstance(e, Connected) for e in stack.events())
        stack.data_to_send()
        receive = stack.receive
        events = stack.events

        def ours() -> None:
            for data in reads:
                receive(data, 1.0)
                events()

        def run() -> list[Any]:
            for data in reads:
                receive(data, 1.0)
            return events()

        produced = _with_result(True, run)
        assert len(produced) == BATCH, len(produced)
        assert all(type(e) is Merged for e in produced), produced[:2]
        proto = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN, max_size=None)
        proto_receive = proto.receive_data
        proto_events = proto.events_received

        def websockets_json() -> None:
            for data in reads:
                proto_receive(data)
                for frame in proto_events():  # only text Frames here
                    loads(frame.data.decode().partition(" ")[2])  # type: ignore[union-attr]

        return Case(
            name,
            _with_decoder(True, ours),
            [Baseline("websockets sans-IO + json.loads", websockets_json, FAST_STACK_TARGET)],
            BATCH,
        )

    return timed(name, build)


# -- 7. memory of idle server connections (sans-IO) -------------------------------------------


def _traced(build: Callable[[], list[Any]]) -> float:
    """Bytes allocated (and still held) by ``build()``, per item it returns."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / len(kept)


def _idle_itrack(count: int) -> list[Any]:
    directory = _itrack_directory()
    request = _upgrade_bytes(_TMS_TARGET)

    def factory(up: UpgradeRequest) -> ITrackServer:
        return ITrackServer(up.target, directory)

    stacks = []
    for _ in range(count):
        stack: ServerStack[ITrackServer] = ServerStack(factory)
        stack.connection_made(0.0)
        stack.receive(request, 0.0)
        stack.events()
        stack.data_to_send()
        stacks.append(stack)
    return stacks


def _idle_fleetfreedom(count: int) -> list[Any]:
    account = Account("u", 1)
    hub = FleetFreedomHub(lambda user, password: account)
    request = _upgrade_bytes("/")
    stacks = []
    for _ in range(count):
        stack: ServerStack[Any] = ServerStack(lambda up: hub.connect())
        stack.connection_made(0.0)
        stack.receive(request, 0.0)
        stack.events()
        stack.data_to_send()
        stacks.append(stack)
    return stacks


def _idle_websockets(count: int) -> list[Any]:
    request = _upgrade_bytes("/")
    protocols = []
    for _ in range(count):
        proto = ServerProtocol()
        proto.receive_data(request)
        (upgrade,) = proto.events_received()
        proto.send_response(proto.accept(upgrade))  # type: ignore[arg-type]
        proto.data_to_send()
        protocols.append(proto)
    return protocols


def memory_item(kind: str) -> Item:
    label = {"itrack": "ITrackServer", "fleetfreedom": "FleetFreedomServer"}[kind]
    name = f"7 memory: idle server connection, ServerStack + {label} (sans-IO)"
    build = _idle_itrack if kind == "itrack" else _idle_fleetfreedom

    def run(settings: Settings) -> list[Result]:
        count = settings.idle_connections
        ours = _traced(lambda: build(count))
        base = _traced(lambda: _idle_websockets(count))
        return [
            result(
                name,
                "websockets ServerProtocol",
                "B/conn",
                ours,
                base,
                ours / base,
                Target("max-value", 16 * 1024),
                note=f"tracemalloc over {count:,} connections, handshake done, nothing queued",
            )
        ]

    return Item(name, run)


# -- the list --------------------------------------------------------------------------------


def items() -> list[Item]:
    """Every sans-IO case; the orjson ones only where orjson is installed."""
    with_orjson = orjson is not None
    out = [atmosphere_case(track, layout) for track, layout in _LAYOUTS]
    out.append(atmosphere_case(True, "1", non_ascii=True))
    if with_orjson:
        out.append(atmosphere_case(True, "1", orjson_hook=True))
    out.append(atmosphere_alone())
    out.append(atmosphere_alone(non_ascii=True))
    out.extend(itrack_case(track, layout) for track, layout in _LAYOUTS)
    if with_orjson:
        out.append(itrack_case(True, "1", orjson_hook=True))
    for cache in (False, True):
        out.append(fleetfreedom_case(cache))
        if with_orjson:
            out.append(fleetfreedom_case(cache, orjson_hook=True))
    for stack in (False, True):
        out.extend(itrack_emit_case(count, stack) for count in (1, 1000))
        out.append(itrack_emit_case(1000, stack, shared=True))
    out.extend(fleetfreedom_emit_case(count) for count in (1, 1000))
    for core_name in ("atmosphere", "itrack"):
        out.extend(stack_case(core_name, per_read) for per_read in (1, 100))
    out.append(stack_case("itrack", 1, after_split=True))
    if with_orjson:
        out.append(stack_case("itrack", 100, orjson_hook=True))
    if msgspec is not None:
        out.extend(itrack_fast_case(track) for track in (False, True))
        out.extend(fleetfreedom_fast_case(cache) for cache in (False, True))
        out.extend(stack_case("itrack", per_read, fast=True) for per_read in (1, 100))
        out.extend(fleetfreedom_stack_case(per_read) for per_read in (1, 100))
    out.append(memory_item("itrack"))
    out.append(memory_item("fleetfreedom"))
    return out


_LAYOUTS = ((False, "1"), (True, "1"), (True, "20"), (True, "3"))
