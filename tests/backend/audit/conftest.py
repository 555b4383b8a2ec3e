"""The audited-read tests use the records tests' world: two counties' staff, an operator and its user."""

from __future__ import annotations

from tests.backend.records.conftest import (  # noqa: F401 - fixtures are found by name
    World,
    operator_headers,
    other_staff_headers,
    staff_headers,
    world,
)

__all__ = ["World"]
