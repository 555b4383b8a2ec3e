"""The push router: each message to its device's provider, the providers of a mixed batch at the same time."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from backend.notices.channel import PushRouter
from notifications.channels import DeliveryResult, DeliveryStatus, OutgoingMessage, Provider


class _Provider:
    """A provider that answers only once every provider of the batch has started sending."""

    name = "fake"

    def __init__(self, started: threading.Barrier, fail: bool = False) -> None:
        self.started = started
        self.fail = fail
        self.sent: list[str] = []
        self.threads: set[str] = set()
        self.closed = False

    def send(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        self.threads.add(threading.current_thread().name)
        self.started.wait(
            timeout=5
        )  # BrokenBarrierError if the router sent the providers one after the other
        if self.fail:
            raise RuntimeError("provider broke")
        self.sent += [m.dedupe_key for m in batch]
        return [
            DeliveryResult(m.dedupe_key, DeliveryStatus.DELIVERED, provider_message_id=m.token) for m in batch
        ]

    def close(self) -> None:
        self.closed = True


def _message(i: int, provider: Provider) -> OutgoingMessage:
    return OutgoingMessage(
        dedupe_key=f"k{i}",
        recipient_ref=f"operator-{i}",
        token=f"1a0{i:016x}" if provider == "jpush" else f"fcm-{i}",
        title="计量器具检定即将到期",
        body="请及时申请周期检定。",
        data={"kind": "verification_due"},
        collapse_key=f"verification:{i}",
        ttl_seconds=3600,
        priority="normal",
        platform="android",
        provider=provider,
    )


def test_a_mixed_batch_goes_to_both_providers_at_once_and_answers_in_order() -> None:
    started = threading.Barrier(2)
    fcm, jpush = _Provider(started), _Provider(started)
    router = PushRouter({"fcm": fcm, "jpush": jpush})
    batch = [_message(i, "jpush" if i % 3 == 0 else "fcm") for i in range(9)]
    results = router.send(batch)
    router.close()
    assert [r.dedupe_key for r in results] == [m.dedupe_key for m in batch]
    assert [r.provider_message_id for r in results] == [m.token for m in batch]
    assert jpush.sent == ["k0", "k3", "k6"] and len(fcm.sent) == 6
    # The batch's first provider on the caller's thread, the other on the router's.
    assert jpush.threads == {threading.current_thread().name}
    assert len(fcm.threads) == 1 and next(iter(fcm.threads)).startswith("push-router")
    assert fcm.closed and jpush.closed


def test_one_provider_alone_stays_on_the_callers_thread() -> None:
    jpush = _Provider(threading.Barrier(1))
    router = PushRouter({"fcm": _Provider(threading.Barrier(1)), "jpush": jpush})
    assert [r.status for r in router.send([_message(1, "jpush")])] == [DeliveryStatus.DELIVERED]
    assert jpush.threads == {threading.current_thread().name}
    assert router._pool is None
    router.close()


def test_a_provider_that_is_off_fails_its_messages_and_the_others_still_go() -> None:
    fcm = _Provider(threading.Barrier(1))
    router = PushRouter({"fcm": fcm})
    results = router.send([_message(0, "jpush"), _message(1, "fcm")])
    assert results[0].status is DeliveryStatus.FAILED and results[0].error_code == "PROVIDER_OFF"
    assert results[1].status is DeliveryStatus.DELIVERED and fcm.sent == ["k1"]
    router.close()


def test_a_provider_that_raises_still_lets_the_other_finish_first() -> None:
    started = threading.Barrier(2)
    fcm, jpush = _Provider(started, fail=True), _Provider(started)
    router = PushRouter({"fcm": fcm, "jpush": jpush})
    with pytest.raises(RuntimeError, match="provider broke"):
        router.send([_message(0, "fcm"), _message(1, "jpush")])
    # The JPush half had been sent and its answer collected before the error surfaced.
    assert jpush.sent == ["k1"]
    router.close()
