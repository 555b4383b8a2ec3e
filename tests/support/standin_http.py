"""The HTTP server the FCM and JPush stand-ins share, in a thread of the caller or in a child process.

The server is a raw asyncio protocol on the httptools parser (uvloop when installed) with HTTP/1.1
keep-alive: the push bench needs well over 5,000 requests/s from one core, which neither the stdlib
``http.server`` nor an ASGI stack on this class of machine delivers. A stand-in only says what it answers
(:class:`StandinApp`); everything about sockets, threads and processes is here, once.

Three ways to serve one: :class:`ThreadedStandin` (a background thread of the test), :func:`spawn_child` and
:class:`StandinChild` (``python -m <module>`` in a child process, for benches that must not share the
caller's GIL), and :func:`serve_in_foreground` (that child's ``main``).
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import httptools

from tests.support.processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]

#: A stand-in's answer: HTTP status, JSON payload, extra headers.
Answer = tuple[int, dict[str, Any], dict[str, str]]


class StandinApp(Protocol):
    """What the HTTP server needs of a stand-in: its answer to each request, and how long to wait before it."""

    latency_s: float

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one request: (status, JSON payload, extra headers)."""
        ...


AppT = TypeVar("AppT", bound=StandinApp)


def bound_socket(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on ``host:port`` (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets a server come up again on the same port while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def new_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _encode_response(status: int, payload: dict[str, Any], extra: dict[str, str], keep_alive: bool) -> bytes:
    body = json.dumps(payload).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json; charset=UTF-8",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    lines += [f"{name}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _HttpConnection(asyncio.Protocol):
    """One client connection: parse requests with httptools, answer them in order."""

    def __init__(self, app: StandinApp, connections: set[_HttpConnection]) -> None:
        self._app = app
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Track the connection so the server can drop it when it goes down."""
        # uvloop's transports are not asyncio.Transport subclasses, only compatible with them.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._connections.discard(self)
        self._transport = None

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a malformed request closes the connection."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def close(self) -> None:
        """Drop the connection."""
        if self._transport is not None:
            self._transport.close()

    def on_message_begin(self) -> None:
        """httptools callback: a new request starts."""
        self._url = b""
        self._headers = {}
        self._body = []

    def on_url(self, url: bytes) -> None:
        """httptools callback: (part of) the request target."""
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """httptools callback: one header."""
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        """httptools callback: (part of) the body."""
        self._body.append(body)

    def on_message_complete(self) -> None:
        """httptools callback: the request is complete; answer it (after the simulated latency)."""
        method = self._parser.get_method().decode("latin-1")
        path, _, query = self._url.decode("latin-1").partition("?")
        # The query string rides along as a pseudo-header: only the JPush stand-in reads one (?count=).
        headers = {**self._headers, ":query": query} if query else self._headers
        status, payload, extra = self._app.dispatch(method, path, headers, b"".join(self._body))
        keep_alive = self._parser.should_keep_alive()
        response = _encode_response(status, payload, extra, keep_alive)
        if self._app.latency_s:
            # HTTP/1.1 clients wait for each answer before the next request, so delaying keeps order.
            asyncio.get_running_loop().call_later(self._app.latency_s, self._write, response, keep_alive)
        else:
            self._write(response, keep_alive)

    def _write(self, response: bytes, keep_alive: bool) -> None:
        if self._transport is None:
            return
        self._transport.write(response)
        if not keep_alive:
            self._transport.close()


class Listener:
    """The listening socket and live connections of one serving period, driven by one event loop."""

    def __init__(self, app: StandinApp, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.connections: set[_HttpConnection] = set()
        self._loop = loop
        factory: Callable[[], _HttpConnection] = lambda: _HttpConnection(app, self.connections)  # noqa: E731
        self._server = loop.run_until_complete(loop.create_server(factory, sock=sock, backlog=4096))

    def shutdown(self) -> None:
        """Stop accepting and drop every connection (called on the loop's thread)."""
        self._server.close()
        for connection in list(self.connections):
            connection.close()
        self._loop.stop()


class Served(abc.ABC):
    """A server a test holds as ``with Server(...) as server``: started on entry, stopped on exit."""

    @abc.abstractmethod
    def start(self) -> Self:
        """Start serving; returns the server."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving (connections are refused from now on)."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ThreadedStandin(Served, Generic[AppT]):
    """Serves a stand-in app from a background thread on ``host``; stop and start again keep the port."""

    #: The serving thread's name (seen in thread dumps of a hung test).
    thread_name = "standin"

    def __init__(self, app: AppT, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Root URL of the stand-in."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start serving (on the same port as before, after :meth:`stop`)."""
        sock = bound_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        loop = new_loop()
        listener = Listener(self.app, sock, loop)
        thread = threading.Thread(target=self._run, args=(loop,), name=self.thread_name, daemon=True)
        self._loop, self._listener, self._thread = loop, listener, thread
        thread.start()
        return self

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()
        # Let the transports finish closing before the loop goes away.
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    def stop(self) -> None:
        """Stop serving and close every connection."""
        if self._loop is None or self._listener is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._listener.shutdown)
        self._thread.join(timeout=10)
        self._loop = self._listener = self._thread = None


class StandinChild:
    """A stand-in running in a child process (so it does not compete for the caller's GIL)."""

    def __init__(self, proc: subprocess.Popen[str], host: str, port: int) -> None:
        self.proc = proc
        self.base_url = f"http://{host}:{port}"

    def stats(self) -> dict[str, Any]:
        """The child's counters."""
        with urllib.request.urlopen(self.base_url + "/_standin/stats", timeout=10) as resp:
            stats: dict[str, Any] = json.load(resp)
        return stats

    def reset(self) -> None:
        """Clear the child's recorded state."""
        req = urllib.request.Request(self.base_url + "/_standin/reset", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=10).close()  # an error status raises HTTPError

    def close(self) -> None:
        """Terminate the child."""
        stop_process(self.proc, timeout=10)


def spawn_child(module: str, args: list[str], *, host: str, label: str) -> tuple[subprocess.Popen[str], int]:
    """Start ``python -m <module> --host <host> --port 0 <args>`` and wait until it prints ``READY <port>``."""
    cmd = [sys.executable, "-m", module, "--host", host, "--port", "0", *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"{label} stand-in did not start: {line!r}")
    return proc, int(line[1])


def child_arguments(description: str | None) -> argparse.ArgumentParser:
    """The command line every stand-in's ``main`` takes: ``--host``, ``--port``, ``--latency-ms``."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0] if description else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    return parser


def serve_in_foreground(app: StandinApp, host: str, port: int) -> None:
    """Serve ``app`` on this thread until killed; prints ``READY <port>`` once listening."""
    sock = bound_socket(host, port)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    Listener(app, sock, loop)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    loop.run_forever()
