"""Complaint and tip-off cases: intake, routing, handling and their statutory working-day deadlines."""
