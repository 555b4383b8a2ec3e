"""Shared set-up for intake tests: an institution, an association, staff and operators with instruments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session

from backend.auth.models import Account, Role
from backend.intake import jobs, memberships, service
from backend.intake.models import AssociationMembership, JobState
from backend.media.factory import media_storage
from backend.operators.models import Operator
from backend.records.service import bureau_today
from tests.factories import COUNTY_A, OTHER_PROVINCE_COUNTY, login, make_account, make_operator


@dataclass
class World:
    """Staff of county A with two operators; a national institution, a Beijing one, and an association."""

    staff: Account
    operator: Operator
    other_operator: Operator
    institution: Account
    beijing_institution: Account
    association: Account
    client: TestClient
    session: Session

    def headers(self, account: Account) -> dict[str, str]:
        """Bearer headers for ``account``."""
        return login(self.client, account)

    def upload(self, path: str, account: Account, content: bytes, name: str = "data.csv") -> Response:
        """POST a CSV file to an intake import route."""
        return self.client.post(
            f"/api/v1/intake/{path}",
            files={"file": (name, content, "text/csv")},
            headers=self.headers(account),
        )

    def run(self, job_id: int, chunk_size: int = service.CHUNK) -> JobState | None:
        """Run a job as the worker would, in the test's transaction (each chunk a savepoint)."""
        return jobs.run_job(job_id, storage=media_storage(), unit=self.unit, chunk_size=chunk_size)

    @property
    def unit(self) -> Callable[[], AbstractContextManager[Session]]:
        """A unit of work on the test session: commits are savepoints of the rolled-back test transaction."""

        @contextmanager
        def _unit() -> Iterator[Session]:
            yield self.session
            self.session.commit()

        return _unit

    def enrol(
        self, operator: Operator, account: Account | None = None, joined_on: date | None = None
    ) -> AssociationMembership:
        """Register ``operator`` as a current member of the association (a year ago unless told)."""
        data = memberships.MembershipInput(
            operator_uscc=operator.uscc, joined_on=joined_on or bureau_today() - timedelta(days=365)
        )
        return memberships.add(self.session, account=account or self.association, data=data)

    def job(self, job_id: int, account: Account | None = None) -> dict[str, Any]:
        """GET the job as its owner."""
        resp = self.client.get(
            f"/api/v1/intake/jobs/{job_id}", headers=self.headers(account or self.institution)
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body


@pytest.fixture
def world(session: Session, client: TestClient) -> World:
    staff = make_account(session, Role.staff, COUNTY_A)
    return World(
        staff=staff,
        operator=make_operator(session, staff),
        other_operator=make_operator(session, staff),
        institution=make_account(session, Role.institution),
        beijing_institution=make_account(session, Role.institution, OTHER_PROVINCE_COUNTY),
        association=make_account(session, Role.association, "330100"),
        client=client,
        session=session,
    )
