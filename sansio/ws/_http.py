"""One plain HTTP GET through h11, sans-IO: the Atmosphere close request every driver sends."""

from __future__ import annotations

import h11

from .. import __version__
from ._url import WsAddress, split_ws_url

__all__ = ["USER_AGENT", "HttpGet"]

USER_AGENT = f"trackwire/{__version__}"


class HttpGet:
    """``GET url`` on a fresh connection: :meth:`bytes_to_send`, then :meth:`receive` the
    answer until it returns ``True``; :attr:`status_code` is the status (``None`` when the
    answer was unreadable or never came).  ``ws``/``wss`` URLs are read as ``http``/``https``.
    """

    __slots__ = ("_conn", "address", "done", "status_code")

    def __init__(self, url: str) -> None:
        self.address: WsAddress = split_ws_url(url)
        self._conn = h11.Connection(h11.CLIENT)
        self.status_code: int | None = None
        self.done = False

    def bytes_to_send(self) -> bytes:
        conn = self._conn
        request = h11.Request(
            method="GET",
            target=self.address.target,
            headers=[
                ("Host", self.address.host_header),
                ("User-Agent", USER_AGENT),
                ("Accept", "*/*"),
                ("Connection", "close"),
            ],
        )
        return (conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b"")

    def receive(self, data: bytes) -> bool:
        """Feed response bytes (``b""`` at the end of input); ``True`` once it is over."""
        conn = self._conn
        if not self.done:
            conn.receive_data(data)
        while not self.done:
            try:
                event = conn.next_event()
            except h11.ProtocolError:
                self.done = True
                break
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.Response):
                self.status_code = event.status_code
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)) or event is h11.PAUSED:
                self.done = True
        return True
