"""Either server driver (trio or asyncio) in a thread of its own, for tests that hold for both.

The test talks to the server over 127.0.0.1 with blocking clients and reaches into the
server's loop only through :meth:`ServerThread.call`, so the same test body runs against
``trackwire.drivers.trio.serve`` and ``trackwire.drivers.asyncio.serve``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio

from trackwire import Event
from trackwire.drivers import asyncio as asyncio_driver
from trackwire.drivers import trio as trio_driver

DRIVERS = ("trio", "asyncio")
T = TypeVar("T")
E = TypeVar("E", bound=Event)


class ServerThread:
    """``with ServerThread(driver, factory, **serve_options) as st``: ``st.port``,
    ``st.events`` (every ``(connection, event)``), ``st.call(fn, *args)`` in the server's
    loop, ``st.wait(cls)``.  ``app`` (a reference application) is ticked as a driver would:
    at its ``next_deadline``, flushing what it returns."""

    def __init__(self, driver: str, factory: Any, *, app: Any = None, **options: Any) -> None:
        self.driver = driver
        self.factory = factory
        self.app = app
        self.options = options
        self.events: list[tuple[Any, Event]] = []
        self.on_event: Callable[[Any, Event], None] | None = None
        """Called in the server's loop after an event is recorded (e.g. to echo)."""
        self.server: Any = None
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._stop: Callable[[], None] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._trio_token: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            stop()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the server thread did not stop"
        if self._error is not None:
            raise self._error

    @property
    def port(self) -> int:
        return int(self.server.port)

    def _record(self, conn: Any, event: Event) -> None:
        with self._cond:
            self.events.append((conn, event))
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event(conn, event)

    def _main(self) -> None:
        try:
            if self.driver == "trio":
                trio.run(self._trio_main)
            else:
                asyncio.run(self._asyncio_main())
        except BaseException as exc:  # reported to the test by __exit__
            self._error = exc
        finally:
            self._ready.set()

    async def _trio_main(self) -> None:
        async with trio.open_nursery() as nursery:
            self.server = await nursery.start(
                partial(trio_driver.serve, self.factory, on_event=self._record, **self.options)
            )
            self._trio_token = trio.lowlevel.current_trio_token()
            token = self._trio_token
            scope = nursery.cancel_scope
            self._stop = lambda: trio.from_thread.run_sync(scope.cancel, trio_token=token)
            if self.app is not None:
                nursery.start_soon(self._trio_tick)
            self._ready.set()

    async def _trio_tick(self) -> None:
        while True:
            deadline = self.app.next_deadline()
            await trio.sleep_until(trio.current_time() + 0.05 if deadline is None else deadline)
            self.server.flush(self.app.tick(trio.current_time()))

    async def _asyncio_main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        started: concurrent.futures.Future[Any] = concurrent.futures.Future()
        task = loop.create_task(
            asyncio_driver.serve(
                self.factory, on_event=self._record, started=started.set_result, **self.options
            )
        )
        while not started.done():
            if task.done():
                task.result()
            await asyncio.sleep(0.001)
        self.server = started.result()
        ticker = loop.create_task(self._asyncio_tick()) if self.app is not None else None
        self._stop = lambda: loop.call_soon_threadsafe(task.cancel)
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if ticker is not None:
            ticker.cancel()

    async def _asyncio_tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.app.next_deadline()
            delay = 0.05 if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.sleep(delay)
            self.server.flush(self.app.tick(loop.time()))

    # -- reaching in ---------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the server's loop; its result (or exception)."""
        if self.driver == "trio":
            result: T = trio.from_thread.run_sync(fn, *args, trio_token=self._trio_token)
            return result
        loop = self._loop
        assert loop is not None

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def now(self) -> float:
        """The server loop's clock."""
        if self.driver == "trio":
            return self.call(trio.current_time)
        loop = self._loop
        assert loop is not None
        return self.call(loop.time)

    def of(self, cls: type[E]) -> list[tuple[Any, E]]:
        with self._cond:
            return [(c, e) for c, e in self.events if isinstance(e, cls)]

    def wait(
        self, cls: type[E], nth: int = 1, timeout: float = 10.0, conn: Any = None
    ) -> tuple[Any, E]:
        """The ``nth`` event of type ``cls`` (of ``conn``, if given; waits for it)."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    (c, e)
                    for c, e in self.events
                    if isinstance(e, cls) and (conn is None or c is conn)
                ]
                if len(found) >= nth:
                    return found[nth - 1]
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {cls.__name__} #{nth} within {timeout} s")
                self._cond.wait(left)
