"""A keep-alive HTTP/1.1 session for the ``jpush`` SDK: pooled stdlib connections under its ``requests`` calls.

The SDK sends every call through ``JPush.session.request(...)`` (a ``requests.Session``) and reads the
``requests.Response`` it gets back; its URL building, error mapping (``Unauthorized``, ``JPushFailure``) and
answer parsing stay as they are. What this replaces is the stack between: requests' per-call preparation
(settings merged with the environment, hooks, cookies, adapter look-up, CA path checks) and urllib3's
pool cost about three times the CPU of the exchange itself, about 0.9 ms per push on the bench machine
(bench/bench_push.py). Here one request is one ``sendall`` of head and body on a kept-alive connection
(TCP_NODELAY), the answer parsed by ``http.client``, and the connection goes back to a per-origin pool.

As requests with ``max_retries=0`` (how the channel mounted it), nothing is retried here: a connection the
server closed while idle is found before use (as urllib3 does) and replaced; any other transport error
reaches the SDK, which reports it as ``APIConnectionException``/``APIRequestException`` (the channel retries
the messages later). Proxies are not spoken here: the channel keeps requests where one applies.
"""

from __future__ import annotations

import base64
import collections
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

_Origin = tuple[str, str, int]


class _Connection:
    """One kept-alive connection to an origin, used by one thread at a time."""

    def __init__(self, origin: _Origin, timeout: float | None, context: ssl.SSLContext | None) -> None:
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except TimeoutError as exc:
            # The SDK reports a connect timeout as APIConnectionException (nothing was sent).
            raise requests.exceptions.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=host)
            self.sock: socket.socket = sock
        except BaseException:
            sock.close()
            raise

    def dropped(self) -> bool:
        """Whether the server closed the idle connection (readable means EOF or stray bytes: unusable)."""
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def exchange(
        self, data: bytes, method: str, timeout: float | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes, bool]:
        """Send one serialised request; (status, reason, headers, body, whether the connection must close)."""
        self.sock.settimeout(timeout)
        self.sock.sendall(data)
        response = http.client.HTTPResponse(self.sock, method=method)
        try:
            response.begin()
            body = response.read()
        finally:
            response.close()
        return response.status, response.reason, response.getheaders(), body, response.will_close

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()


class KeepAliveSession:
    """The part of ``requests.Session`` the jpush SDK uses: ``auth``, ``request()`` and ``close()``."""

    def __init__(self, *, max_idle: int, ssl_context: ssl.SSLContext | None = None) -> None:
        """Keep up to ``max_idle`` idle connections per origin (one per worker thread of the channel)."""
        if max_idle < 1:
            raise ValueError("max_idle must be >= 1")
        self.auth: tuple[str, str] | None = None
        self._max_idle = max_idle
        self._context = ssl_context
        self._idle: dict[_Origin, collections.deque[_Connection]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._auth_header: tuple[tuple[str, str], str] | None = None

    def request(
        self,
        method: str,
        url: str,
        data: str | bytes | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **unsupported: Any,
    ) -> requests.Response:
        """Send one request as ``requests.Session.request`` would and return a ``requests.Response``."""
        if unsupported:
            raise TypeError(f"KeepAliveSession.request does not take {sorted(unsupported)}")
        if self._closed:
            raise RuntimeError("session closed")
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        origin: _Origin = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
        target = parts.path or "/"
        query = "&".join(
            q
            for q in (parts.query, urlencode([(k, v) for k, v in (params or {}).items() if v is not None]))
            if q
        )
        if query:
            target += "?" + query
        body = data.encode() if isinstance(data, str) else (data or b"")
        host = parts.netloc.rpartition("@")[2]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        authorization = self._authorization()
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        data_out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        connection = self._acquire(origin, timeout)
        reusable = False
        try:
            status, reason, raw_headers, content, will_close = connection.exchange(data_out, method, timeout)
            reusable = not will_close
        finally:
            self._release(origin, connection, reusable)
        response = requests.Response()
        response.status_code = status
        response.reason = reason
        response.headers = CaseInsensitiveDict(raw_headers)
        response._content = content
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = url
        return response

    def close(self) -> None:
        """Close every idle connection; one in use closes when its request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _authorization(self) -> str | None:
        # The SDK sets ``auth`` once, as requests' (user, password) pair: HTTP basic auth.
        if self.auth is None:
            return None
        cached = self._auth_header
        if cached is None or cached[0] != self.auth:
            user, password = self.auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            cached = self._auth_header = (self.auth, f"Basic {token}")
        return cached[1]

    def _acquire(self, origin: _Origin, timeout: float | None) -> _Connection:
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None:
                return _Connection(origin, timeout, self._context)
            if not connection.dropped():
                return connection
            connection.close()

    def _release(self, origin: _Origin, connection: _Connection, reusable: bool) -> None:
        if reusable:
            with self._lock:
                if not self._closed:
                    idle = self._idle.setdefault(origin, collections.deque())
                    if len(idle) < self._max_idle:
                        idle.append(connection)
                        return
        connection.close()
