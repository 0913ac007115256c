"""The one interface every protocol core and the WebSocket stack share.

A core is a pure state machine: the caller feeds it input together with the current
monotonic time, reads the typed events it produced, asks it to send things, drains what it
wants written, and wakes it at the deadline it names.  It never touches a socket, a thread or
a clock, which is what makes it embeddable in any event loop and testable with a fake clock::

    core.connection_made(now)
    while True:
        for frame in core.data_to_send():      # write these (text frames for a core)
            ...
        deadline = core.next_deadline()        # sleep until input arrives or this time
        ...
        core.receive(frame, now)               # or core.receive_eof(now) / core.handle_timer(now)
        for event in core.events():
            ...

Text cores (Atmosphere, iTrack, FleetFreedom) take and give WebSocket text messages
(``str``); the stack takes and gives ``bytes``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Generic, Protocol, TypeVar, runtime_checkable

from ._errors import LocalProtocolError

__all__ = ["ClientCore", "Core", "CoreBase", "Event", "StateMachine"]

InT_contra = TypeVar("InT_contra", contravariant=True)
OutT_co = TypeVar("OutT_co", covariant=True)
EventT_co = TypeVar("EventT_co", covariant=True)
SendT_contra = TypeVar("SendT_contra", contravariant=True)
EventT = TypeVar("EventT")
StateT = TypeVar("StateT", bound=enum.Enum)
InputT = TypeVar("InputT", bound=enum.Enum)


class Event:
    """Base class of every event a core produces (concrete events are slots dataclasses)."""

    __slots__ = ()


@runtime_checkable
class Core(Protocol[InT_contra, OutT_co, EventT_co, SendT_contra]):
    """What every core offers; drivers are written against this and nothing else.

    Type parameters: the input a core is fed (``str`` frames, or ``bytes`` for the stack),
    what :meth:`data_to_send` returns, the events it produces, and what :meth:`send` takes.
    """

    @property
    def state(self) -> enum.Enum:
        """The current state; transitions live in one table per protocol."""
        ...

    def connection_made(self, now: float) -> None:
        """The underlying connection is open (WebSocket accepted); start the protocol."""
        ...

    def receive(self, data: InT_contra, now: float) -> None:
        """Feed one piece of input received at monotonic time ``now``."""
        ...

    def receive_eof(self, now: float) -> None:
        """The connection ended; no more input will come."""
        ...

    def next_event(self) -> EventT_co | None:
        """Pop the oldest pending event, or ``None`` when there is none."""
        ...

    def events(self) -> Sequence[EventT_co]:
        """Pop every pending event, oldest first."""
        ...

    def send(self, item: SendT_contra, now: float | None = None) -> object:
        """Queue something for the peer; returns ``None`` or a handle, never writes.

        ``now`` starts whatever clock the item needs (a command's timeout, the server's
        write-inactivity heartbeat); left out, the core uses the latest time it was given.
        """
        ...

    def data_to_send(self) -> OutT_co:
        """Drain what the core wants written, in order."""
        ...

    def next_deadline(self) -> float | None:
        """The monotonic time at which :meth:`handle_timer` must be called, if any."""
        ...

    def handle_timer(self, now: float) -> None:
        """Run whatever timers are due at ``now`` (heartbeats, timeouts)."""
        ...


@runtime_checkable
class ClientCore(Core[str, list[str], EventT_co, SendT_contra], Protocol[EventT_co, SendT_contra]):
    """A client text core that drivers can (re)connect: Atmosphere, iTrack, FleetFreedom.

    The driver opens :attr:`url_to_open`; after a connection ends it calls
    :meth:`reconnect` only while :attr:`resumable` holds (never after a logout, a
    ``sessionEnded`` or a refused session), then opens :attr:`url_to_open` again.
    """

    @property
    def url_to_open(self) -> str:
        """The WebSocket URL of the next connection (it carries the session to resume)."""
        ...

    @property
    def resumable(self) -> bool:
        """A new connection would resume this session."""
        ...

    def reconnect(self) -> None:
        """Prepare the core for the next connection of the same session."""
        ...


class StateMachine(Generic[StateT, InputT]):
    """A state plus one transition table, h11-style: every move is looked up, never coded.

    A pair missing from the table is the caller's misuse and raises
    :class:`LocalProtocolError` naming the state and the input.
    """

    __slots__ = ("state", "table")

    def __init__(self, initial: StateT, table: dict[tuple[StateT, InputT], StateT]):
        self.state = initial
        self.table = table

    def fire(self, event: InputT) -> StateT:
        try:
            new = self.table[self.state, event]
        except KeyError:
            raise LocalProtocolError(f"{event.name} is not allowed", state=self.state) from None
        self.state = new
        return new

    def allows(self, event: InputT) -> bool:
        return (self.state, event) in self.table


class EventQueue(Generic[EventT]):
    """An event queue in a plain list with a read index.

    A list, not a deque: a deque costs ~760 bytes even empty, per queue, per connection.
    The read index makes :meth:`next_event` O(1); the list is cleared when it is read out.
    """

    __slots__ = ("_events", "_head")

    def __init__(self) -> None:
        self._events: list[EventT] = []
        self._head = 0

    def next_event(self) -> EventT | None:
        events = self._events
        head = self._head
        if head >= len(events):
            return None
        event = events[head]
        if head + 1 == len(events):
            events.clear()
            self._head = 0
        else:
            self._head = head + 1
        return event

    def events(self) -> list[EventT]:
        events = self._events
        drained = events[self._head :] if self._head else events[:]
        events.clear()
        self._head = 0
        return drained


class CoreBase(EventQueue[EventT]):
    """Event and output queues shared by the text cores."""

    __slots__ = ("_out",)

    def __init__(self) -> None:
        super().__init__()
        self._out: list[str] = []

    def data_to_send(self) -> list[str]:
        out = self._out
        self._out = []
        return out

    def _emit_all(self, events: Iterable[EventT]) -> None:
        self._events.extend(events)
