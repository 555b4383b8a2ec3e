"""Read-only auditors (审计员): they sign in to the workbench and the API, read what staff of their jurisdiction
read (audited as staff reads are), are shown no action's form, and every write is refused with a 403."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from backend.audit.models import AuditEntry
from backend.auth.models import Account, Role
from backend.cases.models import Case, CaseState
from backend.cli import app as cli
from tests.backend.cases.conftest import Bureaus, file_and_route
from tests.backend.workbench.conftest import wb_login
from tests.factories import COUNTY_A, PASSWORD, login, make_account, make_operator


def _reads(session: Session, actor_id: int, action: str) -> int:
    session.expire_all()
    return len(
        session.exec(
            select(AuditEntry.id).where(
                col(AuditEntry.actor_id) == actor_id, col(AuditEntry.action) == action
            )
        ).all()
    )


def test_an_auditor_reads_the_case_in_the_workbench_but_takes_no_action(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    auditor = make_account(session, Role.auditor, COUNTY_A)
    session.commit()
    csrf = wb_login(client, auditor)
    page = client.get(f"/workbench/cases/{case.id}")
    assert page.status_code == 200 and case.case_no in page.text
    # No action's form, only the read-only notice; the read is audited like a staff member's.
    assert 'action="/workbench/cases/' not in page.text and "只读" in page.text
    assert _reads(session, auditor.id or 0, "case.read") == 1
    refused = client.post(f"/workbench/cases/{case.id}/accept", data={"csrf": csrf}, follow_redirects=False)
    assert refused.status_code == 403 and "审计员账号只能查看" in refused.text
    session.expire_all()
    still = session.get(Case, case.id)
    assert still is not None and still.state is CaseState.routed
    # The operator's file likewise: every section, no form that would change anything, and a post refused.
    operator = make_operator(session, make_account(session, Role.staff, COUNTY_A))
    session.commit()
    operator_id = operator.id
    file = client.get(f"/workbench/operators/{operator_id}")
    assert file.status_code == 200 and _reads(session, auditor.id or 0, "operator.read") == 1
    assert f'action="/workbench/operators/{operator_id}/' not in file.text
    schedule = client.post(
        f"/workbench/operators/{operator_id}/interviews",
        data={"csrf": csrf, "kind": "reminder", "subject": "检定"},
        follow_redirects=False,
    )
    assert schedule.status_code == 403 and "审计员账号只能查看" in schedule.text
    # A stale form gets the same answer on every page: the account is read-only whatever the form says.
    for path in (f"/workbench/cases/{case.id}/accept", f"/workbench/operators/{operator_id}/interviews"):
        stale = client.post(path, data={"csrf": "stale", "kind": "reminder"}, follow_redirects=False)
        assert stale.status_code == 403 and "审计员账号只能查看" in stale.text, path
    for path in (
        "/workbench/",
        "/workbench/reviews",
        "/workbench/reviews/publication",
        "/workbench/dashboard",
    ):
        assert client.get(path).status_code == 200, path


def test_an_auditors_token_reads_the_api_and_every_write_is_a_403(
    client: TestClient, session: Session, bureaus: Bureaus, headers: dict[str, dict[str, str]]
) -> None:
    case = file_and_route(client, session, headers["filer"])
    auditor = make_account(session, Role.auditor, COUNTY_A)
    session.commit()
    token = login(client, auditor)
    read = client.get(f"/api/v1/cases/{case.id}", headers=token)
    assert read.status_code == 200 and _reads(session, auditor.id or 0, "case.read") == 1
    write = client.post(f"/api/v1/cases/{case.id}/accept", json={}, headers=token)
    assert write.status_code == 403 and write.json()["error"]["code"] == "forbidden"
    # Another county's case stays a 404, as for its staff.
    other = make_account(session, Role.auditor, "330102")
    session.commit()
    assert client.get(f"/api/v1/cases/{case.id}", headers=login(client, other)).status_code == 404


def test_the_cli_creates_auditors(committed_session: Session) -> None:
    session = committed_session
    session.rollback()  # SQLite: hold no lock while the CLI writes
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["account", "create", "auditor_xihu", "--role", "auditor", "--jurisdiction", COUNTY_A],
        env={"GONGPING_NEW_PASSWORD": PASSWORD},
    )
    assert made.exit_code == 0, made.output
    session.expire_all()
    account = session.exec(select(Account).where(col(Account.username) == "auditor_xihu")).one()
    assert account.role is Role.auditor and account.jurisdiction_code == COUNTY_A
    # An auditor needs a jurisdiction; an unknown role is refused.
    assert (
        runner.invoke(
            cli, ["account", "create", "a2", "--role", "auditor"], env={"GONGPING_NEW_PASSWORD": PASSWORD}
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(
            cli,
            ["account", "create", "a3", "--role", "operator", "--jurisdiction", COUNTY_A],
            env={"GONGPING_NEW_PASSWORD": PASSWORD},
        ).exit_code
        == 2
    )
