"""CSV jobs of verification results: upload checks, per-row error report, GB18030, idempotency, ownership."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from backend.auth.models import Role
from backend.instruments.models import Instrument, VerificationRecord
from backend.intake import jobs, service, verifications
from backend.intake.models import IntakeJob, VerificationSubmission
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind, RecordState
from backend.records.service import bureau_today
from tests.backend.intake.conftest import World
from tests.factories import make_account, make_instrument

TODAY = bureau_today()
ZH_HEADER = "出厂编号,统一社会信用代码,检定日期,检定结果,证书编号,有效期至,备注\n"
EN_HEADER = "instrument_id,verified_on,passed,certificate_no,notes\n"


def _count(world: World, model: type[VerificationRecord] | type[IntegrityRecord]) -> int:
    return world.session.exec(select(func.count()).select_from(model)).one()


def _mixed_file(world: World) -> tuple[bytes, list[Instrument]]:
    good = [make_instrument(world.session, world.operator) for _ in range(4)]
    day = (TODAY - timedelta(days=5)).isoformat()
    lines = [
        ZH_HEADER,
        f"{good[0].serial},{world.operator.uscc},{day},合格,C-1,,\n",  # row 2: fine
        f"{good[1].serial},{world.operator.uscc},{day},不合格,C-2,,称量超差\n",  # row 3: fine, fails
        f"{good[2].serial},{world.operator.uscc},2026-13-45,合格,C-3,,\n",  # row 4: bad date
        f"NO-SUCH-SERIAL,{world.operator.uscc},{day},合格,C-4,,\n",  # row 5: unknown instrument
        f"{good[3].serial},{world.operator.uscc},{day},也许,,,\n",  # row 6: bad result and no certificate
        "\n",  # blank: skipped, still counted in the numbering
        f"{good[2].serial},{world.operator.uscc},{day},pass,C-5,{TODAY + timedelta(days=300)},\n",  # row 8
    ]
    return "".join(lines).encode("utf-8"), good


def test_a_mixed_file_imports_the_good_rows_and_reports_the_bad(world: World) -> None:
    data, good = _mixed_file(world)
    resp = world.upload("verifications/import", world.institution, data)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["state"] == "queued" and job["progress"] == {"done": 0, "total": 6, "percent": 0.0}
    assert world.run(job["id"], chunk_size=4) == "succeeded"
    job = world.job(job["id"])
    assert (
        job["state"] == "succeeded" and job["progress"]["done"] == 6 and job["progress"]["percent"] == 100.0
    )
    assert (job["imported"], job["duplicates"], job["rejected"], job["records_created"]) == (3, 0, 3, 1)
    errors = world.client.get(job["errors_url"], headers=world.headers(world.institution)).json()
    found = [(e["row"], e["column"], e["code"]) for e in errors["items"]]
    assert found == [
        (4, "verified_on", "invalid_date"),
        (5, None, "unknown_instrument"),
        (6, "passed", "invalid_result"),
        (6, "certificate_no", "missing_value"),
    ]
    assert errors["items"][0]["message"].startswith("“2026-13-45”不是有效日期")
    english = world.client.get(
        job["errors_url"], headers=world.headers(world.institution) | {"Accept-Language": "en"}
    ).json()
    assert english["items"][0]["message"] == english["items"][0]["message_en"]
    world.session.expire_all()
    [failed] = world.session.exec(
        select(IntegrityRecord).where(IntegrityRecord.instrument_id == good[1].id)
    ).all()
    assert failed.kind is RecordKind.INSTRUMENT_FAILED_VERIFICATION and failed.state is RecordState.REPORTED
    assert failed.source is RecordSource.institution and "称量超差" in failed.summary
    updated = world.session.get(Instrument, good[2].id)
    assert updated is not None and updated.valid_until == TODAY + timedelta(days=300)
    rows = world.session.exec(
        select(VerificationSubmission.row_number).where(VerificationSubmission.job_id == job["id"])
    ).all()
    assert sorted(rows) == [2, 3, 8]


def test_the_error_report_downloads_as_csv(world: World) -> None:
    data, _good = _mixed_file(world)
    job = world.upload("verifications/import", world.institution, data).json()
    world.run(job["id"])
    resp = world.client.get(f"{job['errors_url']}?format=csv", headers=world.headers(world.institution))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    text = resp.content.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][0].startswith("行号") and len(table) == 5
    assert table[1][:3] == ["4", "verified_on", "invalid_date"]
    by_accept = world.client.get(
        job["errors_url"], headers=world.headers(world.institution) | {"Accept": "text/csv"}
    )
    assert by_accept.content == resp.content


def test_uploading_the_same_file_again_changes_nothing(world: World) -> None:
    data, _good = _mixed_file(world)
    first = world.upload("verifications/import", world.institution, data).json()
    world.run(first["id"])
    before = (_count(world, VerificationRecord), _count(world, IntegrityRecord))
    second = world.upload("verifications/import", world.institution, data).json()
    world.run(second["id"])
    job = world.job(second["id"])
    assert (job["imported"], job["duplicates"], job["rejected"], job["records_created"]) == (0, 3, 3, 0)
    assert (_count(world, VerificationRecord), _count(world, IntegrityRecord)) == before
    # A finished job run again (a redelivered task) does nothing either.
    assert world.run(second["id"]) == "succeeded"
    assert world.job(second["id"])["imported"] == 0


def test_a_gb18030_file_with_english_headers_or_a_bom_is_read(world: World) -> None:
    scale = make_instrument(world.session, world.operator)
    day = (TODAY - timedelta(days=1)).isoformat()
    gb = (ZH_HEADER + f"{scale.serial},{world.operator.uscc},{day},不合格,国检-甲-1,,表头为中文\n").encode(
        "gb18030"
    )
    job = world.upload("verifications/import", world.institution, gb).json()
    assert job["encoding"] == "gb18030"
    world.run(job["id"])
    assert world.job(job["id"])["imported"] == 1
    [submission] = world.session.exec(
        select(VerificationSubmission).where(VerificationSubmission.instrument_id == scale.id)
    ).all()
    assert submission.certificate_no == "国检-甲-1" and submission.notes == "表头为中文"
    other = make_instrument(world.session, world.operator)
    bom = ("\ufeff" + EN_HEADER + f"{other.id},{day},passed,EN-1,\n").encode("utf-8")
    job = world.upload("verifications/import", world.institution, bom).json()
    assert job["encoding"] == "utf-8-sig"
    world.run(job["id"])
    assert world.job(job["id"])["imported"] == 1


def test_uploads_are_checked_before_a_job_is_queued(world: World) -> None:
    header_only = EN_HEADER.encode()
    cases = [
        (b"", 422, "empty_csv"),
        (header_only, 422, "empty_csv"),
        (b"serial,verified_on\nA,2026-01-01\n", 422, "missing_columns"),
        (b"\xff\xfe\xff\xfe,\x81\n", 415, "unsupported_encoding"),
        (EN_HEADER.encode() + b'1,"' + b"x" * 200_000 + b'",pass,C,\n', 422, "malformed_csv"),
    ]
    for content, status, code in cases:
        resp = world.upload("verifications/import", world.institution, content)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), resp.text
    listed = world.client.get("/api/v1/intake/jobs", headers=world.headers(world.institution)).json()
    assert listed["total"] == 0


def test_more_than_100000_rows_is_refused_with_a_clear_error(world: World) -> None:
    rows = "".join(f"{i},2026-01-01,合格,C{i},\n" for i in range(1, service.MAX_ROWS + 2))
    resp = world.upload("verifications/import", world.institution, (EN_HEADER + rows).encode())
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    assert error["code"] == "too_many_rows" and error["details"] == {"rows": 100_001, "max_rows": 100_000}
    assert "100000" in error["message"]


def test_jobs_belong_to_their_uploader(world: World) -> None:
    data, _good = _mixed_file(world)
    job = world.upload("verifications/import", world.institution, data).json()
    world.run(job["id"])
    other = make_account(world.session, Role.institution)
    for path in (f"/api/v1/intake/jobs/{job['id']}", f"/api/v1/intake/jobs/{job['id']}/errors"):
        assert world.client.get(path, headers=world.headers(other)).status_code == 404
        assert world.client.get(path, headers=world.headers(world.association)).status_code == 404
        assert world.client.get(path, headers=world.headers(world.staff)).status_code == 403
    assert world.client.get("/api/v1/intake/jobs", headers=world.headers(other)).json()["total"] == 0


def test_only_institutions_upload_verification_results(world: World) -> None:
    data, _good = _mixed_file(world)
    for account in (world.staff, world.association):
        assert world.upload("verifications/import", account, data).status_code == 403
    assert world.session.exec(select(col(IntakeJob.id))).all() == []


def test_a_job_interrupted_mid_file_resumes_after_the_last_committed_chunk(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _good = _mixed_file(world)
    job = world.upload("verifications/import", world.institution, data).json()
    real = verifications.apply_verifications
    calls: list[int] = []

    def crash_on_second_chunk(*args: Any, **kwargs: Any) -> verifications.Outcome:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "apply_verifications", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        world.run(job["id"], chunk_size=2)
    world.session.rollback()  # the failed chunk's unit of work, as session_scope would
    halfway = world.job(job["id"])
    assert halfway["state"] == "running" and halfway["progress"]["done"] == 2 and halfway["imported"] == 2
    monkeypatch.setattr(jobs, "apply_verifications", real)
    assert world.run(job["id"], chunk_size=2) == "succeeded"
    done = world.job(job["id"])
    assert (done["imported"], done["duplicates"], done["rejected"]) == (3, 0, 3)
    assert done["progress"]["done"] == 6


def test_a_control_character_in_a_cell_is_that_rows_error_only(world: World) -> None:
    # PostgreSQL refuses NUL in text: unchecked, one such cell would fail the whole job.
    good = [make_instrument(world.session, world.operator) for _ in range(2)]
    day = (TODAY - timedelta(days=5)).isoformat()
    data = (
        ZH_HEADER
        + f"{good[0].serial},{world.operator.uscc},{day},合格,C-1\x00X,,\n"
        + f"{good[1].serial},{world.operator.uscc},{day},合格,C-2,,备注\x07\n"
        + f"{good[1].serial},{world.operator.uscc},{day},合格,C-3,,\t正常备注\n"
    ).encode("utf-8")
    job = world.upload("verifications/import", world.institution, data).json()
    assert world.run(job["id"]) == "succeeded"
    job = world.job(job["id"])
    assert (job["imported"], job["rejected"]) == (1, 2)
    errors = world.client.get(job["errors_url"], headers=world.headers(world.institution)).json()["items"]
    assert [(e["row"], e["column"], e["code"]) for e in errors] == [
        (2, "certificate_no", "control_character"),
        (3, "notes", "control_character"),
    ]
