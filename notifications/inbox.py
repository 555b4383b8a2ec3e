"""The in-app inbox channel; storage is behind :class:`InboxStore` so the DB layer plugs in from workers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from notifications.channels import DeliveryResult, DeliveryStatus, OutgoingMessage
from notifications.policy import retry_delay

log = logging.getLogger(__name__)


class InboxStore(Protocol):
    """Persists inbox entries; implemented over the database by the workers."""

    def add(self, message: OutgoingMessage) -> bool:
        """Store ``message`` unless its dedupe key is already stored; True when newly stored."""
        ...


class InboxChannel:
    """Writes every message into the recipient's inbox; a repeated dedupe key counts as delivered."""

    name = "inbox"

    def __init__(self, store: InboxStore) -> None:
        """Deliver into ``store``."""
        self._store = store

    def send(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Store each message; storage errors become RETRY results rather than failing the batch."""
        results: list[DeliveryResult] = []
        for message in batch:
            try:
                self._store.add(message)
            except Exception as exc:
                # The store's own transaction handling decides what is kept; here we only report.
                log.warning("inbox store failed for %s: %s", message.dedupe_key, exc)
                delay = retry_delay(
                    message.attempt, retry_after_s=None, quota=False, jitter_key=message.dedupe_key
                )
                results.append(
                    DeliveryResult(
                        message.dedupe_key,
                        DeliveryStatus.RETRY,
                        retry_after_s=delay,
                        error_code="STORE_ERROR",
                        detail=type(exc).__name__,
                    )
                )
            else:
                results.append(DeliveryResult(message.dedupe_key, DeliveryStatus.DELIVERED))
        return results
