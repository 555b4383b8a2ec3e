"""Beat's reminder sweeps: verifications falling due, interviews about to start (``backend/notices/reminders.py``)."""

from __future__ import annotations

from datetime import date, datetime

from backend.notices.reminders import sweep_due_instruments, sweep_interview_reminders
from workers.celery_app import task as _task


@_task(name="gongping.notifications.sweep_due_instruments")
def sweep_due_instruments_task(today: str | None = None) -> int:
    """Beat: emit ``instrument.due`` for verifications due in 30, 7 and 1 days (once per step and date)."""
    return sweep_due_instruments(date.fromisoformat(today) if today else None)


@_task(name="gongping.notifications.sweep_interview_reminders")
def sweep_interview_reminders_task(now: str | None = None) -> int:
    """Beat: emit ``interview.reminder`` 24 h and 1 h before each open interview (once per step and time)."""
    return sweep_interview_reminders(datetime.fromisoformat(now) if now else None)
