"""Pipelined GETs for the public store's read path: one connection per process, many requests in flight.

Every scan of a stored page is one Redis GET. redis-py's asyncio client spends ~80 µs of CPU on each (pool
checkout, a lock, its connection machinery); the page itself costs ~140 µs to serve. Here a GET is one write
on a shared connection and a future resolved in order by hiredis's parser (the C reader redis-py uses too):
~15 µs at the concurrency a busy worker sees (measured side by side on this machine; see ``bench_public``).
Everything else the store does (its Lua scripts, invalidation) goes through redis-py.

Replies arrive in the order the commands were sent (Redis guarantees it per connection), so each reply
resolves the oldest waiting future. A reply that does not come within the timeout closes the connection:
every waiting GET fails (the caller renders the page instead) and the next GET connects again. A deadline
whose GET was answered does nothing (the reply and the timer can come due in the same turn of the loop, before
the waiting coroutine cancels the timer), and one that fires late means the event loop was busy (a render held
it), not that Redis was slow: the reply may be sitting unread in the socket, so the GET waits on.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        # Commands issued in one turn of the event loop go out in one write (one system call, one packet).
        self.outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                self._close(RedisConnectionError("unexpected reply"))
                return
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        # The first reason is the one worth reporting (a timeout closes the transport, which lands here).
        self.lost = self.lost or exc or RedisConnectionError("connection closed")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError(str(self.lost)))

    def _close(self, reason: BaseException) -> None:
        self.lost = reason
        if self.transport is not None:
            self.transport.close()

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            future.set_exception(RedisConnectionError("not connected"))
            return future
        self.waiting.append(future)
        if not self.outgoing:
            future.get_loop().call_soon(self._flush)
        self.outgoing.append(payload)
        return future

    def _flush(self) -> None:
        payload, self.outgoing = b"".join(self.outgoing), []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


class _Deadline:
    """Closes the connection when a GET's reply is late: it holds up every reply behind it, so give up on the
    connection, not just this GET. Late by the clock of a loop that was itself running late is not late.
    """

    #: How often a deadline is moved on for a busy loop before it counts (a hung Redis under a loop that is
    #: always behind still fails, after a few timeouts).
    EXTENSIONS = 4

    def __init__(self, protocol: _Protocol, future: asyncio.Future[Any], timeout: float) -> None:
        self.protocol, self.future, self.timeout = protocol, future, timeout
        self.extensions = 0
        self.loop = future.get_loop()
        self.due = self.loop.time() + timeout
        self.handle = self.loop.call_at(self.due, self._expired)

    def _expired(self) -> None:
        if self.future.done():
            return
        # Fired well after it was due: the loop did not run in between, so it has not read the socket yet.
        if self.loop.time() - self.due > self.timeout / 2 and self.extensions < self.EXTENSIONS:
            self.extensions += 1
            self.due = self.loop.time() + self.timeout
            self.handle = self.loop.call_at(self.due, self._expired)
            return
        self.protocol._close(RedisTimeoutError("no reply in time"))

    def cancel(self) -> None:
        self.handle.cancel()


class PipelinedGet:
    """GET over one shared connection of this event loop, reconnecting after a failure."""

    def __init__(self, url: str, *, timeout: float) -> None:
        options = parse_url(url)
        self.timeout = timeout
        self._host = str(options.get("host", "localhost"))
        self._port = int(options.get("port", 6379))
        self._path = options.get("path")
        self._tls = url.startswith("rediss://")
        # What a new connection sends first: AUTH (with the ACL user if the URL names one), then SELECT.
        self._setup: list[bytes] = []
        password, username = options.get("password"), options.get("username")
        if password:
            credentials = [str(username).encode()] if username else []
            self._setup.append(_command(b"AUTH", *credentials, str(password).encode()))
        if options.get("db"):
            self._setup.append(_command(b"SELECT", str(options.get("db")).encode()))
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._path:
            _, protocol = await loop.create_unix_connection(_Protocol, str(self._path))
        else:
            _, protocol = await loop.create_connection(
                _Protocol, self._host, self._port, ssl=ssl.create_default_context() if self._tls else None
            )
        replies = [protocol.send(command) for command in self._setup]
        for reply in replies:
            result = await asyncio.wait_for(reply, self.timeout)
            if isinstance(result, Exception):
                protocol._close(RedisConnectionError(str(result)))
                raise ResponseError(str(result))
        return protocol

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        # One connection attempt at a time; concurrent callers wait for it.
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            # Retrieved here too: a connect that fails after every waiter timed out is not "never retrieved".
            self._connecting.add_done_callback(lambda f: f.cancelled() or f.exception())
        connecting = self._connecting
        try:
            protocol = await asyncio.wait_for(asyncio.shield(connecting), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect: {exc}") from exc
        finally:
            if connecting.done():
                self._connecting = None
        self._protocol = protocol
        return protocol

    async def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or None; RedisError when Redis cannot answer within the timeout."""
        protocol = await self._ready()
        future = protocol.send(_command(b"GET", key))
        watch = _Deadline(protocol, future, self.timeout)
        try:
            reply = await future
        finally:
            watch.cancel()
        if isinstance(reply, Exception):
            raise ResponseError(str(reply))
        if reply is not None and not isinstance(reply, bytes):
            raise RedisError(f"unexpected reply {type(reply).__name__}")
        return reply

    def close(self) -> None:
        """Close the connection (a worker renders in a fresh event loop each time)."""
        if self._protocol is not None:
            self._protocol._close(RedisConnectionError("closed"))
            self._protocol = None
