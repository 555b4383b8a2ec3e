"""``gongping audit verify`` catches an audit row edited behind the application's back.

verify_chain's detection of altered, inserted and deleted rows is tested in
tests/backend/audit/test_audit_chain.py; this checks the command an operator runs, on committed data written
through the API, and that it fails (exit 1, naming the row) once one field of one entry is edited in the
database directly (on PostgreSQL past the append-only trigger, as a superuser could).
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.cli import app as cli
from backend.db import new_session
from backend.main import create_app
from tests.factories import COUNTY_A, login, make_account, next_uscc


def test_audit_verify_command_detects_an_edited_row(committed_session: Session) -> None:
    staff = make_account(committed_session, Role.staff, COUNTY_A)
    committed_session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        headers = login(client, staff)
        for i in range(3):
            body = {
                "uscc": next_uscc(),
                "name": f"审计测试经营者{i}",
                "sector": "market",
                "address": "测试地址 1 号",
                "legal_representative": "测试人",
                "jurisdiction_code": COUNTY_A,
            }
            assert client.post("/api/v1/operators", json=body, headers=headers).status_code == 201
    with new_session() as s:
        entries = s.exec(
            select(AuditEntry)
            .where(col(AuditEntry.action) == "operator.create")
            .order_by(col(AuditEntry.seq))
        ).all()
    assert len(entries) >= 3
    runner = CliRunner()
    intact = runner.invoke(cli, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    target = entries[-2]
    with new_session() as s:
        if s.get_bind().dialect.name == "postgresql":
            # The append-only trigger refuses this to the application; a superuser can switch it off.
            s.execute(text("SET LOCAL session_replication_role = replica"))
        s.execute(
            text("UPDATE audit_entry SET entity_id = :e WHERE seq = :s"), {"e": "tampered", "s": target.seq}
        )
        s.commit()
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1, broken.output
    assert "altered" in broken.output and f"seq={target.seq}" in broken.output
