"""The push channel: FCM HTTP v1 through the firebase-admin SDK.

Build one :class:`PushChannel` per worker process with :func:`build_push_channel` and keep it: the
firebase App holds the cached OAuth2 access token, the channel its event loop and keep-alive
connections. Build it after the fork (Celery ``worker_process_init``), never in the parent, because
event loops and connections do not survive ``fork``.

Messages go out with the SDK's ``messaging.send_each_async`` (firebase-admin ≥ 6.6): the SDK encodes
and validates each message, authenticates (its google-auth flow on httpx) and maps FCM's answers to
its exceptions. Under its httpx client sits :class:`notifications.http1.LeanHttp1Transport` instead
of httpcore's pool, whose per-request bookkeeping cost more CPU than the rest of the send together
(bench/bench_push.py has the figures), the SDK's auth flow reuses one token-refresh request, and the
client (:class:`_SendClient`) hands the SDK's one send call straight to the transport, without httpx's
per-request URL parsing, header objects, cookie jar and redirect handling (a third of the CPU left).
``send_each`` (one thread and one requests call per message), the way before, cost about twice the
CPU per message of this; the SDK's ``send_each_async`` on its own httpx pool about seven times.

Settings the lead wires from ``backend.config``: ``GONGPING_FCM_CREDENTIALS`` (service-account JSON
path; unset = push off) and ``GONGPING_FCM_ENDPOINT`` (base URL of an on-prem relay or the test
stand-in; unset = ``https://fcm.googleapis.com``). The OAuth2 token endpoint is the service
account's ``token_uri``, which google-auth honours, so a relay deployment points that at its own
token service in the JSON.
"""

from __future__ import annotations

import asyncio
import json as json_module
import logging
import os
import ssl
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import httpx
from firebase_admin import _http_client, credentials, exceptions, messaging

from notifications.channels import DeliveryResult, DeliveryStatus, OutgoingMessage, apns_collapse_id
from notifications.http1 import LeanHttp1Transport
from notifications.policy import retry_after_seconds, retry_delay

log = logging.getLogger(__name__)

# messaging.send_each_async refuses more than 500 messages per call.
FCM_SEND_EACH_LIMIT = 500
# Requests in flight (keep-alive connections) per channel. On a LAN relay 20 already keep a CPU busy;
# 100 covers FCM's ~30-100 ms round trips from China at a few thousand messages per second.
DEFAULT_CONCURRENCY = 100
DEFAULT_TIMEOUT_S = 10.0
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


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
    """Sends :class:`OutgoingMessage` batches as FCM notifications with ``messaging.send_each_async``."""

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
        # One event loop per channel, driven by whichever thread sends; one send at a time.
        self._send_lock = threading.Lock()
        self._auth_request = google.auth.transport.requests.Request()
        self.send_url, self.transport = _configure_transport(app, endpoint, concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = os.getpid()
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
        if pending:
            with self._send_lock:
                loop = self._event_loop()
                for start in range(0, len(pending), FCM_SEND_EACH_LIMIT * 4):
                    # Checked per slice: a long batch can outlive the one-hour access token.
                    part = pending[start : start + FCM_SEND_EACH_LIMIT * 4]
                    messages = [batch[i] for i in part]
                    auth_error = self._ensure_access_token()
                    sent = (
                        [
                            _retry(m, None, quota=False, code="AUTH_UNAVAILABLE", detail=auth_error)
                            for m in messages
                        ]
                        if auth_error is not None
                        else loop.run_until_complete(self._send_all(messages))
                    )
                    results.update(zip(part, sent, strict=True))
        ordered = [results[first_by_key[message.dedupe_key]] for message in batch]
        if ordered:
            counts = Counter(result.status.value for result in ordered)
            log.info("push batch of %d: %s", len(ordered), dict(counts))
        return ordered

    def close(self) -> None:
        """Release the connections, the event loop and the firebase App (token cache)."""
        if self._closed:
            return
        self._closed = True
        with self._send_lock:
            if self._loop is not None and os.getpid() == self._pid:
                client = messaging._get_messaging_service(self._app)._async_client.async_client
                self._loop.run_until_complete(client.aclose())
                self._loop.close()
            self._loop = None
        firebase_admin.delete_app(self._app)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise RuntimeError("push channel closed")
        if os.getpid() != self._pid:
            raise RuntimeError("push channel used across fork: build one per process, after the fork")
        if self._loop is None:
            self._loop = _new_event_loop()
        return self._loop

    def _ensure_access_token(self) -> str | None:
        # Refresh once here: the SDK's auth flow would otherwise refresh an expired token per request.
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

    async def _send_all(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        # All calls at once: the transport holds the requests in flight to ``concurrency``.
        chunks = [messages[i : i + FCM_SEND_EACH_LIMIT] for i in range(0, len(messages), FCM_SEND_EACH_LIMIT)]
        answers = await asyncio.gather(*(self._send_chunk(chunk) for chunk in chunks))
        return [result for answer in answers for result in answer]

    async def _send_chunk(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        fcm_messages = [to_fcm_message(message) for message in messages]
        try:
            response = await messaging.send_each_async(fcm_messages, dry_run=self._dry_run, app=self._app)
        except ValueError as exc:
            # The SDK encodes the whole list before sending, so one malformed message fails them all.
            if len(messages) == 1:
                return [_failed(messages[0], "INVALID_MESSAGE", str(exc))]
            singles = await asyncio.gather(*(self._send_chunk([message]) for message in messages))
            return [result for single in singles for result in single]
        except exceptions.FirebaseError as exc:
            return [classify_error(message, exc) for message in messages]
        return [
            _delivered(message, item.message_id) if item.success else classify_error(message, item.exception)
            for message, item in zip(messages, response.responses, strict=True)
        ]


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _check_concurrency(concurrency: int) -> None:
    if not 1 <= concurrency <= FCM_SEND_EACH_LIMIT:
        raise ValueError(f"concurrency must be within 1..{FCM_SEND_EACH_LIMIT}")


def _check_endpoint(endpoint: str | None) -> None:
    if not endpoint:
        return
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"FCM endpoint must be an http(s) base URL, got {endpoint!r}")


def _configure_transport(
    app: firebase_admin.App, endpoint: str | None, concurrency: int
) -> tuple[str, httpx.AsyncBaseTransport]:
    """Point the SDK's messaging service at ``endpoint`` and give its async client our transport."""
    # firebase-admin 7.x builds the URL once per app in _MessagingService.__init__ from the class
    # constant FCM_URL into the instance attribute _fcm_url, and its async client (HttpxAsyncClient)
    # keeps the httpx.AsyncClient in _async_client; no option overrides either, so this app's service
    # instance is fetched and the two attributes replaced.
    service = messaging._get_messaging_service(app)
    wrapper = getattr(service, "_async_client", None)
    if (
        not isinstance(getattr(service, "_fcm_url", None), str)
        or not isinstance(wrapper, _http_client.HttpxAsyncClient)
        or not isinstance(getattr(wrapper, "_async_client", None), httpx.AsyncClient)
        or not hasattr(service, "send_each_async")
        or not hasattr(_http_client.GoogleAuthCredentialFlow, "apply_auth_headers")
    ):
        raise RuntimeError("unsupported firebase-admin version: messaging service internals changed")
    if endpoint:
        _check_endpoint(endpoint)
        service._fcm_url = f"{endpoint.rstrip('/')}/v1/projects/{app.project_id}/messages:send"
    send_url = cast(str, service._fcm_url)
    transport = _transport_for(send_url, concurrency)
    old = wrapper._async_client
    # The SDK's own client, less two things: its retry transport retried 500/503 four times inside
    # the send, sleeping through Retry-After and stalling the batch (the caller reschedules RETRY
    # results instead), and httpcore's pool (see notifications/http1.py). The SDK's auth flow,
    # headers and timeout stay. trust_env is off because the proxy is settled here, once.
    wrapper._async_client = _SendClient(
        auth=_ReusedRequestAuthFlow(service._credential),
        headers=old.headers,
        timeout=old.timeout,
        transport=transport,
        trust_env=False,
    )
    return send_url, transport


_SHORT_PATH_ARGS = frozenset({"headers", "json", "timeout"})
# As the SDK's GoogleAuthCredentialFlow: a 401 refreshes the token and resends, at most twice.
_REFRESH_STATUS = frozenset({401})
_MAX_REFRESHES = 2


class _ReusedRequestAuthFlow(_http_client.GoogleAuthCredentialFlow):  # type: ignore[misc]
    """The SDK's google-auth flow for httpx, with one token-refresh request object for all requests.

    The SDK's ``auth_flow`` builds a ``google.auth.transport.requests.Request`` (a requests.Session with
    its adapters and pools) for every message although it is used only to refresh the token: building it
    and collecting its garbage was over a quarter of the client's CPU per message (bench/bench_push.py).
    Same steps otherwise: apply the token; on 401 refresh it and resend, twice at most.
    """

    def __init__(self, credential: Any) -> None:
        super().__init__(credential)
        self._auth_request = google.auth.transport.requests.Request()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Apply the access token; on 401 refresh it and send again (at most twice)."""
        original_headers = request.headers.copy()
        attempts = 0
        while True:
            request.headers = original_headers.copy()
            self.apply_auth_headers(request, self._auth_request)
            response = yield request
            if response.status_code not in _REFRESH_STATUS or attempts >= _MAX_REFRESHES:
                return
            self._credential.refresh(self._auth_request)
            attempts += 1


class _SendClient(httpx.AsyncClient):
    """The SDK's httpx client with a short path for the one call ``send_each_async`` makes per message.

    ``request("post", url, headers=..., json=..., timeout=...)`` goes straight to the transport: the same
    headers (the client's, the SDK's, google-auth's), JSON body and timeout as httpx would send, and the same
    401 refresh-and-resend as the SDK's auth flow, without what httpx does around every request that FCM
    never needs (URL parsing and merging each time, a case-insensitive header object rebuilt at every step,
    cookie extraction through urllib's cookie jar, redirects, the auth generator). That work was half of
    the sender's CPU per message (bench/bench_push.py). Any other call takes httpx's own path.
    """

    def __init__(
        self, *, auth: _ReusedRequestAuthFlow, transport: httpx.AsyncBaseTransport, **kwargs: Any
    ) -> None:
        super().__init__(auth=auth, transport=transport, **kwargs)
        self._flow = auth
        self._send_transport = transport
        self._base_headers = {name.lower(): value for name, value in self.headers.items()}
        self._urls: dict[str, httpx.URL] = {}
        self._timeouts: dict[float, dict[str, float | None]] = {}

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """The short path for (method, str URL, headers, JSON, numeric timeout); httpx's for anything else."""
        json = kwargs.get("json")
        timeout = kwargs.get("timeout")
        if (
            not kwargs.keys() <= _SHORT_PATH_ARGS
            or json is None
            or not isinstance(url, str)
            or not isinstance(timeout, int | float)
        ):
            return await super().request(method, url, **kwargs)
        headers: dict[str, str] = kwargs.get("headers") or {}
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) >= 16:  # one send URL per app; never let a caller grow it
                self._urls.clear()
            target = self._urls[url] = httpx.URL(url)
        timeouts = self._timeouts.get(timeout)
        if timeouts is None:
            timeouts = self._timeouts[timeout] = httpx.Timeout(timeout).as_dict()
        # As httpx encodes json=: compact, UTF-8, no NaN.
        body = json_module.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        prepared = dict(self._base_headers)
        prepared.update((name.lower(), value) for name, value in headers.items())
        prepared["host"] = target.netloc.decode("ascii")
        prepared["content-length"] = str(len(body))
        prepared["content-type"] = "application/json"
        credential = self._flow._credential
        method = method.upper()
        refreshes = 0
        while True:
            sent = dict(prepared)
            # What the SDK's auth flow does to each request: refresh if expired, then the auth headers.
            credential.before_request(self._flow._auth_request, method, url, sent)
            request = httpx.Request(
                method, target, headers=list(sent.items()), content=body, extensions={"timeout": timeouts}
            )
            response = await self._send_transport.handle_async_request(request)
            response.request = request
            # The lean transport answers with the body read; httpx's own (behind a proxy) streams it.
            await response.aread()
            if response.status_code not in _REFRESH_STATUS or refreshes >= _MAX_REFRESHES:
                return response
            credential.refresh(self._flow._auth_request)
            refreshes += 1


def _transport_for(send_url: str, concurrency: int) -> httpx.AsyncBaseTransport:
    """The lean transport, or httpx's own where a proxy applies (the lean one speaks no CONNECT)."""
    parts = urlsplit(send_url)
    ca_bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
    )
    context: ssl.SSLContext | None = None
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else httpx.create_ssl_context()
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        log.info("FCM requests go through the proxy %s", proxy)
        return httpx.AsyncHTTPTransport(
            proxy=proxy, limits=limits, retries=1, verify=context if context is not None else True
        )
    return LeanHttp1Transport(max_connections=concurrency, ssl_context=context)


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
                "apns-collapse-id": apns_collapse_id(message.collapse_key),
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


def _retry_after_seconds(response: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if response is None:
        return None
    return retry_after_seconds(response.headers.get("Retry-After") or "", datetime.now(UTC))
