"""Turn one rendered notification into the messages each channel sends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notifications.channels import OutgoingMessage, Platform
from notifications.policy import dedupe_key
from notifications.templates import RenderedMessage


@dataclass(frozen=True, slots=True)
class Device:
    """A recipient's registered app instance; ``device_ref`` is its stable row id, not the token."""

    device_ref: str
    token: str
    platform: Platform


def push_messages(
    rendered: RenderedMessage, *, event_id: str, recipient_ref: str, devices: Sequence[Device]
) -> list[OutgoingMessage]:
    """One push per device, each with its own dedupe key so a retry resends only the failed devices."""
    return [
        OutgoingMessage(
            dedupe_key=dedupe_key(event_id, recipient_ref, "push", device_ref=device.device_ref),
            recipient_ref=recipient_ref,
            token=device.token,
            title=rendered.title,
            body=rendered.body,
            data=rendered.data(),
            collapse_key=rendered.collapse_key,
            ttl_seconds=rendered.ttl_seconds,
            priority=rendered.priority,
            platform=device.platform,
        )
        for device in devices
    ]


def inbox_message(rendered: RenderedMessage, *, event_id: str, recipient_ref: str) -> OutgoingMessage:
    """The in-app inbox entry for the recipient."""
    return OutgoingMessage(
        dedupe_key=dedupe_key(event_id, recipient_ref, "inbox"),
        recipient_ref=recipient_ref,
        token=None,
        title=rendered.title,
        body=rendered.body,
        data=rendered.data(),
        collapse_key=rendered.collapse_key,
        ttl_seconds=rendered.ttl_seconds,
        priority=rendered.priority,
    )
