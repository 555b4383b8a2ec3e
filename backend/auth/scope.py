"""A staff member's reach over the jurisdiction tree: a plain value the services take (no web layer)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.audit.service import SystemActor
from backend.auth.models import Account


@dataclass(frozen=True)
class Scope:
    """A staff member's reach: their jurisdiction and everything below it (admins reach everything)."""

    user: Account | SystemActor
    path: str  # "/" for admins; system actors (imports from the CLI) may be given any scope

    def covers(self, jurisdiction_path: str) -> bool:
        """Whether a division (by path) lies inside this scope."""
        return jurisdiction_path.startswith(self.path)
