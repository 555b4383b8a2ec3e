"""Which Chromium the browser tests drive: Debian's, never a downloaded one; in CI its absence is a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Set by .ci/run: a missing Chromium (a failed install) fails the browser tests instead of skipping them.
REQUIRE_ENV = "GONGPING_REQUIRE_BROWSER"


def chromium_executable() -> Path | None:
    """Debian's chromium, or one on PATH; None when there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def require_chromium() -> Path:
    """The Chromium to drive; without one the test skips, or fails when ``GONGPING_REQUIRE_BROWSER=1``."""
    executable = chromium_executable()
    if executable is None:
        reason = "Debian's chromium is not installed (apt-get install chromium); browser tests need it"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason}; {REQUIRE_ENV}=1 (CI) makes this a failure", pytrace=False)
        pytest.skip(reason)
    return executable


#: How every browser test launches it: headless, and nothing that reaches out to the network by itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
