"""A local stand-in for JPush's v3 push API and its delivery-status query (tests and bench).

It serves over real HTTP with the FCM stand-in's server (httptools, keep-alive; see ``fcm_standin.py``) and
answers as JPush does, as far as the ``jpush`` SDK can tell:

* Every request needs HTTP basic auth ``app_key:master_secret``; otherwise ``401`` with code ``1004``.
* ``POST /v3/push`` checks the push object (platform, audience by ``registration_id`` — 1 to 1,000
  well-formed ids —, notification with its android/ios parts, options) and answers
  ``{"sendno", "msg_id"}``; a malformed object ``400`` with ``1002``/``1003``/``1005``/``1009``, as JPush.
  Ids that are not live registrations of the app (:meth:`JPushStandin.unregister`) are dropped silently
  from a push, as JPush drops them; when none is left the answer is ``400`` code ``1011``.
* ``GET /v3/push/cid?count=n`` hands out cids, and ``POST /v3/push/batch/regid/single`` (JPush's VIP
  "batch single push") takes ``{"pushlist": {cid: push with "target": id}}`` and answers each cid with
  ``{"msg_id"}`` or ``{"error": {code, message}}`` (``1011`` for an id that is not live, ``1003`` for an
  unknown cid or a malformed push).
* ``POST /v3/report/status/message`` answers each id's delivery status for a msg_id: ``0`` delivered,
  ``2`` not a registration of this app, ``3`` a registration of the app that was not a target.
* :meth:`JPushStandin.fail_next` answers the next pushes with a rate limit (``429``/``2002`` and the
  ``X-Rate-Limit-*`` headers JPush sends), an internal error (``500``/``1000``) or a service timeout
  (``503``/``1030``).
* ``GET /_standin/stats`` and ``POST /_standin/reset`` for another process (the bench).

Run it alone with ``python -m tests.support.jpush_standin --port 0`` (prints ``READY <port>``).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.support.fcm_standin import Answer, ChildServer, ThreadedServer, serve_foreground, spawn_child

APP_KEY = "7d431e42dfa6a6d693ac2d04"
MASTER_SECRET = "5e987ac6d2e04d95a9d8f0d1"
REGISTRATION_ID = re.compile(r"^[01][0-9a][0-2][0-9a-f]{8}(?:[0-9a-f]{8})?$")
_PLATFORMS = frozenset({"android", "ios", "winphone", "hmos", "quickapp"})
_PUSH_KEYS = frozenset({"platform", "audience", "notification", "message", "sms_message", "options", "cid"})
_AUDIENCE_KEYS = frozenset({"tag", "tag_and", "tag_not", "alias", "registration_id", "segment", "abtest"})
RATE_LIMIT = 600


@dataclass(frozen=True, slots=True)
class Failure:
    """One programmed failure: HTTP status, JPush code and message."""

    http_status: int
    code: int
    message: str


FAILURES: dict[str, Failure] = {
    "rate": Failure(429, 2002, "Request times of the app_key exceed the limit of current time window"),
    "internal": Failure(500, 1000, "Server Internal error"),
    "timeout": Failure(503, 1030, "Internal service timeout"),
}


def _error(status: int, code: int, message: str, msg_id: str | None = None) -> Answer:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if msg_id is not None:
        body["msg_id"] = msg_id
    return status, body, {}


class JPushStandin:
    """The fake JPush: request handling and recorded state; all state access goes through ``lock``."""

    def __init__(
        self,
        app_key: str = APP_KEY,
        master_secret: str = MASTER_SECRET,
        *,
        latency_s: float = 0.0,
        record: bool = True,
        rate_limit_reset_s: int = 2,
    ) -> None:
        self.app_key = app_key
        self.master_secret = master_secret
        self.latency_s = latency_s
        self.record = record
        self.rate_limit_reset_s = rate_limit_reset_s
        self.lock = threading.Lock()
        self._auth = "Basic " + base64.b64encode(f"{app_key}:{master_secret}".encode()).decode()
        self._ids = itertools.count(int(time.time()) * 1000)
        self.reset()

    def reset(self) -> None:
        """Forget pushes, counters, dead ids and pending failures."""
        with self.lock:
            self.pushes: list[dict[str, Any]] = []
            self.deliveries: list[tuple[str, str]] = []  # (registration id, msg_id)
            self.push_requests = 0
            self.status_requests = 0
            self.delivered = 0
            self.errors_by_code: dict[str, int] = {}
            self._dead: set[str] = set()
            self._targets: dict[str, set[str]] = {}
            self._fail_next: list[Failure] = []
            self._cid_pool: set[str] = set()
            self.batch_requests = 0

    def unregister(self, *registration_ids: str) -> None:
        """Make these ids unknown to JPush (uninstalled, or inactive for 255 days)."""
        with self.lock:
            self._dead.update(registration_ids)

    def fail_next(self, count: int, kind: str = "timeout") -> None:
        """Answer the next ``count`` pushes with the failure ``kind`` (a key of :data:`FAILURES`)."""
        with self.lock:
            self._fail_next = [FAILURES[kind]] * count

    def stats(self) -> dict[str, Any]:
        """Counters as plain JSON-able data."""
        with self.lock:
            return {
                "push_requests": self.push_requests,
                "status_requests": self.status_requests,
                "batch_requests": self.batch_requests,
                "delivered": self.delivered,
                "errors_by_code": dict(self.errors_by_code),
            }

    def delivered_to(self, registration_id: str) -> list[dict[str, Any]]:
        """The pushes that reached ``registration_id``, oldest first."""
        with self.lock:
            return [
                push
                for push in self.pushes
                if registration_id in push["audience"].get("registration_id", [])
                and registration_id not in self._dead
            ]

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """Answer one request: (status, JSON payload, extra headers)."""
        if path.startswith("/_standin/"):
            if method == "POST" and path == "/_standin/reset":
                self.reset()
                return 200, {}, {}
            if method == "GET" and path == "/_standin/stats":
                return 200, self.stats(), {}
        if headers.get("authorization") != self._auth:
            return self._count(_error(401, 1004, "Authen failed"))
        if path == "/v3/push":
            if method != "POST":
                return self._count(_error(405, 1001, "Only support HTTP Post method"))
            return self._with_rate_headers(self._push(body))
        if path == "/v3/report/status/message" and method == "POST":
            return self._status(body)
        if path == "/v3/push/cid" and method == "GET":
            return self._cids(headers.get(":query", ""))
        if path == "/v3/push/batch/regid/single" and method == "POST":
            return self._with_rate_headers(self._batch_single(body))
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}, {}

    def _with_rate_headers(self, answer: Answer) -> Answer:
        status, payload, extra = answer
        remaining = 0 if status == 429 else RATE_LIMIT - 1
        extra = {
            "X-Rate-Limit-Limit": str(RATE_LIMIT),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Reset": str(self.rate_limit_reset_s),
            **extra,
        }
        return status, payload, extra

    def _count(self, answer: Answer) -> Answer:
        status, payload, _extra = answer
        error = payload.get("error") if isinstance(payload, dict) else None
        code = str(error.get("code")) if isinstance(error, dict) else f"HTTP_{status}"
        with self.lock:
            self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
        return answer

    def _push(self, body: bytes) -> Answer:
        with self.lock:
            self.push_requests += 1
            failure = self._fail_next.pop(0) if self._fail_next else None
        if failure is not None:
            return self._count(_error(failure.http_status, failure.code, failure.message))
        try:
            push = json.loads(body)
        except ValueError:
            return self._count(_error(400, 1003, "Invalid json"))
        problem = check_push(push)
        if problem is not None:
            return self._count(problem)
        ids: list[str] = push["audience"]["registration_id"]
        msg_id = str(next(self._ids))
        with self.lock:
            live = [rid for rid in dict.fromkeys(ids) if rid not in self._dead]
            if not live:
                self.errors_by_code["1011"] = self.errors_by_code.get("1011", 0) + 1
                return _error(
                    400,
                    1011,
                    "cannot find user by this audience or has been inactive for more than 255 days",
                    msg_id,
                )
            self._targets[msg_id] = set(ids)
            self.delivered += len(live)
            if self.record:
                self.pushes.append(push)
                self.deliveries.extend((rid, msg_id) for rid in live)
        sendno = push.get("options", {}).get("sendno", 0)
        return 200, {"sendno": str(sendno), "msg_id": msg_id}, {}

    def _cids(self, query: str) -> Answer:
        params = urllib.parse.parse_qs(query)
        count_text = params.get("count", ["1"])[0]
        if not count_text.isdigit() or not 1 <= int(count_text) <= 1000:
            return _error(400, 1003, "count must be within 1..1000")
        cids = [f"{self.app_key}-{uuid.uuid4()}" for _ in range(int(count_text))]
        with self.lock:
            self._cid_pool.update(cids)
        return 200, {"cidlist": cids}, {}

    def _batch_single(self, body: bytes) -> Answer:
        with self.lock:
            self.batch_requests += 1
            failure = self._fail_next.pop(0) if self._fail_next else None
        if failure is not None:
            return self._count(_error(failure.http_status, failure.code, failure.message))
        try:
            pushlist = json.loads(body).get("pushlist")
        except (ValueError, AttributeError):
            return self._count(_error(400, 1003, "Invalid json"))
        if not isinstance(pushlist, dict) or not 1 <= len(pushlist) <= 1000:
            return self._count(_error(400, 1003, "pushlist must hold 1 to 1000 cids"))
        answer: dict[str, Any] = {}
        for cid, single in pushlist.items():
            answer[cid] = self._one_single(cid, single)
        return 200, answer, {}

    def _one_single(self, cid: str, single: Any) -> dict[str, Any]:
        with self.lock:
            known = cid in self._cid_pool
            self._cid_pool.discard(cid)
        if not known:
            return {"error": {"code": 1003, "message": "cid is invalid"}}
        if not isinstance(single, dict) or not isinstance(single.get("target"), str):
            return {"error": {"code": 1003, "message": "target must be a registration id"}}
        rid = single["target"]
        push = {k: v for k, v in single.items() if k != "target"} | {"audience": {"registration_id": [rid]}}
        problem = check_push(push)
        if problem is not None:
            error: dict[str, Any] = problem[1]["error"]
            return {"error": error}
        msg_id = str(next(self._ids))
        with self.lock:
            if rid in self._dead:
                self.errors_by_code["1011"] = self.errors_by_code.get("1011", 0) + 1
                return {"error": {"code": 1011, "message": "cannot find user by this audience"}}
            self._targets[msg_id] = {rid}
            self.delivered += 1
            if self.record:
                self.pushes.append(push)
                self.deliveries.append((rid, msg_id))
        return {"msg_id": msg_id}

    def _status(self, body: bytes) -> Answer:
        try:
            query = json.loads(body)
        except ValueError:
            return _error(400, 1003, "Invalid json")
        rids = query.get("registration_ids") if isinstance(query, dict) else None
        msg_id = str(query.get("msg_id", "")) if isinstance(query, dict) else ""
        if not msg_id or not isinstance(rids, list) or not 1 <= len(rids) <= 1000:
            return _error(400, 1003, "msg_id and 1..1000 registration_ids are required")
        with self.lock:
            self.status_requests += 1
            targets = self._targets.get(msg_id, set())
            answer = {
                rid: {"status": 2 if rid in self._dead else (0 if rid in targets else 3)} for rid in rids
            }
        return 200, answer, {}


def check_push(push: Any) -> Answer | None:
    """JPush's answer to a malformed push object, or None when it is well formed."""
    if not isinstance(push, dict):
        return _error(400, 1003, "push object must be a JSON object")
    unknown = set(push) - _PUSH_KEYS
    if unknown:
        return _error(400, 1009, f"unsupported key in push object: {sorted(unknown)}")
    platform = push.get("platform")
    if platform != "all" and not (isinstance(platform, list) and platform and set(platform) <= _PLATFORMS):
        return _error(400, 1003, "platform must be 'all' or a list of platforms")
    audience = push.get("audience")
    if not isinstance(audience, dict) or not audience or set(audience) - _AUDIENCE_KEYS:
        return _error(400, 1003, "audience must be an object of selectors")
    ids = audience.get("registration_id")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 1000:
        return _error(400, 1003, "registration_id must be an array of 1 to 1000 ids")
    if not all(isinstance(rid, str) and REGISTRATION_ID.fullmatch(rid) for rid in ids):
        return _error(400, 1003, "the registration_id is illegal or in the wrong format")
    notification = push.get("notification")
    if notification is None and push.get("message") is None:
        return _error(400, 1002, "notification or message is required")
    if notification is not None:
        problem = _check_notification(notification)
        if problem is not None:
            return problem
    options = push.get("options", {})
    if not isinstance(options, dict):
        return _error(400, 1003, "options must be an object")
    return _check_options(options)


def _check_notification(notification: Any) -> Answer | None:
    if not isinstance(notification, dict) or not notification:
        return _error(400, 1003, "notification must be a non-empty object")
    if "alert" in notification and not isinstance(notification["alert"], str):
        return _error(400, 1003, "notification.alert must be a string")
    android = notification.get("android")
    if android is not None:
        if not isinstance(android, dict) or not isinstance(android.get("alert"), str):
            return _error(400, 1003, "notification.android.alert is required")
        if "title" in android and not isinstance(android["title"], str):
            return _error(400, 1003, "notification.android.title must be a string")
        if "priority" in android and android["priority"] not in (-2, -1, 0, 1, 2):
            return _error(400, 1003, "notification.android.priority must be within -2..2")
        if not _extras_ok(android.get("extras")):
            return _error(400, 1003, "notification.android.extras must be an object")
        if len(json.dumps(android, ensure_ascii=False).encode()) > 4000:
            return _error(400, 1005, "android notification is longer than 4000 bytes")
    ios = notification.get("ios")
    if ios is not None:
        alert = ios.get("alert") if isinstance(ios, dict) else None
        if not isinstance(alert, str | dict) or not alert:
            return _error(400, 1003, "notification.ios.alert is required")
        if not _extras_ok(ios.get("extras")):
            return _error(400, 1003, "notification.ios.extras must be an object")
        if len(json.dumps({"ios": ios}, ensure_ascii=False).encode()) > 2000:
            return _error(400, 1005, "ios notification is longer than 2000 bytes")
    return None


def _extras_ok(extras: Any) -> bool:
    return extras is None or isinstance(extras, dict)


def _check_options(options: dict[str, Any]) -> Answer | None:
    ttl = options.get("time_to_live", 86400)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= 10 * 24 * 3600:
        return _error(400, 1003, "options.time_to_live must be 0..864000 seconds")
    if "apns_production" in options and not isinstance(options["apns_production"], bool):
        return _error(400, 1003, "options.apns_production must be a boolean")
    sendno = options.get("sendno", 0)
    if not isinstance(sendno, int) or isinstance(sendno, bool):
        return _error(400, 1003, "options.sendno must be an int")
    collapse = options.get("apns_collapse_id")
    if collapse is not None and (not isinstance(collapse, str) or len(collapse.encode()) > 64):
        return _error(400, 1003, "options.apns_collapse_id must be at most 64 bytes")
    return None


def registration_ids(count: int, start: int = 0) -> list[str]:
    """``count`` distinct well-formed 19-character Android registration ids."""
    return [f"1a0{n:016x}" for n in range(start, start + count)]


class JPushServer(ThreadedServer[JPushStandin]):
    """Serves a :class:`JPushStandin` from a background thread on 127.0.0.1."""

    thread_name = "jpush-standin"

    def __init__(self, app: JPushStandin | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app if app is not None else JPushStandin(), host, port)


class JPushProcess(ChildServer):
    """The JPush stand-in in a child process."""


def spawn_jpush_process(*, host: str = "127.0.0.1", latency_ms: float = 0.0) -> JPushProcess:
    """Start ``python -m tests.support.jpush_standin`` and wait until it listens."""
    cmd = [sys.executable, "-m", "tests.support.jpush_standin", "--host", host, "--port", "0"]
    cmd += ["--latency-ms", str(latency_ms)]
    proc, port = spawn_child(cmd, "JPush")
    return JPushProcess(proc, host, port)


def main(argv: Iterable[str] | None = None) -> None:
    """Serve the stand-in in the foreground; prints ``READY <port>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(list(argv) if argv is not None else None)
    app = JPushStandin(latency_s=args.latency_ms / 1000, record=False)
    serve_foreground(app, args.host, args.port)


if __name__ == "__main__":
    main()
