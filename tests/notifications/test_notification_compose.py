"""Building per-channel messages, the inbox channel and message validation."""

from __future__ import annotations

from typing import Any

import pytest

from notifications.channels import Channel, DeliveryStatus, OutgoingMessage
from notifications.compose import Device, inbox_message, push_messages
from notifications.inbox import InboxChannel
from notifications.policy import dedupe_key
from notifications.push import PushChannel
from notifications.templates import render

CONTEXT = {"case_id": "cs-1", "case_no": "AJ-2026-0042", "due_on": "2026-11-12"}


class DictStore:
    """An in-memory InboxStore keyed like the real table's unique dedupe key."""

    def __init__(self, fail: bool = False) -> None:
        self.rows: dict[str, OutgoingMessage] = {}
        self.fail = fail

    def add(self, message: OutgoingMessage) -> bool:
        if self.fail:
            raise ConnectionError("database unavailable")
        if message.dedupe_key in self.rows:
            return False
        self.rows[message.dedupe_key] = message
        return True


def test_push_messages_one_per_device_with_distinct_keys() -> None:
    rendered = render("case_assigned", "zh-CN", CONTEXT)
    devices = [Device("d1", "tok-1", "android"), Device("d2", "tok-2", "web")]

    messages = push_messages(
        rendered, event_id="case:cs-1:assigned", recipient_ref="staff-9", devices=devices
    )

    assert [m.token for m in messages] == ["tok-1", "tok-2"]
    assert len({m.dedupe_key for m in messages}) == 2
    assert messages[0].dedupe_key == dedupe_key("case:cs-1:assigned", "staff-9", "push", device_ref="d1")
    assert all(m.data["link"] == "gongping://cases/cs-1" and m.collapse_key == "case:cs-1" for m in messages)
    assert all(m.ttl_seconds == rendered.ttl_seconds and m.priority == "normal" for m in messages)


def test_inbox_channel_stores_once_and_reports_delivered() -> None:
    store = DictStore()
    channel = InboxChannel(store)
    message = inbox_message(
        render("case_overdue", "en", CONTEXT), event_id="case:cs-1:overdue", recipient_ref="s-1"
    )

    first = channel.send([message])
    again = channel.send([message])

    assert message.token is None and message.platform is None
    assert [r.status for r in first + again] == [DeliveryStatus.DELIVERED] * 2
    assert list(store.rows) == [message.dedupe_key]


def test_inbox_store_failure_is_a_retry() -> None:
    message = inbox_message(render("case_overdue", "en", CONTEXT), event_id="e", recipient_ref="s-1")

    [result] = InboxChannel(DictStore(fail=True)).send([message])

    assert result.status is DeliveryStatus.RETRY
    assert result.error_code == "STORE_ERROR" and result.retry_after_s is not None


def test_both_channels_satisfy_the_protocol(shared_push_channel: PushChannel) -> None:
    channels: list[Channel] = [InboxChannel(DictStore()), shared_push_channel]

    assert [c.name for c in channels] == ["inbox", "push"]


def base_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "dedupe_key": "k",
        "recipient_ref": "r",
        "token": "t",
        "title": "t",
        "body": "b",
        "data": {},
        "collapse_key": "c",
        "ttl_seconds": 60,
        "platform": "android",
    }
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(
    "overrides",
    [
        {"dedupe_key": ""},
        {"token": ""},
        {"platform": None},
        {"platform": "symbian"},
        {"priority": "urgent"},
        {"ttl_seconds": -1},
        {"ttl_seconds": 28 * 24 * 3600 + 1},
        {"data": {"from": "x"}},
        {"data": {"google.c.a": "x"}},
        {"data": {"n": 1}},
        {"attempt": -1},
    ],
)
def test_outgoing_message_rejects_what_fcm_would(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        OutgoingMessage(**base_fields(**overrides))
