"""Atmosphere client and server cores talking in memory, with a fake clock.

Run: python examples/loopback.py
"""

from __future__ import annotations

from trackwire.atmosphere import AtmosphereClient, AtmosphereServer


def main() -> None:
    client = AtmosphereClient(
        "http://127.0.0.1:8080/v2/event/subscription",
        content_type="application/json",
        track_message_length=True,
    )
    target = client.url_to_open.split("8080", 1)[1]
    print("client opens", client.url_to_open)
    server = AtmosphereServer(target, heartbeat_interval_ms=30000)

    now = 0.0
    server.connection_made(now)
    client.connection_made(now)

    def pump() -> None:
        for frame in server.data_to_send():
            print(f"  server -> client  {frame[:70]!r}")
            client.receive(frame, now)
        for frame in client.data_to_send():
            print(f"  client -> server  {frame[:70]!r}")
            server.receive(frame, now)
        for event in client.events():
            print("  client event     ", event)
        for event in server.events():
            print("  server event     ", event)

    pump()
    server.send('{"type":"event","event":"state","data":{"source_id":10284,"gps":{"speed":42}}}')
    server.send("é😀 counted in UTF-16 units")
    pump()
    # Let a minute pass on the fake clock: the client heartbeats every 30 s, the server
    # after 60 s without writing.
    while now < 60.0:
        deadlines = [d for d in (client.next_deadline(), server.next_deadline()) if d is not None]
        now = min(deadlines)
        print(f"t={now:5.1f}s")
        client.handle_timer(now)
        server.handle_timer(now)
        pump()
    print("close request:", client.close(now, timestamp_ms=0))


if __name__ == "__main__":
    main()
