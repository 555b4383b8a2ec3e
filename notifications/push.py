"""The push channel: FCM HTTP v1 through the firebase-admin SDK.

Build one :class:`PushChannel` per worker process with :func:`build_push_channel` and keep it: the
firebase App holds the cached OAuth2 access token and the keep-alive connection pool. Build it after
the fork (Celery ``worker_process_init``), never in the parent, because sessions and pools do not
survive ``fork``.

Settings the lead wires from ``backend.config``: ``GONGPING_FCM_CREDENTIALS`` (service-account JSON
path; unset = push off) and ``GONGPING_FCM_ENDPOINT`` (base URL of an on-prem relay or the test
stand-in; unset = ``https://fcm.googleapis.com``). The OAuth2 token endpoint is the service
account's ``token_uri``, which google-auth honours, so a relay deployment points that at its own
token service in the JSON.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import requests
import requests.adapters
import requests.utils
from firebase_admin import credentials, exceptions, messaging
from urllib3.util import Retry

from notifications.channels import DeliveryResult, DeliveryStatus, OutgoingMessage
from notifications.policy import retry_delay

log = logging.getLogger(__name__)

# messaging.send_each refuses more than 500 messages per call.
FCM_SEND_EACH_LIMIT = 500
# send_each starts one thread per message, so the chunk size is the number of requests in flight.
# 100 keeps a prefork worker well under container pid limits while saturating a CPU (see bench/).
DEFAULT_CONCURRENCY = 100
DEFAULT_TIMEOUT_S = 10.0
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_MAX_RETRY_AFTER_S = 24 * 3600.0


def build_push_channel(
    credentials_path: str | os.PathLike[str] | None,
    endpoint: str | None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PushChannel | None:
    """The push channel, or None (logged) when no credentials are configured; a bad credentials file raises."""
    # Raising on a configured-but-broken file: a typo must not silently make required notices inbox-only.
    if not credentials_path:
        log.warning("push notifications disabled: no FCM service-account credentials configured")
        return None
    _check_endpoint(endpoint)
    _check_concurrency(concurrency)
    certificate = credentials.Certificate(os.fspath(credentials_path))
    # A unique name lets several channels (tests, a relay migration) coexist in one process.
    app = firebase_admin.initialize_app(
        certificate, options={"httpTimeout": timeout_s}, name=f"gongping-push-{uuid.uuid4().hex[:12]}"
    )
    try:
        channel = PushChannel(app, endpoint=endpoint, concurrency=concurrency)
    except BaseException:
        firebase_admin.delete_app(app)
        raise
    log.info("push channel ready: project=%s url=%s", app.project_id, channel.send_url)
    return channel


class PushChannel:
    """Sends :class:`OutgoingMessage` batches as FCM notifications with ``messaging.send_each``."""

    name = "push"

    def __init__(
        self,
        app: firebase_admin.App,
        *,
        endpoint: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        dry_run: bool = False,
    ) -> None:
        """Wrap an initialised firebase App; ``endpoint`` replaces https://fcm.googleapis.com."""
        _check_concurrency(concurrency)
        self._app = app
        self._concurrency = concurrency
        self._dry_run = dry_run
        self._credential = app.credential.get_credential()
        self._token_lock = threading.Lock()
        self._auth_request = google.auth.transport.requests.Request()
        self.send_url = _configure_transport(app, endpoint, concurrency)
        self._closed = False

    def send(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send ``batch``; one result per message in order, repeated dedupe keys sent once."""
        first_by_key: dict[str, int] = {}
        results: dict[int, DeliveryResult] = {}
        pending: list[int] = []
        for index, message in enumerate(batch):
            if message.dedupe_key in first_by_key:
                continue
            first_by_key[message.dedupe_key] = index
            if message.token is None or message.platform is None:
                results[index] = DeliveryResult(
                    message.dedupe_key, DeliveryStatus.FAILED, error_code="NO_TOKEN"
                )
            else:
                pending.append(index)
        for start in range(0, len(pending), self._concurrency):
            chunk = pending[start : start + self._concurrency]
            messages = [batch[i] for i in chunk]
            # Checked per chunk: a long batch can outlive the one-hour access token.
            auth_error = self._ensure_access_token()
            sent = (
                [_retry(m, None, quota=False, code="AUTH_UNAVAILABLE", detail=auth_error) for m in messages]
                if auth_error is not None
                else self._send_chunk(messages)
            )
            results.update(zip(chunk, sent, strict=True))
        ordered = [results[first_by_key[message.dedupe_key]] for message in batch]
        if ordered:
            counts = Counter(result.status.value for result in ordered)
            log.info("push batch of %d: %s", len(ordered), dict(counts))
        return ordered

    def close(self) -> None:
        """Release the firebase App (connection pool, token cache)."""
        if not self._closed:
            self._closed = True
            firebase_admin.delete_app(self._app)

    def _ensure_access_token(self) -> str | None:
        # Refresh once here: send_each's threads would otherwise all refresh an expired token at once.
        if self._credential.valid:
            return None
        with self._token_lock:
            if self._credential.valid:
                return None
            try:
                self._credential.refresh(self._auth_request)
            except google.auth.exceptions.GoogleAuthError as exc:
                log.error("FCM access token refresh failed: %s", exc)
                return f"{type(exc).__name__}: {exc}"
        return None

    def _send_chunk(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        fcm_messages = [to_fcm_message(message) for message in messages]
        try:
            response = messaging.send_each(fcm_messages, dry_run=self._dry_run, app=self._app)
        except ValueError as exc:
            # The SDK encodes the whole list before sending, so one malformed message fails them all.
            if len(messages) == 1:
                return [_failed(messages[0], "INVALID_MESSAGE", str(exc))]
            return [result for message in messages for result in self._send_chunk([message])]
        except exceptions.FirebaseError as exc:
            return [classify_error(message, exc) for message in messages]
        return [
            _delivered(message, item.message_id) if item.success else classify_error(message, item.exception)
            for message, item in zip(messages, response.responses, strict=True)
        ]


def _check_concurrency(concurrency: int) -> None:
    if not 1 <= concurrency <= FCM_SEND_EACH_LIMIT:
        raise ValueError(f"concurrency must be within 1..{FCM_SEND_EACH_LIMIT}")


def _check_endpoint(endpoint: str | None) -> None:
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"FCM endpoint must be an http(s) base URL, got {endpoint!r}")


def _configure_transport(app: firebase_admin.App, endpoint: str | None, pool_size: int) -> str:
    """Point the SDK's messaging client at ``endpoint`` and size its HTTP pool; returns the send URL."""
    # firebase-admin 7.x builds the URL once per app in _MessagingService.__init__ from the class
    # constant FCM_URL into the instance attribute _fcm_url; no option overrides it, so this app's
    # service instance is fetched and its attribute replaced.
    service = messaging._get_messaging_service(app)
    client = getattr(service, "_client", None)
    if not isinstance(getattr(service, "_fcm_url", None), str) or client is None:
        raise RuntimeError("unsupported firebase-admin version: messaging service internals changed")
    if endpoint:
        _check_endpoint(endpoint)
        service._fcm_url = f"{endpoint.rstrip('/')}/v1/projects/{app.project_id}/messages:send"
    send_url = cast(str, service._fcm_url)
    parts = urlsplit(send_url)
    session = cast(requests.Session, client.session)
    # One pooled keep-alive connection per in-flight request (the SDK's http:// default keeps 10, so a
    # relay would see a new TCP/TLS handshake for most messages). Status retries are off: the SDK's
    # default retries 500/503 four times inside the sending thread, sleeping through Retry-After,
    # which stalls the whole batch; the caller reschedules RETRY results instead. A refused connect
    # never reached the server, so retrying it once is safe.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=1,
        pool_maxsize=pool_size,
        max_retries=Retry(
            total=None,
            connect=1,
            read=False,
            redirect=False,
            status=0,
            other=0,
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=False,
        ),
    )
    session.mount(f"{parts.scheme}://{parts.netloc}/", adapter)
    # With trust_env, requests re-reads proxy variables and ~/.netrc on every request, which costs more
    # CPU than the rest of the send on a busy fan-out. Resolve them once instead.
    session.proxies.update(requests.utils.get_environ_proxies(send_url))
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if ca_bundle:
        session.verify = ca_bundle
    session.trust_env = False
    return send_url


def to_fcm_message(message: OutgoingMessage) -> messaging.Message:
    """The firebase-admin message for one device, with only its platform's delivery options."""
    android = apns = webpush = None
    high = message.priority == "high"
    if message.platform == "android":
        android = messaging.AndroidConfig(
            collapse_key=message.collapse_key,
            priority=message.priority,
            ttl=message.ttl_seconds,
            # The tag makes a newer notice replace the older one in the tray, not only while offline.
            notification=messaging.AndroidNotification(tag=message.collapse_key),
        )
    elif message.platform == "ios":
        # apns-expiration 0 means "deliver now or never", matching FCM's ttl 0.
        expiration = int(time.time()) + message.ttl_seconds if message.ttl_seconds else 0
        apns = messaging.APNSConfig(
            headers={
                "apns-collapse-id": _apns_collapse_id(message.collapse_key),
                "apns-expiration": str(expiration),
                "apns-priority": "10" if high else "5",
                "apns-push-type": "alert",
            },
            payload=messaging.APNSPayload(aps=messaging.Aps(sound="default", thread_id=message.collapse_key)),
        )
    elif message.platform == "web":
        webpush = messaging.WebpushConfig(
            headers={"TTL": str(message.ttl_seconds), "Urgency": "high" if high else "normal"}
        )
    return messaging.Message(
        token=message.token,
        data=dict(message.data),
        notification=messaging.Notification(title=message.title, body=message.body),
        android=android,
        apns=apns,
        webpush=webpush,
    )


def _apns_collapse_id(collapse_key: str) -> str:
    # APNs rejects collapse ids over 64 bytes; a digest keeps long keys distinct instead of truncating.
    if len(collapse_key.encode()) <= 64:
        return collapse_key
    return hashlib.sha256(collapse_key.encode()).hexdigest()[:64]


def classify_error(message: OutgoingMessage, exc: BaseException | None) -> DeliveryResult:
    """Map a firebase-admin error for ``message`` to what the caller should do about it."""
    if not isinstance(exc, exceptions.FirebaseError):
        return _failed(message, "UNKNOWN", repr(exc))
    code = _fcm_error_code(exc)
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return DeliveryResult(
            message.dedupe_key, DeliveryStatus.INVALID_TOKEN, error_code=code, detail=str(exc)
        )
    if isinstance(exc, exceptions.InvalidArgumentError):
        violations = _field_violations(exc)
        # FCM reports a bad token as INVALID_ARGUMENT too; only a violation on another field is our bug.
        if any(field != "message.token" for field in violations):
            return _failed(message, code, f"{exc} ({', '.join(violations)})")
        return DeliveryResult(
            message.dedupe_key, DeliveryStatus.INVALID_TOKEN, error_code=code, detail=str(exc)
        )
    if isinstance(exc, exceptions.ResourceExhaustedError):
        return _retry(message, exc, quota=True, code=code, detail=str(exc))
    if isinstance(
        exc,
        exceptions.UnavailableError
        | exceptions.InternalError
        | exceptions.DeadlineExceededError
        | exceptions.UnknownError,
    ):
        return _retry(message, exc, quota=False, code=code, detail=str(exc))
    # Authentication, permission and APNs/web-push credential problems need an operator, not a retry.
    log.error("FCM rejected a message with %s: %s", code, exc)
    return _failed(message, code, str(exc))


def _delivered(message: OutgoingMessage, message_id: str | None) -> DeliveryResult:
    return DeliveryResult(message.dedupe_key, DeliveryStatus.DELIVERED, provider_message_id=message_id)


def _failed(message: OutgoingMessage, code: str, detail: str) -> DeliveryResult:
    return DeliveryResult(message.dedupe_key, DeliveryStatus.FAILED, error_code=code, detail=detail)


def _retry(
    message: OutgoingMessage,
    exc: exceptions.FirebaseError | None,
    *,
    quota: bool,
    code: str,
    detail: str | None,
) -> DeliveryResult:
    retry_after = _retry_after_seconds(exc.http_response if exc is not None else None)
    delay = retry_delay(
        message.attempt, retry_after_s=retry_after, quota=quota, jitter_key=message.dedupe_key
    )
    return DeliveryResult(
        message.dedupe_key, DeliveryStatus.RETRY, retry_after_s=delay, error_code=code, detail=detail
    )


def _error_body(exc: exceptions.FirebaseError) -> dict[str, Any]:
    response = exc.http_response
    if response is None:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _fcm_error_code(exc: exceptions.FirebaseError) -> str:
    for detail in _error_body(exc).get("details", []):
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR_TYPE and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(exc.code)


def _field_violations(exc: exceptions.FirebaseError) -> list[str]:
    fields: list[str] = []
    for detail in _error_body(exc).get("details", []):
        if isinstance(detail, dict) and detail.get("@type") == _BAD_REQUEST_TYPE:
            fields.extend(
                str(v.get("field", "")) for v in detail.get("fieldViolations", []) if isinstance(v, dict)
            )
    return fields


def _retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if response is None:
        return None
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), _MAX_RETRY_AFTER_S)
