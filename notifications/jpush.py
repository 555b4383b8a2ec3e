"""The JPush channel (极光推送): Android phones without Google services, through JPush's official ``jpush`` SDK.

Most Android phones sold in mainland China have no Google services, so FCM never reaches them; JPush does,
through the phone makers' own push channels. A device registered with ``provider=jpush`` carries a JPush
registration id instead of an FCM token.

How a batch goes out (JPush v3 push API, ``POST {base}/v3/push``, basic auth ``app_key:master_secret``):

* One push carries one payload to up to :data:`JPUSH_MAX_IDS` registration ids. Messages whose rendered
  content is identical (title, body, data, collapse key, time to live, priority) are grouped into one push.
  A message whose content is its own (most are: the deep link names the instrument or interview) goes out
  in one push of its own, or — with ``batch_single`` (JPush's "batch single push" API, a VIP feature that
  JPush switches on per app) — together with up to 999 others in one ``POST {base}/v3/push/batch/regid/single``
  (the SDK's ``batch_push_by_regid``), which answers per message. The SDK is synchronous, so the requests of
  a batch run on this channel's thread pool, ``concurrency`` at a time: the caller's thread (a Celery task,
  or an event loop that hands the send to a thread) only waits for the answers. Under the SDK, its
  ``requests.Session`` is replaced by :class:`notifications.keepalive.KeepAliveSession` (kept-alive stdlib
  connections, one per thread): requests' own per-call work cost three times the exchange itself.
* JPush answers a push as a whole. ``1011`` ("no push target meets the conditions") means none of its ids
  is a live registration of this app: each device is dead (``INVALID_TOKEN``; JPush clears ids unused for
  255 days). A push to several ids that succeeds says nothing about each id, so those ids are checked with
  the SDK's delivery-status query (``POST {report}/v3/status/message``, up to 1,000 ids): status ``2`` —
  the id does not belong to this app — is a dead device too. A failed check leaves the pushes delivered.
* ``429`` / code ``2002`` (rate limit) and ``5xx`` / codes ``1000``, ``1030`` retry after JPush's
  ``X-Rate-Limit-Reset`` (or ``Retry-After``) or the usual backoff; a lost connection retries too.
  Authentication (401), a refused app key (403) or payload (400) are failures for an operator to look at.

The SDK has no base-URL option: it builds every URL from a zone in ``jpush.common.ZONES``. A configured
base URL becomes a zone of this process (``{base}/v3/push``, ``{base}/v3/report/``, the layout of JPush's
Beijing zone ``https://bjapi.push.jiguang.cn``), which is how tests point the SDK at the local stand-in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import ssl
import threading
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import jpush
import requests
from jpush import common as jpush_common
from requests.adapters import HTTPAdapter

from notifications.channels import (
    MAX_TTL_SECONDS,
    DeliveryResult,
    DeliveryStatus,
    OutgoingMessage,
    apns_collapse_id,
)
from notifications.keepalive import KeepAliveSession
from notifications.policy import MAX_RETRY_AFTER_S, retry_after_seconds, retry_delay

log = logging.getLogger(__name__)

#: Registration ids one push may carry (JPush v3: "push up to 1000 at once"); also the status query's limit.
JPUSH_MAX_IDS = 1000
#: JPush keeps an offline message for at most 10 days.
JPUSH_MAX_TTL_SECONDS = 10 * 24 * 3600
DEFAULT_CONCURRENCY = 32
DEFAULT_TIMEOUT_S = 10.0
#: Error codes of the v3 push API (docs: "Push API v3", "Call Return").
NO_TARGET = 1011  # no push target meets the conditions: the ids are not live registrations of this app
RATE_LIMITED = 2002  # call frequency exceeds the app's limit (HTTP 429)
_TRANSIENT_CODES = frozenset({1000, 1030})  # internal error (500), internal service timeout (503)
#: Delivery-status answer for "this registration id does not belong to the application".
STATUS_NOT_THIS_APP = 2
_zone_lock = threading.Lock()


def build_jpush_channel(
    app_key: str | None,
    master_secret: str | None,
    base_url: str | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    apns_production: bool = True,
    batch_single: bool = False,
) -> JPushChannel:
    """The JPush channel; a missing key or secret raises (a switched-on JPush must not silently do nothing)."""
    if not app_key or not master_secret:
        raise ValueError("JPush is on but its app key or master secret is not configured")
    return JPushChannel(
        app_key,
        master_secret,
        base_url=base_url,
        concurrency=concurrency,
        timeout_s=timeout_s,
        apns_production=apns_production,
        batch_single=batch_single,
    )


def register_zone(base_url: str) -> str:
    """A zone of the SDK whose push and report URLs live under ``base_url``; returns its name."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"JPush base URL must be an http(s) base URL, got {base_url!r}")
    root = base_url.rstrip("/")
    name = "GONGPING_" + hashlib.sha256(root.encode()).hexdigest()[:12].upper()
    with _zone_lock:
        jpush_common.ZONES[name] = {
            "PUSH": f"{root}/v3/",
            "REPORT": f"{root}/v3/report/",
            "DEVICE": f"{root}/v3/device/",
            "ALIAS": f"{root}/v3/device/aliases/",
            "TAG": f"{root}/v3/device/tags/",
            "SCHEDULE": f"{root}/v3/push/schedules/",
            "ADMIN": f"{root}/v1/",
        }
    return name


class JPushChannel:
    """Sends :class:`OutgoingMessage` batches to JPush registration ids with the ``jpush`` SDK."""

    name = "jpush"

    def __init__(
        self,
        app_key: str,
        master_secret: str,
        *,
        base_url: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        apns_production: bool = True,
        batch_single: bool = False,
    ) -> None:
        """A client of JPush (or of ``base_url``) with ``concurrency`` pushes in flight."""
        if not 1 <= concurrency <= 256:
            raise ValueError("concurrency must be within 1..256")
        zone = register_zone(base_url) if base_url else "default"
        # The SDK logs every refused push at ERROR with its body; the outcome is logged here, once per batch.
        logging.getLogger("jpush").setLevel(logging.CRITICAL)
        self._client = jpush.JPush(app_key, master_secret, timeout=timeout_s, zone=zone)
        self.push_url = jpush_common.get_url("push", zone) + "push"
        self._apns_production = apns_production
        self._batch_single = batch_single
        self._client.session = _session_for(self.push_url, app_key, master_secret, concurrency)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="jpush")
        self._pid = os.getpid()
        self._closed = False

    def send(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Send ``batch``; one result per message in order, repeated dedupe keys sent once."""
        if self._closed:
            raise RuntimeError("JPush channel closed")
        if os.getpid() != self._pid:
            raise RuntimeError("JPush channel used across fork: build one per process, after the fork")
        first_by_key: dict[str, int] = {}
        results: dict[int, DeliveryResult] = {}
        groups: dict[str, list[int]] = {}
        for index, message in enumerate(batch):
            if message.dedupe_key in first_by_key:
                continue
            first_by_key[message.dedupe_key] = index
            if message.token is None:
                results[index] = DeliveryResult(
                    message.dedupe_key, DeliveryStatus.FAILED, error_code="NO_TOKEN"
                )
                continue
            groups.setdefault(content_key(message), []).append(index)
        shared = [indexes for indexes in groups.values() if len(indexes) > 1 or not self._batch_single]
        alone = [indexes[0] for indexes in groups.values() if len(indexes) == 1 and self._batch_single]
        work: list[tuple[list[int], bool]] = [
            (indexes[start : start + JPUSH_MAX_IDS], False)
            for indexes in shared
            for start in range(0, len(indexes), JPUSH_MAX_IDS)
        ]
        work += [
            (alone[start : start + JPUSH_MAX_IDS], True) for start in range(0, len(alone), JPUSH_MAX_IDS)
        ]
        answers = self._pool.map(
            lambda item: (self._send_singles if item[1] else self._send_chunk)([batch[i] for i in item[0]]),
            work,
        )
        chunks = [part for part, _singles in work]
        for part, answer in zip(chunks, answers, strict=True):
            results.update(zip(part, answer, strict=True))
        ordered = [results[first_by_key[message.dedupe_key]] for message in batch]
        if ordered:
            counts = Counter(result.status.value for result in ordered)
            log.info("jpush batch of %d in %d pushes: %s", len(ordered), len(chunks), dict(counts))
        return ordered

    def close(self) -> None:
        """Stop the thread pool and close the connections."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() == self._pid:
            self._pool.shutdown(wait=True)
        self._client.session.close()

    def _send_chunk(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """One push of one payload to the chunk's ids; its answer mapped back to each message."""
        ids = list(dict.fromkeys(str(m.token) for m in messages))
        push = self._client.create_push()
        try:
            build_push(push, messages[0], ids, apns_production=self._apns_production)
            response = push.send()
        except Exception as exc:
            return _not_sent(messages, exc, "push")
        payload = response.payload if isinstance(response.payload, dict) else {}
        msg_id = str(payload.get("msg_id") or "") or None
        dead = self._dead_ids(msg_id, ids) if len(ids) > 1 and msg_id else set()
        return [
            DeliveryResult(
                m.dedupe_key,
                DeliveryStatus.INVALID_TOKEN,
                error_code="NOT_THIS_APP",
                detail="JPush delivery status 2: registration id does not belong to the app",
            )
            if m.token in dead
            else DeliveryResult(m.dedupe_key, DeliveryStatus.DELIVERED, provider_message_id=msg_id)
            for m in messages
        ]

    def _send_singles(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Up to 1,000 messages of different content in one batch-single push; JPush answers each by its cid."""
        push = self._client.create_push()
        cids: list[str] = []
        get_cid = push.get_cid

        def capture(count: int, type: str | None = None) -> Any:  # the SDK's own parameter names
            # batch_push_by_regid pairs the i-th cid it fetched with the i-th payload; keep them to read the answer.
            answer = get_cid(count, type)
            cids.extend(answer.payload.get("cidlist", []))
            return answer

        push.get_cid = capture
        try:
            payloads = [single_payload(m, apns_production=self._apns_production) for m in messages]
            response = push.batch_push_by_regid(payloads)
        except Exception as exc:
            return _not_sent(messages, exc, "batch push")
        answers = response.payload if isinstance(response.payload, dict) else {}
        return [
            _single_result(message, answers.get(cids[index]) if index < len(cids) else None)
            for index, message in enumerate(messages)
        ]

    def _dead_ids(self, msg_id: str, ids: list[str]) -> set[str]:
        """Ids of a multi-id push that JPush says do not belong to this app (its per-id status query)."""
        report = self._client.create_report()
        try:
            answer = report.get_status_message(int(msg_id) if msg_id.isdigit() else msg_id, ids)
        except (
            jpush_common.JPushFailure,
            jpush_common.Unauthorized,
            jpush_common.APIConnectionException,
            jpush_common.APIRequestException,
        ) as exc:
            # The push went out; a dead id among them is found on its next push instead.
            log.warning("JPush status query for msg %s failed: %s", msg_id, exc)
            return set()
        except Exception:
            # Never let the check undo what was sent: the caller would give every row back for sending again.
            log.exception("JPush status query for msg %s failed unexpectedly", msg_id)
            return set()
        statuses = answer.payload if isinstance(answer.payload, dict) else {}
        return {
            rid
            for rid, status in statuses.items()
            if isinstance(status, dict) and status.get("status") == STATUS_NOT_THIS_APP
        }


def content_key(message: OutgoingMessage) -> str:
    """Messages with the same key render to the same JPush payload and may share one push."""
    return json.dumps(
        [
            message.title,
            message.body,
            sorted(message.data.items()),
            message.collapse_key,
            message.ttl_seconds,
            message.priority,
        ],
        ensure_ascii=False,
    )


def _single_result(message: OutgoingMessage, answer: Any) -> DeliveryResult:
    """One message's outcome in a batch-single answer: ``{"msg_id": ...}`` or ``{"error": {code, message}}``."""
    if not isinstance(answer, dict):
        # No answer for its cid: JPush did not take it; sending it again is safe.
        return _retry(message, None, quota=False, code="NO_ANSWER", detail="no result for the message's cid")
    error = answer.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        detail = f"batch single: {error.get('message')}"
        if code == NO_TARGET:
            return DeliveryResult(
                message.dedupe_key, DeliveryStatus.INVALID_TOKEN, error_code=str(code), detail=detail
            )
        if code == RATE_LIMITED:
            return _retry(message, None, quota=True, code=str(code), detail=detail)
        if code in _TRANSIENT_CODES:
            return _retry(message, None, quota=False, code=str(code), detail=detail)
        log.error("JPush rejected a message of a batch with %s: %s", code, detail)
        return _failed(message, str(code), detail)
    msg_id = answer.get("msg_id")
    return DeliveryResult(
        message.dedupe_key, DeliveryStatus.DELIVERED, provider_message_id=str(msg_id) if msg_id else None
    )


def notification_of(message: OutgoingMessage) -> dict[str, Any]:
    """The JPush notification object of ``message``: the same alert on every platform, data as extras."""
    extras = dict(message.data)
    high = message.priority == "high"
    return cast(
        dict[str, Any],
        jpush.notification(
            alert=message.body,
            android=jpush.android(
                alert=message.body,
                title=message.title,
                extras=extras,
                # Display priority -2..2: required and urgent notices sit above ordinary ones.
                priority=1 if high else 0,
            ),
            ios=jpush.ios(
                alert={"title": message.title, "body": message.body},
                sound="default",
                thread_id=message.collapse_key,
                extras=extras,
            ),
        ),
    )


def options_of(message: OutgoingMessage, *, apns_production: bool) -> dict[str, Any]:
    """The push options: time to live (JPush keeps at most 10 days), APNs environment and collapse id."""
    # Not jpush.options(): that helper wraps the dict in another {"options": ...}.
    return {
        "time_to_live": min(message.ttl_seconds, JPUSH_MAX_TTL_SECONDS, MAX_TTL_SECONDS),
        "apns_production": apns_production,
        "apns_collapse_id": apns_collapse_id(message.collapse_key),
        # Echoed back by JPush; lets a log line be matched to the request.
        "sendno": int.from_bytes(hashlib.sha256(message.dedupe_key.encode()).digest()[:3], "big") or 1,
    }


def build_push(push: Any, message: OutgoingMessage, ids: list[str], *, apns_production: bool) -> None:
    """Fill an SDK ``Push`` with ``message`` (as rendered for every id of the push) and its audience."""
    push.audience = jpush.audience(jpush.registration_id(*ids))
    # The id decides the platform (its third character); "all" lets JPush route each to its own.
    push.platform = jpush.all_
    push.notification = notification_of(message)
    push.options = options_of(message, apns_production=apns_production)


def single_payload(message: OutgoingMessage, *, apns_production: bool) -> dict[str, Any]:
    """One entry of a batch-single push: the message to its one registration id (``target``)."""
    return {
        "platform": jpush.all_,
        "target": message.token,
        "notification": notification_of(message),
        "options": options_of(message, apns_production=apns_production),
    }


def classify_failure(message: OutgoingMessage, exc: Any) -> DeliveryResult:
    """Map a ``JPushFailure`` (HTTP status + JPush error code) for ``message`` to what to do next."""
    response = getattr(exc, "response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    code = exc.error_code if isinstance(exc.error_code, int) else None
    label = str(code) if code is not None else f"HTTP_{status}"
    detail = f"HTTP {status}: {exc.details or exc.error}"
    if code == NO_TARGET:
        return DeliveryResult(
            message.dedupe_key, DeliveryStatus.INVALID_TOKEN, error_code=label, detail=detail
        )
    if code == RATE_LIMITED or status == 429:
        return _retry(message, response, quota=True, code=label, detail=detail)
    if status >= 500 or code in _TRANSIENT_CODES:
        return _retry(message, response, quota=False, code=label, detail=detail)
    log.error("JPush rejected a push with %s: %s", label, detail)
    return _failed(message, label, detail)


def _not_sent(messages: Sequence[OutgoingMessage], exc: Exception, what: str) -> list[DeliveryResult]:
    """Each message's result when the SDK raised ``exc`` for the ``what`` (a push, a batch push) carrying them."""
    if isinstance(exc, ValueError):
        # The SDK validates the payload before sending: our bug, not the devices'.
        return [_failed(m, "INVALID_MESSAGE", str(exc)) for m in messages]
    if isinstance(exc, jpush_common.Unauthorized):
        log.error("JPush refused our app key and master secret: %s", exc)
        return [_failed(m, "UNAUTHORIZED", str(exc)) for m in messages]
    if isinstance(exc, jpush_common.JPushFailure):
        return [classify_failure(m, exc) for m in messages]
    if isinstance(exc, jpush_common.APIConnectionException | jpush_common.APIRequestException):
        # The SDK folds every transport error into these two: nothing is known to be sent.
        return [_retry(m, None, quota=False, code="UNAVAILABLE", detail=str(exc)) for m in messages]
    # The SDK fails to parse some error bodies (JSON without "error"); the push was not accepted (not 2xx).
    # Reported, not raised: another chunk's delivered pushes must still be recorded.
    log.error("JPush %s failed unexpectedly", what, exc_info=exc)
    return [_retry(m, None, quota=False, code="UNEXPECTED", detail=repr(exc)) for m in messages]


def _failed(message: OutgoingMessage, code: str, detail: str) -> DeliveryResult:
    return DeliveryResult(message.dedupe_key, DeliveryStatus.FAILED, error_code=code, detail=detail)


def _retry(
    message: OutgoingMessage, response: Any, *, quota: bool, code: str, detail: str | None
) -> DeliveryResult:
    delay = retry_delay(
        message.attempt,
        retry_after_s=_retry_after_seconds(response, quota=quota),
        quota=quota,
        jitter_key=message.dedupe_key,
    )
    return DeliveryResult(
        message.dedupe_key, DeliveryStatus.RETRY, retry_after_s=delay, error_code=code, detail=detail
    )


def _retry_after_seconds(response: Any, *, quota: bool) -> float | None:
    """Seconds from JPush's ``X-Rate-Limit-Reset`` (rate limit: seconds to the next window) or ``Retry-After``."""
    if response is None:
        return None
    headers = getattr(response, "headers", None) or {}
    # JPush sends the rate-limit headers on every answer; the window's reset only matters when it is the limit.
    reset = str(headers.get("X-Rate-Limit-Reset") or "").strip() if quota else ""
    if reset.isdigit():
        return min(float(reset), MAX_RETRY_AFTER_S)
    return retry_after_seconds(str(headers.get("Retry-After") or ""), datetime.now(UTC))


def _session_for(
    url: str, app_key: str, master_secret: str, concurrency: int
) -> KeepAliveSession | requests.Session:
    """The SDK's HTTP session: pooled keep-alive connections, or requests where a proxy applies.

    One connection per worker thread, and proxy and CA settled once here instead of on every request.
    """
    parts = urlsplit(url)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        # KeepAliveSession speaks no CONNECT: requests, with its pool sized to the threads. Its default keeps
        # 10 connections per host and opens (then drops) more past that; and with trust_env it reads the
        # proxy environment and .netrc on every request.
        session = requests.Session()
        session.auth = (app_key, master_secret)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=concurrency, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = False
        session.proxies = {parts.scheme: proxy}
        if ca_bundle:
            session.verify = ca_bundle
        log.info("JPush requests go through the proxy %s", proxy)
        return session
    # As requests verifies: the bundle the environment names, else certifi's.
    context = ssl.create_default_context(cafile=ca_bundle or requests.utils.DEFAULT_CA_BUNDLE_PATH)
    keepalive = KeepAliveSession(max_idle=concurrency, ssl_context=context)
    keepalive.auth = (app_key, master_secret)
    return keepalive
