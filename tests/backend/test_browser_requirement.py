"""A missing Chromium skips the browser tests on a developer's machine and fails them in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import browser


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setattr(browser.shutil, "which", lambda _name: None)


@pytest.mark.usefixtures("no_chromium")
def test_missing_chromium_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(browser.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        browser.require_chromium()


@pytest.mark.usefixtures("no_chromium")
def test_missing_chromium_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(browser.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="GONGPING_REQUIRE_BROWSER"):
        browser.require_chromium()


def test_present_chromium_is_driven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    executable = tmp_path / "chromium"
    executable.write_text("")
    monkeypatch.setattr(browser, "CHROMIUM", executable)
    monkeypatch.setenv(browser.REQUIRE_ENV, "1")
    assert browser.require_chromium() == executable
