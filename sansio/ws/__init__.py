"""The sans-IO WebSocket stack: wsproto and h11 joined to any text core, both roles.

A :class:`ClientStack` or :class:`ServerStack` takes and gives bytes and offers the same
surface as a core, so a custom event loop needs only this layer and a socket (an outline;
the documentation's "Your own event loop" tutorial has the complete, tested program):

.. not-run: an outline with "..." where the program's own waiting and handling go

::

    stack.connection_made(now)                 # TCP is up (client: the upgrade is queued)
    while stack.state is not StackState.CLOSED:
        sock.sendall(stack.data_to_send())
        ...wait for input or until stack.next_deadline()...
        stack.receive(data, now)               # or receive_eof(now) / handle_timer(now)
        for event in stack.events():           # the core's events and the stack's, in order
            ...
    sock.sendall(stack.data_to_send())         # then close the socket

What the peer does wrong never raises: the connection ends with :class:`HandshakeFailed`,
:class:`Rejected` or :class:`ConnectionClosed` (``error`` set, close code 1002/1003/1007/1009
sent); :class:`ConnectionClosed` is the last event of every WebSocket that was
:class:`Connected`.  Misuse of the API raises :class:`~trackwire.LocalProtocolError`.
"""

from ._client import MAX_REJECT_BODY, ClientStack
from ._events import (
    AtmosphereCloseRequested,
    BinaryMessage,
    Connected,
    ConnectionClosed,
    HandshakeFailed,
    Headers,
    HttpRequestHandled,
    PongReceived,
    Rejected,
    WsEvent,
)
from ._http import USER_AGENT, HttpGet
from ._server import (
    DEFAULT_MAX_HTTP_BODY,
    DEFAULT_MAX_HTTP_HEADERS,
    Accept,
    CoreFactory,
    HttpHandler,
    HttpResponse,
    Refuse,
    ServerStack,
    UpgradeRequest,
    chain_handlers,
)
from ._stack import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    StackBase,
    TextCore,
)
from ._state import StackState
from ._url import WsAddress, split_ws_url

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_HTTP_BODY",
    "DEFAULT_MAX_HTTP_HEADERS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_REJECT_BODY",
    "USER_AGENT",
    "Accept",
    "AtmosphereCloseRequested",
    "BinaryMessage",
    "ClientStack",
    "Connected",
    "ConnectionClosed",
    "CoreFactory",
    "HandshakeFailed",
    "Headers",
    "HttpGet",
    "HttpHandler",
    "HttpRequestHandled",
    "HttpResponse",
    "PongReceived",
    "Refuse",
    "Rejected",
    "ServerStack",
    "StackBase",
    "StackState",
    "TextCore",
    "UpgradeRequest",
    "WsAddress",
    "WsEvent",
    "chain_handlers",
    "split_ws_url",
]
