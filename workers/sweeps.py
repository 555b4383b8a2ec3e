"""Periodic sweeps over instruments (Art. 13(3): overdue instruments still in use)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date

from sqlmodel import Session

from backend.db import session_scope
from backend.instruments.service import overdue_in_use
from backend.outbox.service import emit

BATCH = 5000
UnitOfWork = Callable[[], AbstractContextManager[Session]]


def sweep_overdue_instruments(
    today: date, *, batch: int = BATCH, unit_of_work: UnitOfWork = session_scope
) -> int:
    """Emit one ``instrument.overdue`` event per instrument and due date, however often this runs.

    Each batch is its own transaction, so a sweep over tens of millions of instruments holds no long locks.
    """
    emitted = 0
    after_id = 0
    while True:
        with unit_of_work() as session:
            rows = overdue_in_use(session, today, after_id, batch)
            for instrument_id, valid_until, operator_id in rows:
                due = valid_until.isoformat()
                # The dedupe key makes a second sweep over the same due date a no-op.
                if emit(
                    session,
                    "instrument.overdue",
                    {"instrument_id": instrument_id, "operator_id": operator_id, "valid_until": due},
                    dedupe_key=f"instrument.overdue:{instrument_id}:{due}",
                ):
                    emitted += 1
        if len(rows) < batch:
            return emitted
        after_id = rows[-1][0]
