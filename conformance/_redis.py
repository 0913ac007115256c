"""A :class:`~trackwire.conformance.SharedState` on Redis (≥ 2.6: Lua, pub/sub), over trio.

The wire protocol (RESP2) is small enough to speak directly: :class:`RespParser` is a pure
reader of replies, :func:`encode_command` writes commands, and :class:`RedisConnection`
runs them over a trio stream.  No Redis client package is needed.

Layout, for a namespace ``ns`` (the platform): every key is ``tw:{ns}:…`` (one hash slot, so
a Redis Cluster keeps a namespace on one node and the scripts stay atomic); stored values
are ``<version>|<JSON record>``; records fan out on the channel ``tw:{ns}:events`` as
``{"o": origin, "r": [records…]}``.  Each :meth:`RedisState.write` is one script: the
version-checked stores (a stale version is dropped, so nothing rolls back), the expiries,
the deletions and the publish happen together or not at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import trio

from ._shared import Change, Delete, Expire, Put, Record

__all__ = ["RedisConnection", "RedisError", "RedisState", "RespParser", "encode_command"]

Reply = Any
"""``str`` (status), ``int``, ``bytes`` or ``None`` (bulk), ``list`` (array), or
:class:`RedisError`."""


class RedisError(Exception):
    """An error reply from Redis, or a connection that broke or said something unreadable."""


class _Incomplete(Exception):
    pass


class RespParser:
    """Pure RESP2 reply reader: :meth:`feed` bytes, take whole replies from :meth:`next`."""

    __slots__ = ("_buffer", "_pos")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    def next(self) -> tuple[bool, Reply]:
        """``(True, reply)`` for the next whole reply, ``(False, None)`` when more bytes are
        needed.  Raises :class:`RedisError` on bytes that are not RESP."""
        start = self._pos
        try:
            reply = self._read()
        except _Incomplete:
            self._pos = start
            return False, None
        if self._pos > 65536:
            del self._buffer[: self._pos]
            self._pos = 0
        return True, reply

    def _line(self) -> bytes:
        end = self._buffer.find(b"\r\n", self._pos)
        if end < 0:
            raise _Incomplete
        line = bytes(self._buffer[self._pos : end])
        self._pos = end + 2
        return line

    def _read(self) -> Reply:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            if len(self._buffer) < self._pos + size + 2:
                raise _Incomplete
            data = bytes(self._buffer[self._pos : self._pos + size])
            self._pos += size + 2
            return data
        if kind == b"*":
            count = int(rest)
            if count < 0:
                return None
            return [self._read() for _ in range(count)]
        raise RedisError(f"not a RESP reply: {line[:40]!r}")


def encode_command(*args: str | bytes | int | float) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisConnection:
    """One connection to Redis; :meth:`call` runs commands one at a time (a lock keeps
    concurrent callers' replies apart)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._parser = RespParser()
        self._lock = trio.Lock()

    @classmethod
    async def open(cls, url: str) -> RedisConnection:
        """Connect to ``redis://[:password@]host[:port][/db]`` (AUTH and SELECT if given)."""
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"not a redis:// URL: {url!r}")
        try:
            stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 6379)
        except OSError as exc:
            raise RedisError(f"cannot connect to Redis at {parts.netloc}: {exc}") from None
        conn = cls(stream)
        try:
            if parts.password:
                user = unquote(parts.username) if parts.username else None
                auth = (user, unquote(parts.password)) if user else (unquote(parts.password),)
                await conn.call("AUTH", *auth)
            db = parts.path.strip("/")
            if db:
                await conn.call("SELECT", int(db))
        except BaseException:
            await conn.aclose()
            raise
        return conn

    async def send(self, *args: str | bytes | int | float) -> None:
        try:
            await self.stream.send_all(encode_command(*args))
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise RedisError(f"the Redis connection broke: {exc}") from None

    async def read(self) -> Reply:
        """The next reply (an error reply is returned, not raised)."""
        while True:
            whole, reply = self._parser.next()
            if whole:
                return reply
            try:
                data = await self.stream.receive_some(65536)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise RedisError(f"the Redis connection broke: {exc}") from None
            if not data:
                raise RedisError("Redis closed the connection")
            self._parser.feed(data)

    async def call(self, *args: str | bytes | int | float) -> Reply:
        """Run one command; an error reply raises :class:`RedisError`."""
        async with self._lock:
            await self.send(*args)
            reply = await self.read()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def aclose(self) -> None:
        await self.stream.aclose()


_WRITE = """
for n = 1, #KEYS do
  local key, at = KEYS[n], 3 + (n - 1) * 4
  local kind, ver, ttl, val = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  if kind == 'P' then
    local newer = true
    if ver ~= '' then
      local old = redis.call('GET', key)
      if old then
        local was = tonumber(string.match(old, '^(%-?%d+)|'))
        if was and was >= tonumber(ver) then newer = false end
      end
    end
    if newer then
      if ttl ~= '' then
        redis.call('SET', key, ver .. '|' .. val, 'PX', ttl)
      else
        redis.call('SET', key, ver .. '|' .. val)
      end
    end
  elseif kind == 'E' then
    redis.call('PEXPIRE', key, ttl)
  elseif kind == 'D' then
    redis.call('DEL', key)
  end
end
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return 1
"""
"""Stores (version-checked: never lower), expiries, deletions, then one publish; atomic."""

_LEAD = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
"""Take the lock if free, renew it if ours."""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RedisState:
    """The replicas of one reference server on one Redis (see the module's layout).

    Open it with :meth:`open` (it is subscribed before it returns, so nothing written after
    :meth:`load` is missed); ``namespace`` keeps servers apart on one Redis.
    """

    def __init__(
        self,
        commands: RedisConnection,
        events: RedisConnection,
        namespace: str,
        origin: str | None = None,
    ) -> None:
        self.origin = origin or uuid.uuid4().hex
        self.prefix = f"tw:{{{namespace}}}:"
        self.channel = self.prefix + "events"
        self._commands = commands
        self._events = events

    @classmethod
    async def open(cls, url: str, namespace: str, origin: str | None = None) -> RedisState:
        commands = await RedisConnection.open(url)
        try:
            events = await RedisConnection.open(url)
        except BaseException:
            await commands.aclose()
            raise
        state = cls(commands, events, namespace, origin)
        try:
            await events.send("SUBSCRIBE", state.channel)
            reply = await events.read()
            if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
                raise RedisError(f"SUBSCRIBE answered {reply!r}")
        except BaseException:
            await state.aclose()
            raise
        return state

    async def load(self) -> list[Record]:
        keys: list[bytes] = []
        cursor = b"0"
        while True:
            cursor, batch = await self._commands.call(
                "SCAN", cursor, "MATCH", self.prefix + "*", "COUNT", 1000
            )
            keys.extend(k for k in batch if not k.endswith((b":leader", b":events")))
            if cursor == b"0":
                break
        records: list[Record] = []
        for start in range(0, len(keys), 500):
            values = await self._commands.call("MGET", *keys[start : start + 500])
            for value in values:
                if isinstance(value, bytes) and b"|" in value:
                    records.append(json.loads(value.partition(b"|")[2]))
        return records

    async def write(self, changes: Sequence[Change]) -> None:
        records = [c.record for c in changes if c.record is not None]
        message = _dumps({"o": self.origin, "r": records}) if records else ""
        keys: list[str] = []
        args: list[str | int] = []
        for change in changes:
            op = change.op
            if isinstance(op, Put):
                version = "" if op.version is None else str(op.version)
                ttl = "" if op.ttl is None else str(_ms(op.ttl))
                keys.append(self.prefix + op.key)
                args += ["P", version, ttl, _dumps(op.record)]
            elif isinstance(op, Expire):
                keys.append(self.prefix + op.key)
                args += ["E", "", _ms(op.ttl), ""]
            elif isinstance(op, Delete):
                for key in op.keys:
                    keys.append(self.prefix + key)
                    args += ["D", "", "", ""]
        if keys or message:
            await self._commands.call(
                "EVAL", _WRITE, len(keys), *keys, self.channel, message, *args
            )

    async def receive(self) -> list[Record]:
        while True:
            reply = await self._events.read()
            if not (isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message"):
                continue
            message = json.loads(reply[2])
            if message.get("o") != self.origin:
                records: list[Record] = message.get("r", [])
                return records

    async def lead(self, ttl: float) -> bool:
        held = await self._commands.call(
            "EVAL", _LEAD, 1, self.prefix + "leader", self.origin, _ms(ttl)
        )
        return bool(held)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._commands.aclose()
            await self._events.aclose()
