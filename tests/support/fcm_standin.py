"""A local stand-in for the FCM HTTP v1 send API and Google's OAuth2 token endpoint (tests and bench).

It serves over real HTTP with the stand-ins' shared server (httptools, keep-alive; see ``standin_http.py``)
and behaves like FCM as far as firebase-admin can tell:

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

import base64
import functools
import itertools
import json
import re
import secrets
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.standin_http import (
    Answer,
    StandinChild,
    ThreadedStandin,
    child_arguments,
    serve_in_foreground,
    spawn_child,
)

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_PROJECT = "gongping-test"
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


class StandinServer(ThreadedStandin[FcmStandin]):
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


class StandinProcess(StandinChild):
    """The FCM stand-in in a child process; ``token_uri`` is its OAuth2 token endpoint."""

    def __init__(self, proc: subprocess.Popen[str], host: str, port: int, token_path: str) -> None:
        super().__init__(proc, host, port)
        self.token_uri = self.base_url + token_path


def spawn_standin_process(
    *,
    host: str = "127.0.0.1",
    latency_ms: float = 0.0,
    record: bool = False,
    project_id: str = DEFAULT_PROJECT,
) -> StandinProcess:
    """Start ``python -m tests.support.fcm_standin`` and wait until it listens."""
    args = ["--latency-ms", str(latency_ms), "--project", project_id]
    if record:
        args.append("--record")
    proc, port = spawn_child("tests.support.fcm_standin", args, host=host, label="FCM")
    return StandinProcess(proc, host, port, "/token")


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in in the foreground; prints ``READY <port>`` once listening."""
    parser = child_arguments(__doc__)
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    parser.add_argument("--record", action="store_true", help="keep every message (memory grows)")
    args = parser.parse_args(argv)
    app = FcmStandin(args.project, latency_s=args.latency_ms / 1000, record=args.record)
    serve_in_foreground(app, args.host, args.port)


if __name__ == "__main__":
    main()
