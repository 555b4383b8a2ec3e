"""Supervision measures (Arts. 11-14): inspections, risk-tiered plans, reminders and interviews, notices."""
