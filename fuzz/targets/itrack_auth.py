"""iTrack ``user/auth`` over HTTP: the client's response parser and the server connection.

Contract: :class:`AuthExchange` (and :func:`parse_auth_response`) return an
:class:`AuthSuccess` / :class:`AuthFailure` or raise :class:`AuthError` (a
:class:`RemoteProtocolError`), for any response bytes in any split;
:class:`AuthServerConnection` answers or closes, never raises, and every body it writes is
strict JSON in UTF-8 (whatever the target: ``//[``, a 5,000-digit ``dealer_id``).  Digit
runs expand as in every target (``_common.expand``).  Bit 0 of byte 0 sends the
input to the server side; bit 1 puts a valid status line and headers in front of a body.
"""

from __future__ import annotations

from typing import Any

from _common import Flags, expand, fuzz_main, split, strict_json

from trackwire.itrack import (
    AuthError,
    AuthExchange,
    AuthFailure,
    AuthResponder,
    AuthServerConnection,
    AuthSuccess,
    Directory,
    HttpResponse,
    build_auth_request,
    parse_auth_response,
)

_REQUEST = build_auth_request("http://fuzz.test/v2/", "demo", "secret")


def _client(chunks: list[bytes], whole: bytes) -> None:
    exchange = AuthExchange(_REQUEST, max_body=256)
    assert exchange.bytes_to_send().startswith(b"POST /v2/user/auth ")
    result = None
    try:
        for chunk in chunks:
            if chunk:
                result = exchange.receive_data(chunk)
                if result is not None:
                    break
        if result is None:
            result = exchange.receive_eof()
    except AuthError as exc:
        str(exc)
    else:
        assert isinstance(result, (AuthSuccess, AuthFailure))
    try:
        result = parse_auth_response(whole)
    except AuthError:
        return
    assert isinstance(result, (AuthSuccess, AuthFailure))


class _CheckedResponder(AuthResponder):
    """The responder, with every body it answers checked: strict JSON in UTF-8."""

    def __call__(self, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().__call__(*args, **kwargs)
        answer = strict_json(response.body.decode("utf-8"))
        assert type(answer) is dict, answer
        assert type(answer.get("success")) is bool, answer
        return response


def _server(chunks: list[bytes]) -> None:
    directory = Directory(hash_factory=lambda: "0" * 32)
    directory.add_user("demo", "secret")
    conn = AuthServerConnection(_CheckedResponder(directory), max_body=256)
    for chunk in chunks:
        if conn.closed:
            break
        conn.receive_data(chunk)
        out = conn.data_to_send()
        assert not out or out.startswith(b"HTTP/1.1 ")
    conn.receive_data(b"")
    conn.data_to_send()


def TestOneInput(data: bytes) -> None:
    flags = Flags(data)
    body = expand(data[1:])
    if flags[1]:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: %d\r\n\r\n" % len(body.replace(b"\xff", b""))
        body = head + body
    chunks = split(body)
    if flags[0]:
        _server(chunks)
    else:
        _client(chunks, b"".join(chunks))


if __name__ == "__main__":
    fuzz_main(TestOneInput)
