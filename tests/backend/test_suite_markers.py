"""The suite runs what it claims: a test written for PostgreSQL is not deselected as "pure" on the PostgreSQL
re-run (``pytest -m "not pure"``), where it is the only place it can run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _collected(*args: str) -> list[str]:
    env = {**os.environ, "GONGPING_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_postgres_tests_survive_the_postgres_rerun_selection() -> None:
    collected = _collected(
        "-m",
        "not pure",
        "tests/backend/records/test_engine_properties.py",
        "tests/backend/records/test_engine.py",
    )
    assert any("test_sql_matches_reference_aggregate" in line for line in collected), collected
    # The pure engine tests are still left to the SQLite run.
    assert not any("tests/backend/records/test_engine.py" in line for line in collected), collected
