"""The contract every delivery channel (push, in-app inbox) implements, and the values it exchanges."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, get_args

Priority = Literal["high", "normal"]
Platform = Literal["android", "ios", "web"]
#: Who carries a device's pushes: FCM, or JPush for Android phones without Google services.
Provider = Literal["fcm", "jpush"]

# Key of the deep link (``gongping://...``) in every message's data payload; the app routes on it.
DEEP_LINK_KEY = "link"
# FCM keeps a message for at most 28 days.
MAX_TTL_SECONDS = 28 * 24 * 3600
# FCM rejects data keys that collide with its own fields.
_RESERVED_DATA_KEYS = frozenset({"from", "message_type", "collapse_key", "notification", "priority", "ttl"})
_RESERVED_DATA_PREFIXES = ("google.", "gcm.", "fcm.")


class DeliveryStatus(StrEnum):
    """What happened to one message; tells the caller what to do next."""

    DELIVERED = "delivered"  # accepted by the provider (or stored in the inbox)
    INVALID_TOKEN = "invalid_token"  # the device token is dead: deactivate it, do not retry
    RETRY = "retry"  # transient: send again after ``retry_after_s``
    FAILED = "failed"  # permanent for this message: log it, do not retry


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to one destination (a device token for push, none for the inbox)."""

    dedupe_key: str
    recipient_ref: str
    token: str | None
    title: str
    body: str
    data: Mapping[str, str]
    collapse_key: str
    ttl_seconds: int
    priority: Priority = "normal"
    # None for destinations that are not a device (the inbox).
    platform: Platform | None = None
    # How many times this message was already tried; drives the backoff suggestion on RETRY.
    attempt: int = 0
    # The push provider the token belongs to; channels route on it (the inbox ignores it).
    provider: Provider = "fcm"

    def __post_init__(self) -> None:
        """Reject messages no channel could send, so mistakes surface where the message is built."""
        if not self.dedupe_key or not self.recipient_ref:
            raise ValueError("dedupe_key and recipient_ref must be non-empty")
        if self.token is not None and not self.token:
            raise ValueError("token must be None or non-empty")
        if self.token is not None and self.platform is None:
            raise ValueError("a message with a device token needs its platform")
        if self.platform is not None and self.platform not in get_args(Platform):
            raise ValueError(f"unknown platform {self.platform!r}")
        if self.priority not in get_args(Priority):
            raise ValueError(f"unknown priority {self.priority!r}")
        if not 0 <= self.ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be within 0..{MAX_TTL_SECONDS}")
        if self.attempt < 0:
            raise ValueError("attempt must be >= 0")
        if self.provider not in get_args(Provider):
            raise ValueError(f"unknown provider {self.provider!r}")
        for key, value in self.data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("data keys and values must be strings")
            if key in _RESERVED_DATA_KEYS or key.startswith(_RESERVED_DATA_PREFIXES):
                raise ValueError(f"data key {key!r} is reserved by FCM")


def apns_collapse_id(collapse_key: str) -> str:
    """The APNs collapse id for a message's collapse key (FCM and JPush both pass it on to APNs)."""
    # APNs rejects collapse ids over 64 bytes; a digest keeps long keys distinct instead of truncating.
    if len(collapse_key.encode()) <= 64:
        return collapse_key
    return hashlib.sha256(collapse_key.encode()).hexdigest()[:64]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome for one :class:`OutgoingMessage`, matched by ``dedupe_key``."""

    dedupe_key: str
    status: DeliveryStatus
    retry_after_s: float | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    # Provider detail for logs only; never shown to users.
    detail: str | None = field(default=None, compare=False)


class Channel(Protocol):
    """A way to reach a recipient: one result per message, in order, problems reported not raised."""

    name: str

    def send(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Deliver ``batch``; one result per message, same order."""
        ...
