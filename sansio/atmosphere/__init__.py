"""The Atmosphere WebSocket transport, client and server cores.

The protocol is described in ``docs/protocols/atmosphere.md`` (section numbers such as §3 in
the docstrings refer to it).
"""

from ._client import AtmosphereClient, ClientState
from ._events import (
    AtmosphereEvent,
    Closed,
    Heartbeat,
    InactivityTimeout,
    Message,
    Opened,
    Reopened,
)
from ._framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    TrackMessageSizeDecoder,
    encode_message,
    js_trim,
    utf16_len,
)
from ._server import RECONNECT_PADDING, AtmosphereServer, ServerState
from ._url import (
    DEFAULT_FRAMEWORK,
    OpenRequest,
    build_close_url,
    build_open_url,
    framework_number,
    parse_open_request,
)

__all__ = [
    "DEFAULT_FRAMEWORK",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "RECONNECT_PADDING",
    "AtmosphereClient",
    "AtmosphereEvent",
    "AtmosphereServer",
    "ClientState",
    "Closed",
    "Heartbeat",
    "InactivityTimeout",
    "Message",
    "OpenRequest",
    "Opened",
    "Reopened",
    "ServerState",
    "TrackMessageSizeDecoder",
    "build_close_url",
    "build_open_url",
    "encode_message",
    "framework_number",
    "js_trim",
    "parse_open_request",
    "utf16_len",
]
