"""The one way server-rendered pages (the public QR page, the workbench) set up Jinja2."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined


def environment(folder: Path) -> Environment:
    """Templates from ``folder``: every value escaped unless it is our own Markup (names, complaint texts and
    findings are other people's words and render as text), a missing name an error instead of an empty string,
    and no reloading (templates ship with the code)."""
    return Environment(
        loader=FileSystemLoader(folder),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
