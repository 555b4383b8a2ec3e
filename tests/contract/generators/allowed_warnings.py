"""The only generator warnings a clean run may print (each line is a regular expression), with the reason.

Everything else a generator warns about is a defect of ``openapi/openapi.json`` and fails
``test_generators.py``.
"""

from __future__ import annotations

import re

ALLOWED: tuple[tuple[str, str], ...] = (
    (r"OpenAPI 3\.1 support is still in beta", "openapi-generator's own notice: FastAPI writes OpenAPI 3.1"),
    (r"\[deprecated\]|is deprecated", "a generator's deprecation notice about its own options"),
    # Not yet removed from the document (each names what it concerns; the generated code is complete):
    (
        r"ModelUtils - Failed to get the schema name: null",
        "openapi-generator, once per run while it parses the components (not traced to one schema yet)",
    ),
    (
        r"Could not compute datatypeWithEnum from [A-Za-z.]+, null",
        "the photos part of POST /api/v1/complaint-form (a list of files) and `details: any` of ApiError",
    ),
    (
        r"\(reserved word\) cannot be used as model name\. Renamed to Model[A-Z]\w*",
        "Swift and Dart: inline enums and a parameter named like a platform type (Locale, Type, Source); the "
        "generator prefixes them with Model",
    ),
)

_PATTERNS = [re.compile(pattern) for pattern, _reason in ALLOWED]


def unexpected(lines: list[str]) -> list[str]:
    """The warning lines of a generator's output that are not allowed."""
    return [line for line in lines if not any(p.search(line) for p in _PATTERNS)]
