"""A local stand-in for the FCM HTTP v1 send API and Google's OAuth2 token endpoint (tests and bench).

The server is a raw asyncio protocol on the httptools parser (uvloop when installed) with HTTP/1.1
keep-alive: the bench needs well over 5,000 requests/s from one core, which neither the stdlib
``http.server`` nor an ASGI stack on this class of machine delivers. It behaves like FCM as far as
firebase-admin can tell:

* ``POST {token_path}`` answers a JWT-bearer grant with ``{access_token, expires_in, token_type}``;
  the service account's ``token_uri`` points here (see :func:`write_service_account`).
* ``POST /v1/projects/{project}/messages:send`` checks the bearer token, records the message and
  answers ``{"name": ...}`` or an FCM v1 error body chosen by the registration token's prefix
  (see :data:`ERRORS_BY_PREFIX`); ``flaky-`` tokens fail ``flaky_failures`` times, then succeed.
* ``GET /_standin/stats`` and ``POST /_standin/reset`` let another process (the bench) read and
  clear the state; in-process tests use the :class:`FcmStandin` attributes directly.

Run it in its own process with ``python -m tests.support.fcm_standin --port 0`` (prints ``READY <port>``)
or through :func:`spawn_standin_process`; in-process with :class:`StandinServer`, which can also go
down (connections refused) and come back up on the same port.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import itertools
import json
import re
import secrets
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import httptools
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.processes import stop_process

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_PROJECT = "gongping-test"
REPO_ROOT = Path(__file__).resolve().parents[2]

Answer = tuple[int, dict[str, Any], dict[str, str]]

_SEND_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One FCM v1 error answer: HTTP status, google.rpc status, FCM errorCode and message."""

    http_status: int
    rpc_status: str
    fcm_code: str | None
    message: str
    field_violation: str | None = None


ERRORS_BY_PREFIX: dict[str, ErrorSpec] = {
    "unregistered-": ErrorSpec(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    "invalid-": ErrorSpec(
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "mismatch-": ErrorSpec(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    "quota-": ErrorSpec(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for 'Send requests'."),
    "unavailable-": ErrorSpec(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
    "internal-": ErrorSpec(500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    # A payload problem carries google.rpc.BadRequest details and no FcmError, unlike a bad token.
    "badpayload-": ErrorSpec(
        400,
        "INVALID_ARGUMENT",
        None,
        "Invalid value at 'message.android.ttl'",
        field_violation="message.android.ttl",
    ),
    "apnsauth-": ErrorSpec(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS."),
}
UNAVAILABLE = ERRORS_BY_PREFIX["unavailable-"]
UNAUTHENTICATED = ErrorSpec(401, "UNAUTHENTICATED", None, "Request had invalid authentication credentials.")


def error_body(spec: ErrorSpec) -> dict[str, Any]:
    """The JSON body FCM v1 answers for ``spec``."""
    details: list[dict[str, Any]] = []
    if spec.fcm_code is not None:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": spec.fcm_code})
    if spec.field_violation is not None:
        details.append(
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": spec.field_violation, "description": spec.message}],
            }
        )
    error: dict[str, Any] = {"code": spec.http_status, "message": spec.message, "status": spec.rpc_status}
    if details:
        error["details"] = details
    return {"error": error}


def _b64url_json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


class StandinApp(Protocol):
    """What the HTTP server needs of a stand-in: its answer to each request, and how long to wait before it."""

    latency_s: float

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one request: (status, JSON payload, extra headers)."""
        ...


AppT = TypeVar("AppT", bound=StandinApp)


class FcmStandin:
    """The fake FCM: request handling and recorded state; all state access goes through ``lock``."""

    def __init__(
        self,
        project_id: str = DEFAULT_PROJECT,
        *,
        token_path: str = "/token",
        retry_after: str | None = "7",
        flaky_failures: int = 2,
        latency_s: float = 0.0,
        record: bool = True,
        token_ttl_s: int = 3600,
    ) -> None:
        self.project_id = project_id
        self.token_path = token_path
        self.retry_after = retry_after
        self.flaky_failures = flaky_failures
        self.latency_s = latency_s
        self.record = record
        self.token_ttl_s = token_ttl_s
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.token_claims: list[dict[str, Any]] = []
        self.send_requests = 0
        self.delivered = 0
        self.errors_by_code: dict[str, int] = {}
        self._issued_tokens: set[str] = set()
        self._flaky_seen: dict[str, int] = {}
        self._fail_next = 0
        self._fail_next_spec = UNAVAILABLE
        self._ids = itertools.count(1)

    def fail_next(self, count: int, spec: ErrorSpec = UNAVAILABLE) -> None:
        """Answer the next ``count`` send requests with ``spec`` whatever their token, then recover."""
        with self.lock:
            self._fail_next = count
            self._fail_next_spec = spec

    def reset(self) -> None:
        """Forget recorded messages, counters and pending failures; issued access tokens stay valid."""
        with self.lock:
            self.messages.clear()
            self.request_headers.clear()
            self.token_claims.clear()
            self.send_requests = 0
            self.delivered = 0
            self.errors_by_code.clear()
            self._flaky_seen.clear()
            self._fail_next = 0

    def stats(self) -> dict[str, Any]:
        """Counters as plain JSON-able data."""
        with self.lock:
            return {
                "send_requests": self.send_requests,
                "delivered": self.delivered,
                "recorded": len(self.messages),
                "token_requests": len(self.token_claims),
                "errors_by_code": dict(self.errors_by_code),
            }

    def recorded_tokens(self) -> list[str]:
        """Registration tokens of the recorded (accepted) messages, in arrival order."""
        with self.lock:
            return [str(m.get("token") or m.get("fid")) for m in self.messages]

    def message_for(self, token: str) -> dict[str, Any]:
        """The recorded message sent to ``token`` (KeyError when none arrived)."""
        with self.lock:
            for message in self.messages:
                if token in (message.get("token"), message.get("fid")):
                    return message
        raise KeyError(token)

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one request: (status, JSON payload, extra headers)."""
        if method == "POST":
            match = _SEND_PATH.match(path)
            if match is not None:
                return self._send(match["project"], headers, body)
            if path == self.token_path:
                return self._token(body)
            if path == "/_standin/reset":
                self.reset()
                return 200, {}, {}
        if method == "GET" and path == "/_standin/stats":
            return 200, self.stats(), {}
        return (
            404,
            {"error": {"code": 404, "message": f"no route {method} {path}", "status": "NOT_FOUND"}},
            {},
        )

    def _token(self, body: bytes) -> Answer:
        form = urllib.parse.parse_qs(body.decode())
        assertion = form.get("assertion", [""])[0]
        if form.get("grant_type", [""])[0] != JWT_BEARER_GRANT or assertion.count(".") != 2:
            return 400, {"error": "invalid_grant", "error_description": "bad grant"}, {}
        claims = _b64url_json(assertion.split(".")[1])
        access_token = "standin-" + secrets.token_urlsafe(24)
        with self.lock:
            self.token_claims.append(claims)
            self._issued_tokens.add(access_token)
        return 200, {"access_token": access_token, "expires_in": self.token_ttl_s, "token_type": "Bearer"}, {}

    def _send(self, project: str, headers: dict[str, str], body: bytes) -> Answer:
        auth = headers.get("authorization", "")
        with self.lock:
            self.send_requests += 1
            if not auth.startswith("Bearer ") or auth[7:] not in self._issued_tokens:
                return self._fail(UNAUTHENTICATED)
            if project != self.project_id:
                denied = ErrorSpec(403, "PERMISSION_DENIED", None, f"Permission denied on project {project}")
                return self._fail(denied)
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail(self._fail_next_spec)
            message: dict[str, Any] = json.loads(body).get("message", {})
            # firebase-admin 7.x can address a device by registration token or installation id (fid).
            token = message.get("token") or message.get("fid")
            if not isinstance(token, str) or not token:
                return self._fail(
                    ErrorSpec(400, "INVALID_ARGUMENT", None, "Recipient of the message is not set.")
                )
            data = message.get("data", {})
            if not all(isinstance(v, str) for v in data.values()):
                return self._fail(
                    ErrorSpec(400, "INVALID_ARGUMENT", None, "data values must be strings", "message.data")
                )
            for prefix, spec in ERRORS_BY_PREFIX.items():
                if token.startswith(prefix):
                    return self._fail(spec)
            if token.startswith("flaky-"):
                seen = self._flaky_seen.get(token, 0)
                if seen < self.flaky_failures:
                    self._flaky_seen[token] = seen + 1
                    return self._fail(UNAVAILABLE)
            self.delivered += 1
            if self.record:
                self.messages.append(message)
                self.request_headers.append(headers)
            return 200, {"name": f"projects/{project}/messages/{next(self._ids)}"}, {}

    def _fail(self, spec: ErrorSpec) -> Answer:
        code = spec.fcm_code or spec.rpc_status
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
        extra = (
            {"Retry-After": self.retry_after} if spec.http_status in (429, 503) and self.retry_after else {}
        )
        return spec.http_status, error_body(spec), extra


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Lets come_up() rebind the same port while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _new_loop() -> asyncio.AbstractEventLoop:
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


class _Listener:
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


class ThreadedServer(Generic[AppT]):
    """Serves a stand-in app from a background thread on an event loop of its own (the FCM and JPush
    stand-ins' in-process servers)."""

    thread_name = "standin"

    def __init__(self, app: AppT, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: _Listener | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Root URL to pass as the service's endpoint."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start serving (on the same port as before, after :meth:`stop`)."""
        sock = _bound_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        loop = _new_loop()
        listener = _Listener(self.app, sock, loop)
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class StandinServer(ThreadedServer[FcmStandin]):
    """Serves an :class:`FcmStandin` from a background thread; can go down (refuse connections) and up."""

    thread_name = "fcm-standin"

    def __init__(self, app: FcmStandin | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app if app is not None else FcmStandin(), host, port)

    @property
    def token_uri(self) -> str:
        """URL of the OAuth2 token endpoint, for the service account JSON."""
        return self.base_url + self.app.token_path

    def go_down(self) -> None:
        """Close the listener and all connections: clients now get 'connection refused'."""
        self.stop()

    def come_up(self) -> None:
        """Serve again on the same port."""
        self.start()


@functools.cache
def _private_key_pem() -> str:
    # One key per process: RSA generation costs tens of milliseconds and tests need many accounts.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


def write_service_account(path: Path, token_uri: str, project_id: str = DEFAULT_PROJECT) -> Path:
    """Write a fake service-account JSON whose ``token_uri`` points at the stand-in; returns ``path``."""
    email = f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": _private_key_pem(),
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return path


class ChildServer:
    """A stand-in running in a child process (so it does not compete for the caller's GIL)."""

    def __init__(self, proc: subprocess.Popen[str], host: str, port: int) -> None:
        self.proc = proc
        self.base_url = f"http://{host}:{port}"

    def stats(self) -> dict[str, Any]:
        """The child's counters."""
        with urllib.request.urlopen(self.base_url + "/_standin/stats", timeout=10) as resp:
            stats: dict[str, Any] = json.load(resp)
        return stats

    def close(self) -> None:
        """Terminate the child."""
        stop_process(self.proc, timeout=10)


def spawn_child(cmd: list[str], what: str) -> tuple[subprocess.Popen[str], int]:
    """Start a stand-in's ``python -m`` command and wait for its ``READY <port>`` line."""
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"{what} stand-in did not start: {line!r}")
    return proc, int(line[1])


class StandinProcess(ChildServer):
    """The FCM stand-in in a child process."""

    def __init__(self, proc: subprocess.Popen[str], host: str, port: int, token_path: str) -> None:
        super().__init__(proc, host, port)
        self.token_uri = self.base_url + token_path

    def reset(self) -> None:
        """Clear the child's recorded state."""
        req = urllib.request.Request(self.base_url + "/_standin/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


def spawn_standin_process(
    *,
    host: str = "127.0.0.1",
    latency_ms: float = 0.0,
    record: bool = False,
    project_id: str = DEFAULT_PROJECT,
) -> StandinProcess:
    """Start ``python -m tests.support.fcm_standin`` and wait until it listens."""
    cmd = [sys.executable, "-m", "tests.support.fcm_standin", "--host", host, "--port", "0"]
    cmd += ["--latency-ms", str(latency_ms), "--project", project_id]
    if record:
        cmd.append("--record")
    proc, port = spawn_child(cmd, "FCM")
    return StandinProcess(proc, host, port, "/token")


def serve_foreground(app: StandinApp, host: str, port: int) -> None:
    """Serve ``app`` on this thread until killed; prints ``READY <port>`` once listening (what
    :func:`spawn_child` waits for)."""
    sock = _bound_socket(host, port)
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    _Listener(app, sock, loop)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    loop.run_forever()


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in in the foreground; prints ``READY <port>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--record", action="store_true", help="keep every message (memory grows)")
    args = parser.parse_args(argv)
    app = FcmStandin(args.project, latency_s=args.latency_ms / 1000, record=args.record)
    serve_foreground(app, args.host, args.port)


if __name__ == "__main__":
    main()
