"""Who a response schema is written for (Art. 18): public and operator-facing shapes must hold no personal data.

A schema declares ``__audience__: ClassVar[Audience] = Audience.PUBLIC`` (or ``OPERATOR``, ``FILER``,
``STAFF``); ``tests/backend/complaints/test_privacy.py`` walks every public and operator-facing schema, nested
models included, and fails on any field whose name says it carries identity, contact, precise location,
original media or device data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Audience(StrEnum):
    """The readers of a response schema."""

    PUBLIC = "public"  # anyone, unauthenticated (the QR page, the public query)
    OPERATOR = "operator"  # the operator a complaint or record is about
    FILER = "filer"  # the complainant, about their own complaint
    STAFF = "staff"  # handling bureau staff in scope


#: Audiences that must never see a complainant's identity, contact, exact location or raw photos.
RESTRICTED_AUDIENCES = frozenset({Audience.PUBLIC, Audience.OPERATOR})


@dataclass(frozen=True)
class Coarsened:
    """Marks a location field of a public schema whose own validator coarsens it to a grid of about ``grid_m``.

    Put it in the field's ``Annotated`` metadata beside that validator; the privacy walk accepts a location
    field in a public schema only with this marker, so precise coordinates cannot be published by accident.
    """

    grid_m: int
