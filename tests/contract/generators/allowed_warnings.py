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
        "the photos part of POST /api/v1/complaints (a list of files) and `details: any` of ApiError",
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


#: tsc errors in the typescript-fetch client that are a generator defect, not ours: for an operation with two
#: request media types (POST /api/v1/complaints: the app's JSON and the web page's multipart form),
#: typescript-fetch writes the JSON body but still imports the form's model, which it does not generate. The
#: issue stays open until the form has an operation of its own; every other type error fails the test.
KNOWN_TSC_ERRORS: tuple[tuple[str, str], ...] = (
    (
        r"error TS2307: Cannot find module '\.\./models/ComplaintsCreateRequest'",
        "typescript-fetch imports the multipart form model of a two-media-type body without generating it",
    ),
)

_TSC_PATTERNS = [re.compile(pattern) for pattern, _reason in KNOWN_TSC_ERRORS]


def unexpected_tsc_errors(output: str) -> list[str]:
    """The lines of tsc's output that report an error not listed in ``KNOWN_TSC_ERRORS``."""
    return [
        line
        for line in output.splitlines()
        if "error TS" in line and not any(p.search(line) for p in _TSC_PATTERNS)
    ]
