"""Who a response schema is written for (Art. 18): public and operator-facing shapes must hold no personal data.

A schema declares ``__audience__: ClassVar[Audience] = Audience.PUBLIC`` (or ``OPERATOR``, ``FILER``,
``STAFF``); ``tests/backend/complaints/test_privacy.py`` walks every public and operator-facing schema, nested
models included, and fails on any field whose name says it carries identity, contact, precise location,
original media or device data.
"""

from __future__ import annotations

from enum import StrEnum


class Audience(StrEnum):
    """The readers of a response schema."""

    PUBLIC = "public"  # anyone, unauthenticated (the QR page, the public query)
    OPERATOR = "operator"  # the operator a complaint or record is about
    FILER = "filer"  # the complainant, about their own complaint
    STAFF = "staff"  # handling bureau staff in scope


#: Audiences that must never see a complainant's identity, contact, exact location or raw photos.
RESTRICTED_AUDIENCES = frozenset({Audience.PUBLIC, Audience.OPERATOR})
