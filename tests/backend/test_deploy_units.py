"""The example systemd units in deploy/systemd parse, and each starts a real ``gongping`` role with options the
command accepts; the worker's stop timeout covers the longest task."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from backend.cli import app
from backend.config import ROOT
from workers.celery_app import celery_app

UNITS = ROOT / "deploy" / "systemd"
ROLES = {"serve", "worker", "beat", "relay", "migrate"}


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return parser


def _services() -> list[Path]:
    return sorted(UNITS.glob("*.service"))


def test_there_is_a_unit_for_every_role() -> None:
    started = {shlex.split(_unit(p)["Service"]["ExecStart"])[1] for p in _services()}
    assert started == ROLES
    assert (UNITS / "gongping.target").is_file()


@pytest.mark.parametrize("path", _services(), ids=lambda p: p.name)
def test_each_unit_parses_and_starts_a_real_role(path: Path) -> None:
    unit = _unit(path)
    assert {"Unit", "Service"} <= set(unit.sections())
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"].replace("%i", "9101").replace("%H", "node1"))
    assert Path(argv[0]).name == "gongping"
    role, args = argv[1], argv[2:]
    assert role in ROLES
    command = typer.main.get_command(app)
    # Click parses the arguments as the real command would: an unknown option or a bad value fails here.
    with command.make_context("gongping", [role, *args], resilient_parsing=False) as ctx:  # type: ignore[attr-defined]
        sub = command.get_command(ctx, role)  # type: ignore[attr-defined]
        assert sub is not None
        sub.make_context(role, args)
    assert service["EnvironmentFile"] == "/etc/gongping/gongping.env"
    if role == "migrate":
        assert service["Type"] == "oneshot" and "Install" not in unit.sections()
    else:
        # SIGTERM to the main process only: Celery's pool and uvicorn finish what they have, then exit.
        assert service["KillMode"] == "mixed" and service["Restart"] == "always"
        assert unit["Install"]["WantedBy"] == "gongping.target"
    if role == "worker":
        assert int(service["TimeoutStopSec"]) > int(celery_app.conf.task_time_limit)


def test_systemd_analyze_accepts_the_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (the units are parsed above)")
    out = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *(str(p) for p in sorted(UNITS.glob("gongping*.*")) if p.suffix in (".service", ".target")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # The example install (/opt/gongping) does not exist here; anything else is a real mistake.
    problems = [
        line
        for line in out.stderr.splitlines()
        if line.strip() and "/opt/gongping/.venv/bin/gongping is not executable" not in line
    ]
    assert not problems, out.stderr
