"""Open311 GeoReport v2: every endpoint in JSON and XML, validated against the published JSON Schemas."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from backend.audit.models import AuditEntry
from backend.audit.service import SYSTEM
from backend.auth.models import Account, Role
from backend.complaints.models import Complaint, ComplaintStatus
from backend.config import get_settings
from backend.instruments.models import Instrument
from backend.open311 import service as open311_service
from backend.open311.models import Open311Client, Open311Submission
from backend.open311.schemas import Open311Request
from backend.operators.models import Operator, Stall
from backend.qr import service as qr_service
from backend.records import service as records_service
from backend.records.models import IntegrityRecord, RecordSource
from backend.records.rules import RecordKind, RecordState
from tests.factories import (
    COUNTY_A,
    complaint_json,
    login,
    make_account,
    make_instrument,
    make_operator,
    make_stall,
    post_complaint,
)

SPECS = Path("/work/shared/specs/open311-georeport-v2")
if not SPECS.exists():  # a checkout beside the shared folder
    SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs" / "open311-georeport-v2"
BASE = "/open311/v2"
HOSTILE = "A&B <script>alert('x')</script> \x01\x1f市场"


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SPECS / name).read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft7Validator]:
    """A validator per published schema; ``requests.json`` and ``services.json`` refer to their item files."""
    names = ["service.json", "services.json", "service-definition.json", "request.json", "requests.json"]
    registry: Registry[Any] = Registry().with_resources(
        (name, Resource.from_contents(_schema(name), default_specification=DRAFT7)) for name in names
    )
    swagger = _schema("swagger.json")
    response = {"type": "array", "items": swagger["definitions"]["RequestResponse"]}
    built = {n: Draft7Validator(_schema(n), registry=registry, format_checker=FormatChecker()) for n in names}
    built["RequestResponse"] = Draft7Validator(response)
    return built


def _valid(validators: dict[str, Draft7Validator], name: str, body: Any) -> None:
    errors = sorted(validators[name].iter_errors(body), key=str)
    assert not errors, [e.message for e in errors]
    # FormatChecker only checks date-time when rfc3339-validator is installed: check it ourselves too.
    items = body if isinstance(body, list) else [body]
    for item in items:
        for field in ("requested_datetime", "updated_datetime", "expected_datetime"):
            if isinstance(item, dict) and item.get(field) is not None:
                assert datetime.fromisoformat(item[field]).tzinfo is not None


def _xml(resp: Any) -> ET.Element:
    assert resp.headers["content-type"].startswith("text/xml"), resp.headers["content-type"]
    assert resp.content.startswith(b"<?xml")
    return ET.fromstring(resp.content)


@dataclass
class World:
    staff: Account
    market: Operator
    stall: Stall
    scale: Instrument
    api_key: str
    client_row: Open311Client


@pytest.fixture
def world(session: Session) -> World:
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff, name=HOSTILE, location=(120.105234, 30.279567))
    stall = make_stall(session, market, number="C3", holder_name="王五")
    scale = make_instrument(session, market, stall=stall, verified_on=date.today() - timedelta(days=10))
    client_row, api_key = open311_service.create_client(session, name="Civic Lab", actor=SYSTEM)
    session.commit()
    return World(staff, market, stall, scale, api_key, client_row)


def _post(client: TestClient, fmt: str = "json", headers: dict[str, str] | None = None, **fields: Any) -> Any:
    return client.post(f"{BASE}/requests.{fmt}", data={k: str(v) for k, v in fields.items()}, headers=headers)


# ---- services ----------------------------------------------------------------------------------------------


def test_services_json_validates_and_lists_every_category(
    client: TestClient, validators: dict[str, Draft7Validator]
) -> None:
    resp = client.get(f"{BASE}/services.json")
    assert resp.status_code == 200 and resp.headers["cache-control"].startswith("public")
    body = resp.json()
    _valid(validators, "services.json", body)
    codes = {s["service_code"]: s for s in body}
    assert set(codes) == {
        "short_weight",
        "instrument_cheating",
        "unverified_instrument",
        "overdue_instrument",
        "net_content",
        "other",
    }
    assert codes["short_weight"]["service_name"] == "缺斤短两" and codes["short_weight"]["type"] == "realtime"
    assert "short weight" in codes["short_weight"]["keywords"].lower()
    english = client.get(f"{BASE}/services.json?lang=en").json()
    assert {s["service_code"]: s["service_name"] for s in english}["short_weight"] == "Short weight"


def test_services_xml_uses_the_spec_element_names(client: TestClient) -> None:
    root = _xml(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    services = root.findall("service")
    assert len(services) == 6
    first = services[0]
    assert [c.tag for c in first] == [
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    ]
    assert first.findtext("metadata") == "true" and first.findtext("type") == "realtime"


def test_service_definition_json_and_xml(client: TestClient, validators: dict[str, Draft7Validator]) -> None:
    resp = client.get(f"{BASE}/services/short_weight.json")
    assert resp.status_code == 200
    body = resp.json()
    _valid(validators, "service-definition.json", body)
    assert [a["code"] for a in body["attributes"]] == ["qr_token", "operator_id", "declared_g", "measured_g"]
    assert [a["code"] for a in client.get(f"{BASE}/services/other.json").json()["attributes"]] == [
        "qr_token",
        "operator_id",
    ]
    root = _xml(client.get(f"{BASE}/services/short_weight.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "short_weight"
    attributes = root.find("attributes")
    assert attributes is not None and len(attributes.findall("attribute")) == 4
    assert attributes.findall("attribute")[0].findtext("datatype") == "string"


def test_unknown_service_is_404_in_either_format(client: TestClient) -> None:
    resp = client.get(f"{BASE}/services/casino.json")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = client.get(f"{BASE}/services/casino.xml")
    assert resp.status_code == 404
    root = _xml(resp)
    assert root.tag == "errors" and root.findtext("error/code") == "404"
    assert client.get(f"{BASE}/services.html").status_code == 422


# ---- reading requests ----------------------------------------------------------------------------------------


@pytest.fixture
def filed(client: TestClient, session: Session, world: World) -> dict[str, int]:
    """A QR complaint about the stall, a geotag-only one, a closed one and a supervisor's patrol report."""
    device = make_account(session, Role.consumer_device)
    supervisor = make_account(session, Role.supervisor, COUNTY_A)
    session.commit()
    headers = login(client, device)
    token = qr_service.code_of(world.stall).token
    contact = {"name": "赵六", "phone": "13912345678"}
    about = post_complaint(
        client,
        headers,
        complaint_json(qr_token=token, description="老板叫王五，电话 13800000000，秤不准", contact=contact),
    )
    loose = post_complaint(
        client,
        headers,
        complaint_json(
            category="net_content",
            location={"lon": 120.123456, "lat": 30.265432, "coord_system": "wgs84", "accuracy_m": 5},
        ),
    )
    closed = post_complaint(client, headers, complaint_json(category="other"))
    patrol = post_complaint(
        client,
        login(client, supervisor),
        complaint_json(qr_token=token, finding="suspected_cheating"),
    )
    ids = {
        name: r.json()["id"]
        for name, r in (("about", about), ("loose", loose), ("closed", closed), ("patrol", patrol))
    }
    for resp in (about, loose, closed, patrol):
        assert resp.status_code == 201, resp.text
    done = session.get(Complaint, ids["closed"])
    routed = session.get(Complaint, ids["about"])
    assert done is not None and routed is not None
    done.status = ComplaintStatus.unsubstantiated
    routed.status = ComplaintStatus.investigating
    routed.jurisdiction_code = COUNTY_A
    session.commit()
    return ids


def test_requests_json_is_the_public_subset(
    client: TestClient, world: World, filed: dict[str, int], validators: dict[str, Draft7Validator]
) -> None:
    resp = client.get(f"{BASE}/requests.json")
    assert resp.status_code == 200
    body = resp.json()
    _valid(validators, "requests.json", body)
    by_id = {r["service_request_id"]: r for r in body}
    assert set(by_id) == {str(filed["about"]), str(filed["loose"]), str(filed["closed"])}  # no patrol report
    about = by_id[str(filed["about"])]
    assert about["status"] == "open" and about["status_notes"] == "已受理，正在处理"
    assert about["service_code"] == "short_weight" and about["service_name"] == "缺斤短两"
    assert about["agency_responsible"] and "市场监督管理局" in about["agency_responsible"]
    # An allegation names nobody: no operator, address or place before a reviewed finding (Art. 18, 19).
    assert about["description"] == "缺斤短两" and about["address"] is None
    assert (about["lat"], about["long"]) == (None, None)
    loose = by_id[str(filed["loose"])]
    assert (loose["lat"], loose["long"]) == (30.265, 120.123) and loose["address"] is None
    closed = by_id[str(filed["closed"])]
    assert closed["status"] == "closed" and closed["status_notes"] == "已办结"
    text = resp.text
    for secret in (
        "赵六",
        "13912345678",
        "13800000000",
        "王五",
        "老板",
        "经查不属实",
        "30.279567",
        "30.265432",
    ):
        assert secret not in text, secret
    assert all(r["media_url"] is None for r in body)


def test_requests_filters_and_single_request(
    client: TestClient, world: World, filed: dict[str, int], validators: dict[str, Draft7Validator]
) -> None:
    def ids(query: str) -> set[str]:
        resp = client.get(f"{BASE}/requests.json?{query}")
        assert resp.status_code == 200, resp.text
        return {r["service_request_id"] for r in resp.json()}

    assert ids("status=closed") == {str(filed["closed"])}
    assert ids("status=open,closed") == ids("") and len(ids("")) == 3
    assert ids("service_code=net_content,other") == {str(filed["loose"]), str(filed["closed"])}
    assert ids(f"service_request_id={filed['loose']},{filed['patrol']}") == {str(filed["loose"])}
    assert ids(f"jurisdiction_id={COUNTY_A}") == {str(filed["about"])}
    now = datetime.now().astimezone()
    assert ids(f"start_date={(now - timedelta(days=1)).isoformat()}&end_date={now.isoformat()}") == ids("")
    assert ids(f"end_date={(now - timedelta(days=2)).isoformat()}") == set()
    one = client.get(f"{BASE}/requests/{filed['about']}.json")
    assert one.status_code == 200
    _valid(validators, "requests.json", one.json())
    assert [r["service_request_id"] for r in one.json()] == [str(filed["about"])]
    for missing in (filed["patrol"], 99999999, "abc", "1" * 30):
        resp = client.get(f"{BASE}/requests/{missing}.json")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    assert _xml(client.get(f"{BASE}/requests/{filed['patrol']}.xml")).findtext("error/code") == "404"


def test_requests_xml_escapes_names_and_drops_control_characters(
    client: TestClient, session: Session, world: World, filed: dict[str, int]
) -> None:
    _finding(session, world.market, filed["about"], RecordState.VERIFIED, published=True)
    resp = client.get(f"{BASE}/requests.xml?service_code=short_weight")
    root = _xml(resp)
    assert root.tag == "service_requests"
    requests = root.findall("request")
    assert len(requests) == 1
    request = requests[0]
    assert [c.tag for c in request] == list(Open311Request.model_fields)
    assert request.findtext("service_request_id") == str(filed["about"])
    assert request.findtext("description") == "缺斤短两；被投诉经营者：A&B <script>alert('x')</script> 市场"
    assert b"<script>" not in resp.content and b"&lt;script&gt;" in resp.content
    assert request.findtext("lat") == "30.28" and request.findtext("media_url") == ""


def _finding(
    session: Session, operator: Operator, complaint_id: int, state: RecordState, *, published: bool
) -> IntegrityRecord:
    """The record a case makes from a complaint, in a given state, and whether the publication review passed."""
    record = session.execute(
        select(IntegrityRecord).where(
            col(IntegrityRecord.source_ref) == open311_service.complaint_ref(complaint_id)
        )
    ).scalar_one_or_none()
    if record is None:
        record = records_service.create(
            session,
            operator=operator,
            kind=RecordKind.COMPLAINT_SUBSTANTIATED,
            fact_date=date.today(),
            source=RecordSource.complaint,
            source_ref=open311_service.complaint_ref(complaint_id),
            actor=SYSTEM,
        )
    # Set directly: the states and the review flag are what the feed reads; the review is tested elsewhere.
    record.state = state
    record.public_eligible = published
    session.add(record)
    session.commit()
    return record


def test_requests_name_the_operator_only_after_a_reviewed_finding(
    client: TestClient,
    session: Session,
    world: World,
    filed: dict[str, int],
    validators: dict[str, Draft7Validator],
) -> None:
    # The operator's name holds its holder's name, spaced differently: the public sees it masked.
    world.market.name = "王小二水果店"
    world.market.legal_representative = "王 小二"
    session.add(world.market)
    session.commit()
    complaint = session.get(Complaint, filed["about"])
    assert complaint is not None
    url = f"{BASE}/requests/{filed['about']}.json"

    def shown(status: ComplaintStatus) -> dict[str, Any]:
        assert complaint is not None
        complaint.status = status
        session.add(complaint)
        session.commit()
        one = client.get(url)
        listing = client.get(f"{BASE}/requests.json")
        assert one.status_code == 200 and listing.status_code == 200, (one.text, listing.text)
        _valid(validators, "requests.json", one.json())
        _valid(validators, "requests.json", listing.json())
        found: dict[str, Any] = one.json()[0]
        # The list and the single request say the same.
        assert [r for r in listing.json() if r["service_request_id"] == str(filed["about"])] == [found]
        return found

    situations: list[tuple[RecordState | None, bool]] = [
        (None, False),
        (RecordState.REPORTED, False),
        (RecordState.VERIFIED, False),
        (RecordState.DISMISSED, False),
        (RecordState.VERIFIED, True),
        (RecordState.REVOKED, False),
    ]
    for state, published in situations:
        if state is not None:
            _finding(session, world.market, filed["about"], state, published=published)
        for status in ComplaintStatus:
            request = shown(status)
            text = json.dumps(request, ensure_ascii=False)
            assert "小二" not in text, (status, state)
            if state is RecordState.VERIFIED and published:
                assert request["description"] == "缺斤短两；被投诉经营者：王**水果店"
                assert request["address"] == world.market.address
                assert (request["lat"], request["long"]) == (30.28, 120.105)
            else:
                assert request["description"] == "缺斤短两", (status, state, published)
                assert request["address"] is None and request["lat"] is None and request["long"] is None
                assert "王" not in text and world.market.address not in text


@pytest.mark.parametrize(
    "query",
    [
        "status=pending",
        "service_code=casino",
        "start_date=yesterday",
        "start_date=2026-01-01T00:00:00%2B08:00&end_date=2026-06-01T00:00:00%2B08:00",
        "start_date=2026-06-01T00:00:00Z&end_date=2026-05-01T00:00:00Z",
        "service_request_id=1,x",
        "jurisdiction_id=abc",
    ],
)
def test_bad_query_arguments_are_400_in_both_formats(client: TestClient, query: str) -> None:
    resp = client.get(f"{BASE}/requests.json?{query}")
    assert resp.status_code == 400 and resp.json()["error"]["code"].startswith("invalid_")
    xml_resp = client.get(f"{BASE}/requests.xml?{query}")
    assert xml_resp.status_code == 400 and _xml(xml_resp).findtext("error/code") == "400"


def test_unknown_jurisdiction_is_404(client: TestClient) -> None:
    assert client.get(f"{BASE}/requests.json?jurisdiction_id=999999").status_code == 404


# ---- filing --------------------------------------------------------------------------------------------------


def _filing(**extra: Any) -> dict[str, Any]:
    return {
        "service_code": "short_weight",
        "lat": 30.2795,
        "long": 120.1052,
        "description": "复称少了二两",
        **extra,
    }


def test_post_without_or_with_a_wrong_key_is_403(client: TestClient, session: Session, world: World) -> None:
    before = session.exec(select(Complaint)).all()
    for fields in (_filing(), _filing(api_key="o311_nope"), _filing(api_key="")):
        resp = _post(client, **fields)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "invalid_api_key"
    xml_resp = _post(client, "xml", **_filing(api_key="wrong"))
    assert xml_resp.status_code == 403
    root = _xml(xml_resp)
    assert (
        root.tag == "errors" and root.findtext("error/code") == "403" and root.findtext("error/description")
    )
    assert session.exec(select(Complaint)).all() == before


def test_post_files_a_complaint_through_the_complaint_service(
    client: TestClient, session: Session, world: World, validators: dict[str, Draft7Validator]
) -> None:
    resp = _post(
        client,
        **_filing(
            api_key=world.api_key,
            email="citizen@example.org",
            first_name="小",
            last_name="明",
            phone="13700001111",
            account_id="civic-user-7",
            media_url="https://example.org/p.jpg",
        ),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    _valid(validators, "RequestResponse", body)
    assert (
        len(body) == 1
        and body[0]["account_id"] == "civic-user-7"
        and "市场监管部门" in body[0]["service_notice"]
    )
    complaint = session.get(Complaint, int(body[0]["service_request_id"]))
    assert complaint is not None
    assert complaint.account_id == world.client_row.account_id and complaint.category == "short_weight"
    assert (complaint.lon, complaint.lat, complaint.coord_system) == (120.1052, 30.2795, "wgs84")
    assert (complaint.contact_name, complaint.contact_phone) == ("小 明", "13700001111")
    link = session.get(Open311Submission, complaint.id)
    assert link is not None and link.contact_email == "citizen@example.org"
    assert link.client_id == world.client_row.id and link.media_url == "https://example.org/p.jpg"
    public = client.get(f"{BASE}/requests/{complaint.id}.json").text
    for secret in ("citizen@example.org", "13700001111", "小 明", "复称少了二两", "civic-user-7"):
        assert secret not in public


def test_post_in_xml_and_with_a_scanned_code(client: TestClient, session: Session, world: World) -> None:
    token = qr_service.code_of(world.scale).token
    resp = _post(
        client,
        "xml",
        api_key=world.api_key,
        service_code="short_weight",
        **{"attribute[qr_token]": token, "attribute[declared_g]": "1000", "attribute[measured_g]": "900"},
    )
    assert resp.status_code == 200, resp.text
    root = _xml(resp)
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None and [c.tag for c in request] == [
        "service_request_id",
        "service_notice",
        "account_id",
    ]
    complaint = session.get(Complaint, int(request.findtext("service_request_id") or 0))
    assert complaint is not None and complaint.instrument_id == world.scale.id and complaint.via_qr
    assert complaint.operator_id == world.market.id and complaint.short_weight is True
    assert request.findtext("account_id") == str(world.client_row.account_id)


def test_post_with_an_address_only(client: TestClient, session: Session, world: World) -> None:
    resp = _post(client, api_key=world.api_key, service_code="other", address_string="文三路 100 号菜场")
    assert resp.status_code == 200, resp.text
    complaint = session.get(Complaint, int(resp.json()[0]["service_request_id"]))
    assert complaint is not None and complaint.address == "文三路 100 号菜场" and complaint.lat is None


def test_post_retried_with_its_key_files_once(client: TestClient, session: Session, world: World) -> None:
    headers = {"Idempotency-Key": "civic-retry-1"}
    first = _post(client, headers=headers, **_filing(api_key=world.api_key))
    again = _post(client, headers=headers, **_filing(api_key=world.api_key))
    assert first.status_code == again.status_code == 200
    assert first.json()[0]["service_request_id"] == again.json()[0]["service_request_id"]
    changed = _post(client, headers=headers, **_filing(api_key=world.api_key, description="别的"))
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_conflict"
    count = session.exec(
        select(Complaint).where(col(Complaint.account_id) == world.client_row.account_id)
    ).all()
    assert len(count) == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"service_code": "casino", "lat": 30.2, "long": 120.1}, "invalid_request"),
        ({"lat": 30.2, "long": 120.1}, "service_code_required"),
        ({"service_code": "other"}, "location_or_subject_required"),
        ({"service_code": "other", "lat": 30.2}, "invalid_location"),
        ({"service_code": "other", "lat": 999, "long": 120.1}, "invalid_request"),
        ({"service_code": "other", "lat": "nan", "long": 120.1}, "invalid_request"),
        ({"service_code": "other", "lat": 30.2, "long": 120.1, "email": "not-an-email"}, "invalid_request"),
        ({"service_code": "other", "lat": 30.2, "long": 120.1, "phone": "call me"}, "invalid_request"),
        ({"service_code": "other", "lat": 30.2, "long": 120.1, "description": "x" * 2001}, "invalid_request"),
        (
            {"service_code": "other", "lat": 30.2, "long": 120.1, "media_url": "javascript:alert(1)"},
            "invalid_request",
        ),
        ({"service_code": "other", "attribute[qr_token]": "forged-token"}, "forged_qr"),
        ({"service_code": "other", "attribute[operator_id]": "987654321"}, "unknown_subject"),
        (
            {"service_code": "other", "attribute[operator_id]": "-5", "lat": 30.2, "long": 120.1},
            "invalid_request",
        ),
        (
            {"service_code": "short_weight", "lat": 30.2, "long": 120.1, "attribute[declared_g]": "500"},
            "invalid_weighing",
        ),
    ],
)
def test_bad_filings_are_400_never_500(
    client: TestClient, session: Session, world: World, fields: dict[str, Any], code: str
) -> None:
    before = len(session.exec(select(Complaint)).all())
    resp = _post(client, api_key=world.api_key, **fields)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code
    xml_resp = _post(client, "xml", api_key=world.api_key, **fields)
    assert xml_resp.status_code == 400 and _xml(xml_resp).findtext("error/code") == "400"
    assert len(session.exec(select(Complaint)).all()) == before


def test_a_revoked_client_cannot_file(client: TestClient, session: Session, world: World) -> None:
    open311_service.revoke_client(session, name="Civic Lab", actor=SYSTEM)
    session.commit()
    assert _post(client, **_filing(api_key=world.api_key)).status_code == 403


def test_clients_are_rate_limited(client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "open311_rate_per_client", "1/hour")
    assert _post(client, **_filing(api_key=world.api_key)).status_code == 200
    limited = _post(client, **_filing(api_key=world.api_key, description="again"))
    assert limited.status_code == 429 and "retry-after" in limited.headers


def test_keys_are_stored_hashed_and_audited(session: Session, world: World) -> None:
    row = session.get(Open311Client, world.client_row.id)
    assert row is not None and world.api_key not in (row.api_key_hash, row.key_prefix)
    assert row.api_key_hash == open311_service.key_hash(world.api_key)
    entries = session.exec(select(AuditEntry).where(col(AuditEntry.action) == "open311_client.create")).all()
    assert entries and all("api_key_hash" not in json.dumps(e.after) for e in entries if e.after)


def test_cli_creates_lists_and_revokes_keys(committed_session: Session) -> None:
    from backend.cli import app as cli

    runner = CliRunner()
    created = runner.invoke(cli, ["open311", "key", "create", "测试 Civic 客户端"])
    assert created.exit_code == 0, created.output
    api_key = created.stdout.strip().splitlines()[-1]
    assert api_key.startswith("o311_")
    client_row, _account = open311_service.authenticate(committed_session, api_key)
    assert client_row.name == "测试 Civic 客户端"
    committed_session.rollback()  # SQLite: release the write lock before the CLI writes
    listed = runner.invoke(cli, ["open311", "key", "list"])
    assert listed.exit_code == 0 and "测试 Civic 客户端" in listed.stdout and api_key not in listed.stdout
    again = runner.invoke(cli, ["open311", "key", "create", "测试 Civic 客户端"])
    assert again.exit_code != 0
    revoked = runner.invoke(cli, ["open311", "key", "revoke", "测试 Civic 客户端"])
    assert revoked.exit_code == 0, revoked.output
    committed_session.expire_all()
    with pytest.raises(Exception, match="invalid_api_key"):
        open311_service.authenticate(committed_session, api_key)


def test_public_reads_are_rate_limited_per_address(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "public_search_rate", "2/minute")
    assert client.get(f"{BASE}/requests.json").status_code == 200
    assert client.get(f"{BASE}/requests/1.json").status_code == 404
    limited = client.get(f"{BASE}/requests.xml")
    assert limited.status_code == 429 and _xml(limited).findtext("error/code") == "429"
    assert client.get(f"{BASE}/services.json").status_code == 200  # a static list, not limited
