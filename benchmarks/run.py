"""Benchmarks of the frame-handling path, each a ratio against a baseline of the same run.

    python benchmarks/run.py [--quick] [--json FILE] [--only SUBSTRING]

Every case times "ours" and its baseline alternately, several rounds each, and reports the
median cost per message.  Only the ratio is judged (the machines are shared and noisy);
absolute times are printed for orientation.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from payloads import STATE_EVENT

from trackwire.atmosphere import AtmosphereClient, Message, encode_message

Body = Callable[[], object]


@dataclass
class Case:
    name: str
    ours: Body
    baseline_name: str
    baseline: Body
    messages: int
    """Messages handled by one call of ``ours`` (and of ``baseline``)."""
    target: float | None = None


@dataclass
class Result:
    name: str
    baseline: str
    ours_us: float
    baseline_us: float
    ratio: float
    target: float | None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "info"
        return "ok" if self.ratio <= self.target else "MISSED"


def _per_call(body: Body, seconds: float) -> float:
    """Median-ready sample: seconds per call, over enough calls to last about ``seconds``."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            body()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls
        calls *= 2


def measure(case: Case, rounds: int, seconds: float) -> Result:
    ours: list[float] = []
    base: list[float] = []
    case.ours()
    case.baseline()
    gc.disable()
    try:
        for _ in range(rounds):
            ours.append(_per_call(case.ours, seconds))
            base.append(_per_call(case.baseline, seconds))
    finally:
        gc.enable()
    ours_us = statistics.median(ours) / case.messages * 1e6
    base_us = statistics.median(base) / case.messages * 1e6
    return Result(case.name, case.baseline_name, ours_us, base_us, ours_us / base_us, case.target)


# -- the Atmosphere client ------------------------------------------------------------------


def _open_client(track: bool) -> AtmosphereClient:
    client = AtmosphereClient(
        "http://127.0.0.1/event/subscription", track_message_length=track, inactivity_timeout=0
    )
    client.connection_made(0.0)
    handshake = "b623a15d-9623-4fd8-a9d3-697036635c29|30000|X|"
    client.receive(encode_message(handshake) if track else handshake, 0.0)
    client.events()
    return client


def _client_body(frames: list[str], track: bool, decode: bool) -> Body:
    client = _open_client(track)
    receive = client.receive
    events = client.events
    loads = json.loads

    if decode:

        def body() -> None:
            for frame in frames:
                receive(frame, 1.0)
            for event in events():
                if type(event) is Message:
                    loads(event.data)

    else:

        def body() -> None:
            for frame in frames:
                receive(frame, 1.0)
            events()

    return body


def atmosphere_cases(batch: int = 200) -> list[Case]:
    payloads = [STATE_EVENT] * batch
    loads = json.loads

    def json_baseline() -> None:
        for payload in payloads:
            loads(payload)

    prefixed = encode_message(STATE_EVENT)
    per_frame_20 = [prefixed * 20] * (batch // 20)
    thirds = len(prefixed) // 3
    split_3 = [prefixed[:thirds], prefixed[thirds : 2 * thirds], prefixed[2 * thirds :]] * batch
    cases = [
        ("atmosphere client, 1 msg/frame, TrackMessageSize off", payloads, False),
        ("atmosphere client, 1 msg/frame, TrackMessageSize on", [prefixed] * batch, True),
        ("atmosphere client, 20 msgs/frame, TrackMessageSize on", per_frame_20, True),
        ("atmosphere client, 1 msg over 3 frames, TrackMessageSize on", split_3, True),
    ]
    out = [
        Case(name + " + json.loads", _client_body(frames, track, True), "json.loads",
             json_baseline, batch, 1.15)
        for name, frames, track in cases
    ]  # fmt: skip
    out.append(
        Case(
            "atmosphere client alone, 1 msg/frame, TrackMessageSize on",
            _client_body([prefixed] * batch, True, False),
            "json.loads",
            json_baseline,
            batch,
        )
    )
    return out


def all_cases() -> list[Case]:
    return atmosphere_cases()


def _print(results: list[Result]) -> None:
    width = max(len(r.name) for r in results)
    print(
        f"{'case':<{width}}  {'ours µs':>8}  {'base µs':>8}  {'ratio':>6}  target  verdict  baseline"
    )
    for r in results:
        target = f"{r.target:.2f}" if r.target is not None else "-"
        print(
            f"{r.name:<{width}}  {r.ours_us:8.3f}  {r.baseline_us:8.3f}  {r.ratio:6.3f}  "
            f"{target:>6}  {r.verdict:<7}  {r.baseline}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    rounds, seconds = (3, 0.02) if args.quick else (9, 0.1)
    results = [measure(c, rounds, seconds) for c in all_cases() if args.only in c.name]
    _print(results)
    if args.json:
        rows = [asdict(r) | {"verdict": r.verdict} for r in results]
        args.json.write_text(json.dumps({"python": sys.version, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
