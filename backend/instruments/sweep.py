"""Periodic sweeps over instruments (Art. 13(3): overdue instruments still in use)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from backend.db import UnitOfWork, session_scope
from backend.instruments.service import overdue_in_use
from backend.outbox.service import emit_many

BATCH = 5000


def overdue_events(rows: Sequence[tuple[int, date, int]]) -> list[tuple[dict[str, Any], str]]:
    """The ``instrument.overdue`` payload and dedupe key for each (id, valid_until, operator id) row."""
    events: list[tuple[dict[str, Any], str]] = []
    for instrument_id, valid_until, operator_id in rows:
        due = valid_until.isoformat()
        payload = {"instrument_id": instrument_id, "operator_id": operator_id, "valid_until": due}
        # The dedupe key makes a second sweep over the same due date a no-op.
        events.append((payload, f"instrument.overdue:{instrument_id}:{due}"))
    return events


def sweep_overdue_instruments(
    today: date, *, batch: int = BATCH, unit_of_work: UnitOfWork = session_scope
) -> int:
    """Emit one ``instrument.overdue`` event per instrument and due date, however often this runs.

    Each batch is its own transaction, so a sweep over tens of millions of instruments holds no long locks;
    its events are stored with one set-based insert (known dedupe keys skipped) instead of one per row.
    """
    emitted = 0
    after_id = 0
    while True:
        with unit_of_work() as session:
            rows = overdue_in_use(session, today, after_id, batch)
            emitted += emit_many(session, "instrument.overdue", overdue_events(rows))
        if len(rows) < batch:
            return emitted
        after_id = rows[-1][0]
