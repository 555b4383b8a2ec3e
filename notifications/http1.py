"""A lean HTTP/1.1 keep-alive transport for httpx, used under firebase-admin's ``send_each_async``.

firebase-admin's async messaging client is an ``httpx.AsyncClient`` (its auth flow, request building,
``raise_for_status`` and FCM error mapping all stay the SDK's); this replaces only the connection layer
below it, through httpx's documented transport interface. httpcore's pool, the default, re-examines
every connection and queued request each time one changes state (a ``poll()`` per idle connection),
which made a 500-message fan-out cost more CPU in the pool than in everything else together. Here a
free connection is a deque pop, a waiter a future, a request one ``write`` and the answer parsed by
httptools (C). See bench/bench_push.py for the measurements.

Failures surface as httpx exceptions (``ConnectError``, ``ReadError``, ``RemoteProtocolError``,
timeouts), which the SDK maps to ``UnavailableError``/``DeadlineExceededError``/``UnknownError``. A
refused connection is retried once (it never reached the server); nothing that was written is.
"""

from __future__ import annotations

import asyncio
import collections
import ssl

import httptools
import httpx

_Origin = tuple[str, str, int]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, parses its answer with httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._complete = False

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the request in flight, if any."""
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionResetError("server closed the connection"))

    def data_received(self, data: bytes) -> None:
        """Feed the parser."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)
            self.close()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        """One response header."""
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        """Part of the response body."""
        self._body.append(body)

    def on_message_complete(self) -> None:
        """The answer is complete: hand it to the waiting request."""
        self._complete = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            keep_alive = self._parser.should_keep_alive()
            waiter.set_result((status, self._headers, b"".join(self._body), keep_alive))

    # use

    def request(self, data: bytes) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]]:
        """Send one serialised request; the future resolves to (status, headers, body, keep-alive)."""
        assert self.transport is not None
        self._headers, self._body, self._complete = [], [], False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        """Drop the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """Idle connections and waiting requests for one origin."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: collections.deque[_Connection] = collections.deque()
        self.waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self.open = 0


class LeanHttp1Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with up to ``max_connections`` keep-alive connections per origin; one event loop only."""

    def __init__(self, *, max_connections: int = 100, ssl_context: ssl.SSLContext | None = None) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self._limit = max_connections
        self._ssl_context = ssl_context
        self._pools: dict[_Origin, _Pool] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection and return the buffered response."""
        if self._closed:
            raise httpx.TransportError("transport closed", request=request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        origin: _Origin = (scheme, url.host, port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(self._limit)
        data = _serialise(request)
        connection = await self._acquire(pool, origin, request, timeouts)
        reusable = False
        try:
            answer = connection.request(data)
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    status, headers, body, keep_alive = await answer
            except TimeoutError as exc:
                raise httpx.ReadTimeout("timed out waiting for the response", request=request) from exc
            except httptools.HttpParserError as exc:
                raise httpx.RemoteProtocolError(f"malformed response: {exc}", request=request) from exc
            except OSError as exc:
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
            reusable = keep_alive and not connection.closed
        finally:
            self._release(pool, connection, reusable)
        return httpx.Response(
            status, headers=headers, content=body, request=request, extensions={"http_version": b"HTTP/1.1"}
        )

    async def _acquire(
        self, pool: _Pool, origin: _Origin, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        while pool.idle:
            connection = pool.idle.pop()
            if not connection.closed:
                return connection
            pool.open -= 1
        if pool.open >= pool.limit:
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            pool.waiters.append(waiter)
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    handed = await waiter
            except TimeoutError as exc:
                raise httpx.PoolTimeout("no free connection in time", request=request) from exc
            finally:
                if not waiter.done():
                    waiter.cancel()
            if handed is not None:
                return handed
            # None: a slot was freed (a connection closed), open a new one in its place.
        pool.open += 1
        try:
            return await self._connect(origin, request, timeouts)
        except BaseException:
            pool.open -= 1
            self._wake(pool)
            raise

    async def _connect(
        self, origin: _Origin, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl_context or httpx.create_ssl_context()
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(timeouts.get("connect")):
                    _transport, protocol = await loop.create_connection(
                        _Connection, host, port, ssl=context, server_hostname=host if context else None
                    )
                return protocol
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from exc
            except ConnectionRefusedError as exc:
                # Refused: the request never reached the server, so one more try is safe.
                if attempt == 2:
                    raise httpx.ConnectError(f"{host}:{port}: {exc}", request=request) from exc
            except OSError as exc:
                raise httpx.ConnectError(f"{host}:{port}: {exc}", request=request) from exc
        raise AssertionError("unreachable")

    def _release(self, pool: _Pool, connection: _Connection, reusable: bool) -> None:
        if not reusable or self._closed:
            connection.close()
            pool.open -= 1
            self._wake(pool)
            return
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        pool.idle.append(connection)

    @staticmethod
    def _wake(pool: _Pool) -> None:
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        self._closed = True
        for pool in self._pools.values():
            while pool.idle:
                pool.idle.pop().close()
            while pool.waiters:
                waiter = pool.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        self._pools.clear()


def _serialise(request: httpx.Request) -> bytes:
    """Request line, headers (Host first, Content-Length from the buffered body) and body as one buffer."""
    body = request.content
    url = request.url
    target = url.raw_path
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        lower = name.lower()
        if lower == b"transfer-encoding":
            continue
        if lower == b"content-length":
            has_length = True
        lines.append(name + b": " + value)
    if not has_length and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: " + str(len(body)).encode("ascii"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
