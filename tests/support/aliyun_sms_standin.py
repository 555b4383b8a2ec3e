"""A local stand-in for Alibaba Cloud Dysmsapi (2017-05-25): SendSms and QuerySendDetails over plain HTTP.

It speaks what ``alibabacloud-dysmsapi20170525`` sends: an RPC call ``POST /?<params>`` with ``x-acs-action``
and ``x-acs-version`` headers, signed ``ACS3-HMAC-SHA256`` (the signature is checked against the access key
secret, exactly as the SDK computes it), and answers the JSON the SDK reads (``Code``, ``Message``,
``RequestId``, ``BizId``; ``SmsSendDetailDTOs.SmsSendDetailDTO[]`` with ``OutId`` and ``SendStatus``).

Programmable: :attr:`AliyunSmsStandin.codes` (business codes to answer the next sends with, e.g.
``isv.BUSINESS_LIMIT_CONTROL``), :attr:`receipts` (per phone, the receipt statuses of its next messages:
3 delivered, 2 failed, 1 waiting), and :meth:`hold` (a send is recorded as accepted, then its answer is held
until :meth:`release`; :attr:`arrived` is set when one is held — the kill-mid-send test).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

ACCESS_KEY_ID = "LTAI-standin-key"
ACCESS_KEY_SECRET = "standin-secret-0123456789"
VERSION = "2017-05-25"
_BEIJING = ZoneInfo("Asia/Shanghai")


@dataclass
class StandinMessage:
    """One SMS the stand-in accepted."""

    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    out_id: str | None
    send_date: str
    status: int
    err_code: str


@dataclass
class AliyunSmsStandin:
    """The stand-in's state (shared by the handler threads)."""

    access_key_secret: str = ACCESS_KEY_SECRET
    messages: list[StandinMessage] = field(default_factory=list)
    codes: deque[str] = field(default_factory=deque)
    receipts: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    #: The provider's clock (its send dates are Beijing days): tests running at a chosen instant set it.
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(_BEIJING))
    _holding: bool = False
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def hold(self) -> None:
        """Hold the answers of the next sends (they are still recorded as accepted)."""
        self._holding = True
        self._released.clear()
        self.arrived.clear()

    def release(self) -> None:
        """Answer the held sends."""
        self._holding = False
        self._released.set()

    def reset(self) -> None:
        """Forget everything."""
        with self._lock:
            self.messages.clear()
            self.codes.clear()
            self.receipts.clear()
            self.requests.clear()
        self.release()

    def sent_to(self, phone: str) -> list[StandinMessage]:
        """The accepted messages to ``phone``."""
        return [m for m in self.messages if m.phone == phone]


def _canonical_query(query: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))


def verify_signature(
    secret: str, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
) -> str | None:
    """Why the ACS3-HMAC-SHA256 signature is wrong, or None when it is right."""
    auth = headers.get("authorization", "")
    if not auth.startswith("ACS3-HMAC-SHA256 "):
        return "missing or unsupported Authorization"
    parts = dict(p.split("=", 1) for p in auth.removeprefix("ACS3-HMAC-SHA256 ").split(","))
    if parts.get("Credential") != ACCESS_KEY_ID:
        return "unknown access key"
    payload = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload:
        return "x-acs-content-sha256 does not match the body"
    signed = parts.get("SignedHeaders", "").split(";")
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    canonical = f"{method}\n{path or '/'}\n{_canonical_query(query)}\n{canonical_headers}\n{';'.join(signed)}\n{payload}"
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, parts.get("Signature", "")) else "signature mismatch"


def _handler(state: AliyunSmsStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            request_id = str(uuid.uuid4()).upper()
            problem = verify_signature(state.access_key_secret, "POST", url.path, query, headers, body)
            if problem is not None:
                self._answer(
                    400, {"Code": "SignatureDoesNotMatch", "Message": problem, "RequestId": request_id}
                )
                return
            if headers.get("x-acs-version") != VERSION:
                self._answer(
                    400, {"Code": "InvalidVersion", "Message": "bad version", "RequestId": request_id}
                )
                return
            action = headers.get("x-acs-action", "")
            with state._lock:
                state.requests.append((action, query))
            if action == "SendSms":
                self._send(query, request_id)
            elif action == "QuerySendDetails":
                self._details(query, request_id)
            else:
                self._answer(
                    404, {"Code": "InvalidAction.NotFound", "Message": action, "RequestId": request_id}
                )

        def _missing(self, query: dict[str, str], names: tuple[str, ...], request_id: str) -> bool:
            for name in names:
                if not query.get(name):
                    self._answer(
                        400, {"Code": f"MissingParameter.{name}", "Message": name, "RequestId": request_id}
                    )
                    return True
            return False

        def _send(self, query: dict[str, str], request_id: str) -> None:
            if self._missing(query, ("PhoneNumbers", "SignName", "TemplateCode"), request_id):
                return
            try:
                params = json.loads(query.get("TemplateParam") or "{}")
            except ValueError:
                self._answer(
                    200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON", "RequestId": request_id}
                )
                return
            if any(len(str(v)) > 35 for v in params.values()):
                self._answer(
                    200,
                    {
                        "Code": "isv.PARAM_LENGTH_LIMIT",
                        "Message": "参数超出长度限制",
                        "RequestId": request_id,
                    },
                )
                return
            with state._lock:
                code = state.codes.popleft() if state.codes else "OK"
                if code != "OK":
                    answer = {"Code": code, "Message": code, "RequestId": request_id}
                else:
                    phone = query["PhoneNumbers"]
                    planned = state.receipts.get(phone)
                    status = planned.popleft() if planned else 3
                    biz_id = f"{next(state._ids):06d}^{uuid.uuid4().int % 10**10}"
                    state.messages.append(
                        StandinMessage(
                            biz_id=biz_id,
                            phone=phone,
                            sign_name=query["SignName"],
                            template_code=query["TemplateCode"],
                            params={str(k): str(v) for k, v in params.items()},
                            out_id=query.get("OutId"),
                            send_date=state.clock().astimezone(_BEIJING).strftime("%Y%m%d"),
                            status=status,
                            err_code="DELIVERED" if status == 3 else ("UNDELIV" if status == 2 else ""),
                        )
                    )
                    answer = {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}
            if state._holding and answer["Code"] == "OK":
                state.arrived.set()
                state._released.wait(timeout=120)
            self._answer(200, answer)

        def _details(self, query: dict[str, str], request_id: str) -> None:
            if self._missing(query, ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"), request_id):
                return
            size, page = int(query["PageSize"]), int(query["CurrentPage"])
            with state._lock:
                rows = [
                    m
                    for m in state.messages
                    if m.phone == query["PhoneNumber"]
                    and m.send_date == query["SendDate"]
                    and (not query.get("BizId") or m.biz_id == query["BizId"])
                ]
            chosen = rows[(page - 1) * size : page * size]
            self._answer(
                200,
                {
                    "Code": "OK",
                    "Message": "OK",
                    "RequestId": request_id,
                    "TotalCount": len(rows),
                    "SmsSendDetailDTOs": {
                        "SmsSendDetailDTO": [
                            {
                                "PhoneNum": m.phone,
                                "SendStatus": m.status,
                                "ErrCode": m.err_code,
                                "TemplateCode": m.template_code,
                                "Content": json.dumps(m.params, ensure_ascii=False),
                                "SendDate": m.send_date,
                                "ReceiveDate": m.send_date,
                                "OutId": m.out_id,
                            }
                            for m in chosen
                        ]
                    },
                },
            )

    return Handler


class StandinServer:
    """The stand-in on 127.0.0.1, served from a thread; ``endpoint`` is what ``GONGPING_SMS_ENDPOINT`` takes."""

    def __init__(self, state: AliyunSmsStandin | None = None) -> None:
        self.state = state or AliyunSmsStandin()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandinServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release()
        self._server.shutdown()
        self._server.server_close()
