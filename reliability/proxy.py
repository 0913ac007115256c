"""A small trio TCP proxy that misbehaves on purpose: re-chunks, delays, stalls, freezes, drops.

It sits between a client and a server on 127.0.0.1 and forwards both directions with the
damage its :class:`Chaos` describes; :meth:`Link.drop` cuts one connection, :meth:`Link.freeze`
stops forwarding one direction (a peer gone silent without closing).  Backpressure is kept:
a direction reads only when it has written what it read before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

__all__ = ["Chaos", "ChaosProxy", "Link"]

_READ = 65536
_NETWORK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


@dataclass(frozen=True, slots=True)
class Chaos:
    """What the proxy does to the bytes of every connection.

    ``max_chunk`` splits each read into writes of at most that many bytes (1: byte by byte);
    ``random_split`` draws each write's size from 1..``max_chunk`` instead; ``delay`` sleeps
    before each write; every ``stall_every`` seconds a direction stops for ``stall_for``.
    """

    max_chunk: int | None = None
    random_split: bool = False
    delay: float = 0.0
    stall_every: float = 0.0
    stall_for: float = 0.0
    seed: int = 0

    @property
    def describe(self) -> str:
        parts = []
        if self.max_chunk == 1:
            parts.append("1-byte writes")
        elif self.max_chunk:
            how = "random splits" if self.random_split else "splits"
            parts.append(f"{how} of ≤{self.max_chunk} bytes")
        if self.delay:
            parts.append(f"{self.delay * 1000:g} ms per write")
        if self.stall_every and self.stall_for:
            parts.append(f"{self.stall_for:g} s stall every {self.stall_every:g} s")
        return ", ".join(parts) or "clean"


@dataclass(eq=False, slots=True)
class Link:
    """One proxied connection: the client side, the server side and their two pumps."""

    client: trio.abc.Stream
    server: trio.abc.Stream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    frozen_down: trio.Event | None = None
    """Set while server-to-client forwarding is frozen (``None``: flowing)."""
    frozen_up: trio.Event | None = None
    dropped: bool = False
    bytes_down: int = 0
    bytes_up: int = 0
    writes: int = 0

    def drop(self) -> None:
        """Cut the connection at once: both sockets close, no close handshake."""
        self.dropped = True
        self.scope.cancel()

    def freeze(self, down: bool = True, up: bool = False) -> None:
        """Stop forwarding server-to-client (``down``) and/or client-to-server (``up``) bytes;
        the sockets stay open, so the peer sees silence, not an end."""
        if down and self.frozen_down is None:
            self.frozen_down = trio.Event()
        if up and self.frozen_up is None:
            self.frozen_up = trio.Event()

    def thaw(self) -> None:
        for event in (self.frozen_down, self.frozen_up):
            if event is not None:
                event.set()
        self.frozen_down = self.frozen_up = None


class ChaosProxy:
    """Listens on ``127.0.0.1`` (a free port) and forwards to ``127.0.0.1:target_port``.

    ``port = (await nursery.start(proxy.run))``; :attr:`links` are the live connections in
    accept order, :attr:`accepted` counts every connection ever made.
    """

    def __init__(self, target_port: int, chaos: Chaos = Chaos()) -> None:
        self.target_port = target_port
        self.chaos = chaos
        self.links: list[Link] = []
        self.accepted = 0
        self.writes = 0
        """Writes made so far, every connection together."""
        self.port = 0
        self._random = random.Random(chaos.seed)
        self._freeze_new = False

    def freeze_new(self, frozen: bool = True) -> None:
        """Freeze the server-to-client direction of connections accepted from now on."""
        self._freeze_new = frozen

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await trio.aclose_forcefully(client)
            return
        link = Link(client, server)
        if self._freeze_new:
            link.freeze()
        self.links.append(link)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, link, client, server, False, nursery)
                    nursery.start_soon(self._pump, link, server, client, True, nursery)
        finally:
            self.links.remove(link)
            await trio.aclose_forcefully(client)
            await trio.aclose_forcefully(server)

    async def _pump(
        self,
        link: Link,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        down: bool,
        nursery: trio.Nursery,
    ) -> None:
        chaos = self.chaos
        rng = self._random
        next_stall = trio.current_time() + chaos.stall_every if chaos.stall_every else None
        try:
            while True:
                data = await source.receive_some(_READ)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    frozen = link.frozen_down if down else link.frozen_up
                    if frozen is not None:
                        await frozen.wait()
                    if next_stall is not None and trio.current_time() >= next_stall:
                        await trio.sleep(chaos.stall_for)
                        next_stall = trio.current_time() + chaos.stall_every
                    size = len(view)
                    if chaos.max_chunk:
                        top = min(size, chaos.max_chunk)
                        size = rng.randint(1, top) if chaos.random_split else top
                    if chaos.delay:
                        await trio.sleep(chaos.delay)
                    await sink.send_all(view[:size])
                    link.writes += 1
                    self.writes += 1
                    if down:
                        link.bytes_down += size
                    else:
                        link.bytes_up += size
                    view = view[size:]
        except _NETWORK_ERRORS:
            pass
        # One side ended: so does the link (both sockets close, as a real proxy would).
        nursery.cancel_scope.cancel()
