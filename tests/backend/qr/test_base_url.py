"""QR codes point at the address the product serves on unless a public base URL is configured."""

from __future__ import annotations

import logging

import pytest
from sqlmodel import Session

from backend.auth.models import Role
from backend.config import Settings
from backend.main import create_app
from backend.qr import service as qr_service
from tests.factories import COUNTY_A, make_account, make_operator

SECRET = "s" * 40


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings read from exactly these variables (no .env file, nothing inherited)."""
    for name in ("GONGPING_PUBLIC_BASE_URL", "GONGPING_HOST", "GONGPING_PORT", "GONGPING_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(f"GONGPING_{name}", value)
    return Settings(_env_file=None)


@pytest.mark.parametrize(
    ("env", "base"),
    [
        ({"PORT": "18801"}, "http://127.0.0.1:18801"),
        ({"HOST": "192.168.1.20", "PORT": "18801"}, "http://192.168.1.20:18801"),
        ({"HOST": "0.0.0.0", "PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"HOST": "::1"}, "http://[::1]:8000"),
        ({"PORT": "18801", "PUBLIC_BASE_URL": "https://gp.example.cn"}, "https://gp.example.cn"),
    ],
)
def test_codes_point_at_the_port_served_on(
    session: Session, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], base: str
) -> None:
    settings = _settings(monkeypatch, **env)
    assert settings.public_base_url == base
    assert settings.public_base_url_derived is ("PUBLIC_BASE_URL" not in env)
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff)
    monkeypatch.setattr(qr_service, "get_settings", lambda: settings)
    assert qr_service.code_of(operator).url.startswith(f"{base}/q/")


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"ENVIRONMENT": "production", "SECRET_KEY": SECRET}, True),
        ({"ENVIRONMENT": "staging", "SECRET_KEY": SECRET, "PORT": "18801"}, True),
        (
            {"ENVIRONMENT": "production", "SECRET_KEY": SECRET, "PUBLIC_BASE_URL": "https://gp.example.cn"},
            False,
        ),
        ({"ENVIRONMENT": "dev"}, False),
    ],
)
def test_start_up_warns_outside_dev_without_a_base_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, env: dict[str, str], warned: bool
) -> None:
    settings = _settings(monkeypatch, **env)
    with caplog.at_level(logging.WARNING, logger="gongping"):
        create_app(settings)
    messages = [r.getMessage() for r in caplog.records if r.name == "gongping"]
    assert any("GONGPING_PUBLIC_BASE_URL" in m for m in messages) is warned, messages
    if warned:
        assert settings.public_base_url in messages[0]
