"""``tracker/list``: the sans-IO request and answer, the responder, the reference server's
endpoint and the drivers' helpers (loopback only)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

import pytest

from trackwire.conformance import ITrackReference, demo_fleet
from trackwire.drivers import asyncio as aio_driver
from trackwire.drivers import blocking as blocking_driver
from trackwire.drivers import trio as trio_driver
from trackwire.itrack import (
    BLOCKED,
    Directory,
    TrackerInfo,
    TrackerListError,
    TrackerListExchange,
    TrackerListRefused,
    TrackerListResponder,
    build_tracker_list_request,
    is_tracker_list_target,
    parse_tracker_list_response,
    tracker_list_url,
)

ALICE = "a" * 32
BOB = "b" * 32


def directory() -> Directory:
    hashes = iter([ALICE, BOB])
    found = Directory(hash_factory=lambda: next(hashes))
    found.add_user("alice", "pw")
    found.add_user("bob", "pw")
    found.authenticate("alice", "pw")
    found.authenticate("bob", "pw")
    found.add_tracker("alice", 1, source_id=10, label="Van 1")
    found.add_tracker("alice", 2, source_id=20, label="Trailer", status=BLOCKED)
    found.add_tracker("bob", 3, source_id=30, label="Bob's car")
    return found


def http_response(status: int, payload: object, *, chunked: bool = False) -> bytes:
    body = json.dumps(payload).encode()
    if chunked:
        head = f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


LISTED = {
    "success": True,
    "list": [
        {"id": 1, "label": "Van 1", "clone": False, "source": {"id": 10, "model": "x"}},
        {"id": 2, "label": "No source"},
        {"id": 3, "label": 7, "source": {"id": "thirty"}},
    ],
}


def test_request_is_a_form_post_with_the_hash_and_hides_it() -> None:
    request = build_tracker_list_request("https://api.example:8443/v2/", ALICE)
    assert (request.method, request.target) == ("POST", "/v2/tracker/list")
    assert (request.host, request.port, request.tls) == ("api.example", 8443, True)
    assert dict(parse_qsl(request.body.decode())) == {"hash": ALICE}
    assert ("Content-Type", "application/x-www-form-urlencoded") in request.headers
    assert ALICE not in repr(request)
    exchange = TrackerListExchange(request)
    wire = exchange.bytes_to_send()
    assert wire.startswith(b"POST /v2/tracker/list HTTP/1.1\r\n")
    assert wire.endswith(b"hash=" + ALICE.encode())
    assert exchange.bytes_to_send() == b""
    assert tracker_list_url("http://h/v2") == "http://h/v2/tracker/list"
    with pytest.raises(ValueError, match="32-character"):
        build_tracker_list_request("http://h/v2/", "short")
    with pytest.raises(ValueError, match="not an http"):
        build_tracker_list_request("ftp://h/v2/", ALICE)


@pytest.mark.parametrize("chunked", [False, True])
def test_answer_in_any_split_gives_labels_and_both_ids(chunked: bool) -> None:
    data = http_response(200, LISTED, chunked=chunked)
    for cut in range(1, len(data)):
        exchange = TrackerListExchange(build_tracker_list_request("http://h/", ALICE))
        assert exchange.receive_data(data[:cut]) is None
        result = exchange.receive_data(data[cut:])
        assert result == [
            TrackerInfo(1, "Van 1", 10),
            TrackerInfo(2, "No source", None),
            TrackerInfo(3, "", None),
        ]
    assert result[0].raw["source"]["model"] == "x"


def test_api_errors_http_errors_and_unreadable_answers() -> None:
    refused = {"success": False, "status": {"code": 4, "description": "User not found"}}
    with pytest.raises(TrackerListRefused) as caught:
        parse_tracker_list_response(http_response(403, refused))
    assert (caught.value.code, caught.value.description) == (4, "User not found")
    with pytest.raises(TrackerListError, match="HTTP 502"):
        parse_tracker_list_response(b"HTTP/1.1 502 Bad\r\nContent-Length: 3\r\n\r\nbad")
    with pytest.raises(TrackerListError, match="not JSON"):
        parse_tracker_list_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad")
    with pytest.raises(TrackerListError, match="no list"):
        parse_tracker_list_response(http_response(200, {"success": True}))
    with pytest.raises(TrackerListError, match="entry 0 has no integer id"):
        parse_tracker_list_response(http_response(200, {"success": True, "list": [{"id": "1"}]}))
    with pytest.raises(TrackerListError, match="closed connection without sending complete"):
        parse_tracker_list_response(http_response(200, LISTED)[:-3])
    exchange = TrackerListExchange(build_tracker_list_request("http://h/", ALICE), max_body=10)
    with pytest.raises(TrackerListError, match="over 10 bytes"):
        exchange.receive_data(http_response(200, LISTED))


def test_responder_lists_only_the_sessions_own_trackers() -> None:
    responder = TrackerListResponder(directory(), model="sim")
    form = [("Content-Type", "application/x-www-form-urlencoded")]
    answer = responder("POST", "/v2/tracker/list", form, f"hash={ALICE}".encode())
    assert answer.status == 200
    listed = json.loads(answer.body)["list"]
    assert [(t["id"], t["label"], t["source"]["id"]) for t in listed] == [
        (1, "Van 1", 10),
        (2, "Trailer", 20),
    ]
    assert [t["source"]["blocked"] for t in listed] == [False, True]
    assert listed[0]["source"]["model"] == "sim"
    by_query = responder("GET", f"/tracker/list/?hash={BOB}", [], b"")
    assert [t["label"] for t in json.loads(by_query.body)["list"]] == ["Bob's car"]
    as_json = [("Content-Type", "application/json")]
    body = json.dumps({"hash": BOB}).encode()
    assert json.loads(responder("POST", "/v2/tracker/list", as_json, body).body)["success"]


@pytest.mark.parametrize(
    ("method", "target", "body", "status", "code"),
    [
        ("POST", "/v2/tracker/list", b"", 400, 3),
        ("POST", "/v2/tracker/list", b"hash=short", 400, 3),
        ("POST", "/v2/tracker/list", b"hash=" + b"c" * 32, 403, 4),
        ("POST", "/v2/tracker/list", b"%zz=&&", 400, 5),
        ("DELETE", "/v2/tracker/list", b"", 405, 5),
        ("GET", "/v2/tracker/other", b"", 404, 2),
    ],
)
def test_responder_errors(method: str, target: str, body: bytes, status: int, code: int) -> None:
    answer = TrackerListResponder(directory())(method, target, [], body)
    assert answer.status == status
    assert json.loads(answer.body)["status"]["code"] == code


def test_responder_reads_the_query_of_a_target_urlsplit_refuses() -> None:
    # "//[" reads as a broken IPv6 host to urlsplit; the query is still the hash.
    answer = TrackerListResponder(directory())("GET", f"//[/tracker/list?hash={BOB}", [], b"")
    assert answer.status == 200
    assert [t["label"] for t in json.loads(answer.body)["list"]] == ["Bob's car"]


def test_is_tracker_list_target() -> None:
    assert is_tracker_list_target("/v2/tracker/list?x=1")
    assert is_tracker_list_target(b"/tracker/list/")
    assert not is_tracker_list_target("/v2/tracker/listing")


@contextmanager
def reference_http() -> Iterator[tuple[str, ITrackReference]]:
    """The iTrack reference server's HTTP endpoints on a stdlib server; yields (base, app)."""
    app = ITrackReference(demo_fleet(3), wall_offset=0.0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = app.http_handler(self.command, self.path, list(self.headers.items()), body)
            assert answer is not None
            status, headers, payload = answer
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/", app
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def expected(app: ITrackReference, tenant: str) -> list[TrackerInfo]:
    return [
        TrackerInfo(v.id, v.name, v.id * 10)
        for v in app.fleet.vehicles.values()
        if v.tenant == tenant
    ]


def test_reference_server_and_blocking_driver() -> None:
    with reference_http() as (base, app):
        demo = blocking_driver.itrack_login(base, "demo", "demo")
        other = blocking_driver.itrack_login(base, "other", "other")
        trackers = blocking_driver.itrack_tracker_list(base, demo)
        assert trackers == expected(app, "demo")
        assert len(trackers) == 3
        assert (
            trackers[0].label == "Demo " + app.fleet.vehicles[trackers[0].tracker_id].kind + " 01"
        )
        assert blocking_driver.itrack_tracker_list(base, other) == expected(app, "other")
        with pytest.raises(TrackerListRefused) as refused:
            blocking_driver.itrack_tracker_list(base, "f" * 32)
        assert refused.value.code == 4


def test_asyncio_driver() -> None:
    with reference_http() as (base, app):

        async def main() -> list[TrackerInfo]:
            session_hash = await aio_driver.itrack_login(base, "demo", "demo")
            return await aio_driver.itrack_tracker_list(base, session_hash)

        assert asyncio.run(main()) == expected(app, "demo")


async def test_trio_driver() -> None:
    with reference_http() as (base, app):
        session_hash = await trio_driver.itrack_login(base, "demo", "demo")
        assert await trio_driver.itrack_tracker_list(base, session_hash) == expected(app, "demo")
        with pytest.raises(TrackerListRefused):
            await trio_driver.itrack_tracker_list(base, "f" * 32)
        with pytest.raises(OSError, match="connect"):
            await trio_driver.itrack_tracker_list("http://127.0.0.1:9/", session_hash)
