"""Alibaba Cloud Dysmsapi through its official SDK: send one SMS, read the provider's records of a number's day.

What matters for "at most once" is telling *not sent* from *unknown*. The SDK makes exactly one HTTP attempt
(no retry options are set), and its outcomes map as follows:

* ``Code == "OK"`` → accepted, with the provider's BizId;
* a business code Aliyun documents as temporary (flow control, balance) → not sent, retry later;
* any other business code, or a 4xx (bad signature, key, parameters) → not sent, refused for good;
* the connection was never made (refused, connect timeout) → not sent, retry;
* a read timeout, a dropped connection, a 5xx, ``isp.SYSTEM_ERROR`` → **unknown**: the message may have gone.
  The row stays ``sending`` and the reconciler asks the provider (QuerySendDetails, matching our OutId)
  instead of sending again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import requests
import urllib3
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException
from darabonba.runtime import RuntimeOptions

from backend.config import Settings

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "retry", "refused", "unknown"]

#: Business codes that say "not now" (the message was not sent): seconds to wait before trying again.
RETRY_LATER: Mapping[str, float] = {
    "isv.BUSINESS_LIMIT_CONTROL": 3600.0,  # per-number flow control (1/min, 5/h, 10/day)
    "isv.DAY_LIMIT_CONTROL": 6 * 3600.0,
    "isv.AMOUNT_NOT_ENOUGH": 3600.0,  # the account's balance ran out
    "isv.OUT_OF_SERVICE": 3600.0,
}
#: Business codes after which nobody can say whether the message went.
UNKNOWN_CODES = frozenset({"isp.SYSTEM_ERROR", "isp.RAM_PERMISSION_DENY_TIMEOUT"})


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider said to one SendSms."""

    outcome: Outcome
    biz_id: str | None = None
    code: str | None = None
    detail: str = ""
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One of the provider's records of a number's day: 1 waiting for the receipt, 2 failed, 3 delivered."""

    out_id: str | None
    send_status: int
    err_code: str | None
    receive_date: str | None


class ProviderUnavailable(RuntimeError):
    """The provider's records could not be read now."""


class SmsProvider(Protocol):
    """What the SMS service needs from a provider."""

    def send(self, *, phone: str, template_code: str, params: Mapping[str, str], out_id: str) -> SendResult:
        """Send one templated SMS once."""
        ...

    def records(self, *, phone: str, send_date: str, biz_id: str | None = None) -> list[SendRecord]:
        """The provider's records for ``phone`` on ``send_date`` (yyyyMMdd, China time)."""
        ...


def _never_connected(exc: BaseException | None) -> bool:
    """Whether a transport error happened before the request could reach the provider."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        return isinstance(
            inner, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        )
    return False


class AliyunSms:
    """:class:`SmsProvider` over ``alibabacloud-dysmsapi20170525`` (endpoint and protocol from the settings)."""

    def __init__(self, settings: Settings) -> None:
        endpoint = settings.sms_endpoint
        protocol = "https"
        for scheme in ("http://", "https://"):
            if endpoint.startswith(scheme):
                protocol, endpoint = scheme[:-3], endpoint.removeprefix(scheme)
        key_id = settings.sms_access_key_id.get_secret_value() if settings.sms_access_key_id else None
        secret = settings.sms_access_key_secret.get_secret_value() if settings.sms_access_key_secret else None
        self._client = Client(
            openapi_models.Config(
                access_key_id=key_id,
                access_key_secret=secret,
                endpoint=endpoint.rstrip("/"),
                protocol=protocol,
                read_timeout=settings.sms_timeout_ms,
                connect_timeout=min(settings.sms_timeout_ms, 5000),
            )
        )
        self._sign_name = settings.sms_sign_name
        self._timeout_ms = settings.sms_timeout_ms

    def _runtime(self) -> RuntimeOptions:
        return RuntimeOptions(read_timeout=self._timeout_ms, connect_timeout=min(self._timeout_ms, 5000))

    def send(self, *, phone: str, template_code: str, params: Mapping[str, str], out_id: str) -> SendResult:
        """One SendSms; see the module docstring for how its outcomes are read."""
        request = sms_models.SendSmsRequest(
            phone_numbers=phone,
            sign_name=self._sign_name,
            template_code=template_code,
            template_param=json.dumps(dict(params), ensure_ascii=False),
            out_id=out_id,
        )
        try:
            response = self._client.send_sms_with_options(request, self._runtime())
        except ThrottlingException as exc:
            return SendResult("retry", code=exc.code, detail=str(exc.message)[:300], retry_after_s=60.0)
        except ClientException as exc:
            return SendResult("refused", code=exc.code, detail=str(exc.message)[:300])
        except Exception as exc:
            # darabonba re-raises the transport error as RetryError(str(e)) inside its except block, so the
            # requests exception survives as that RetryError's __context__.
            wrapped = getattr(exc, "inner_exception", None)
            inner = getattr(wrapped, "__context__", None) or wrapped or exc.__cause__
            if _never_connected(inner):
                return SendResult(
                    "retry", code="connect_failed", detail=f"{type(inner).__name__}", retry_after_s=60.0
                )
            return SendResult(
                "unknown", code=getattr(exc, "code", None) or type(exc).__name__, detail=str(exc)[:300]
            )
        body = response.body
        code: str | None = str(body.code) if body is not None and body.code is not None else None
        if code == "OK" and body is not None:
            return SendResult("accepted", biz_id=body.biz_id, code=code)
        message = (body.message if body is not None else "") or ""
        if code is not None and code in RETRY_LATER:
            return SendResult("retry", code=code, detail=message[:300], retry_after_s=RETRY_LATER[code])
        if code in UNKNOWN_CODES or code is None:
            return SendResult("unknown", code=code, detail=message[:300])
        return SendResult("refused", code=code, detail=message[:300])

    def records(self, *, phone: str, send_date: str, biz_id: str | None = None) -> list[SendRecord]:
        """QuerySendDetails, every page (50 a page, at most 20 pages: one number's day)."""
        found: list[SendRecord] = []
        for page in range(1, 21):
            request = sms_models.QuerySendDetailsRequest(
                phone_number=phone, send_date=send_date, page_size=50, current_page=page, biz_id=biz_id
            )
            try:
                response = self._client.query_send_details_with_options(request, self._runtime())
            except Exception as exc:
                raise ProviderUnavailable(f"QuerySendDetails failed: {type(exc).__name__}") from exc
            body = response.body
            if body is None or body.code != "OK":
                raise ProviderUnavailable(f"QuerySendDetails answered {body.code if body else None}")
            rows = body.sms_send_detail_dtos.sms_send_detail_dto if body.sms_send_detail_dtos else None
            for row in rows or []:
                found.append(
                    SendRecord(
                        out_id=row.out_id,
                        send_status=int(row.send_status or 0),
                        err_code=row.err_code,
                        receive_date=row.receive_date,
                    )
                )
            if not rows or len(found) >= int(body.total_count or 0):
                break
        return found
