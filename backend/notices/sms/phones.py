"""Mainland mobile numbers: checked with libphonenumber (allocated ranges, not just a shape), masked in logs.

``phonenumbers`` knows which 1xx blocks the MIIT has allocated to mobile networks, so a fixed line, a
data-only or an unallocated number is refused where a regex like ``^1[3-9]\\d{9}$`` would let it through;
``+86``, ``0086`` and spaces or dashes are accepted and normalised to the 11 digits Aliyun takes.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

from backend.errors import AppError

_SHAPE = re.compile(r"^1[3-9]\d{9}$")
_MOBILE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def invalid_phone() -> AppError:
    """422 ``invalid_phone``."""
    return AppError(
        422,
        "invalid_phone",
        "请填写中国大陆手机号码（11 位，1 开头）",
        "enter a mainland China mobile number (11 digits starting with 1)",
    )


def normalise_mobile(raw: str) -> str:
    """The 11-digit mainland mobile number in ``raw``; 422 ``invalid_phone`` for anything else."""
    text = raw.strip()
    if not text or len(text) > 24:
        raise invalid_phone()
    try:
        number = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException as exc:
        raise invalid_phone() from exc
    national = str(number.national_number)
    if (
        number.country_code != 86
        or not _SHAPE.match(national)
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in _MOBILE
    ):
        raise invalid_phone()
    return national


def mask(phone: str | None) -> str:
    """138****1234: what logs, staff lists and the reach view show."""
    if not phone:
        return ""
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 8 else "****"
