"""QR codes: the public profile, forged and revoked codes, reprinting, key rotation and printed sheets."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, select
from typer.testing import CliRunner

from backend.audit.models import AuditEntry
from backend.auth.models import Role
from backend.common.masking import mask_name
from backend.config import get_settings
from backend.instruments.models import InstrumentStatus
from backend.operators.models import Sector
from backend.operators.schemas import SelfCommitmentCreate
from backend.operators.service import sign_commitment
from backend.qr import service as qr_service
from backend.qr.schemas import QRKind
from backend.qr.sheet import SheetFormat, find_cjk_font, market_codes, render, render_pages
from backend.qr.tokens import QRKeyRing, SubjectKind
from tests.backend.complaints.conftest import Market
from tests.factories import (
    COUNTY_A,
    COUNTY_B,
    login,
    make_account,
    make_instrument,
    make_operator,
    make_stall,
)


def _scan(client: TestClient, token: str, lang: str = "zh-CN") -> tuple[int, dict[str, object]]:
    resp = client.get(f"/api/v1/public/qr/{token}", headers={"Accept-Language": lang})
    return resp.status_code, resp.json()


def test_stall_code_shows_the_public_profile(client: TestClient, session: Session, market: Market) -> None:
    sign_commitment(
        session,
        operator=market.market,
        data=SelfCommitmentCreate(text_version="2017-1", signer="周明"),
        actor=market.staff,
    )
    status, body = _scan(client, qr_service.code_of(market.stall).token)
    assert status == 200, body
    operator = body["operator"]
    assert isinstance(operator, dict)
    assert operator["name"] == "西溪农贸市场" and operator["sector_name"] == "集贸市场"
    # No record and no management assessment yet: the engine's baseline class, with its plain explanation.
    assert (
        operator["integrity_class"] == "basically_trustworthy"
        and operator["integrity_class_name"] == "基本守信"
    )
    assert operator["self_commitment"]["text_version"] == "2017-1"  # type: ignore[index]
    assert "legal_representative" not in operator and "phone" not in operator
    assert body["stall"] == {
        "id": market.stall.id,
        "number": "A12",
        "name": "老张蔬菜",
        "holder_name_masked": "张**",
    }
    assert body["kind"] == "stall" and body["instruments_total"] == 1
    [instrument] = body["instruments"]  # type: ignore[misc]
    assert instrument["verification_state"] == "valid" and instrument["valid_until"]
    assert instrument["type_name"] == "电子计价秤"


def test_profile_is_cacheable_and_english_on_request(client: TestClient, market: Market) -> None:
    resp = client.get(f"/api/v1/public/qr/{qr_service.code_of(market.scale).token}?lang=en")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "public, max-age=60"
    body = resp.json()
    assert body["kind"] == "instrument" and body["operator"]["sector_name"] == "Farmers' market"
    assert body["instruments"][0]["type_name"] == "electronic price-computing scale"


def test_operator_code_lists_its_instruments_with_states(
    client: TestClient, session: Session, market: Market
) -> None:
    overdue = make_instrument(session, market.market, verified_on=date.today() - timedelta(days=800))
    never = make_instrument(session, market.market)
    retired = make_instrument(session, market.market, verified_on=date.today())
    retired.status = InstrumentStatus.retired
    session.add(retired)
    session.flush()
    status, body = _scan(client, qr_service.code_of(market.market).token)
    assert status == 200 and body["kind"] == "operator" and body["stall"] is None
    states = {i["id"]: i["verification_state"] for i in body["instruments"]}  # type: ignore[attr-defined]
    assert states == {market.scale.id: "valid", overdue.id: "overdue", never.id: "never_verified"}
    assert body["instruments_total"] == 3


@pytest.mark.parametrize("name", ["张三", "张三丰", "欧阳娜娜", "张"])
def test_holder_names_are_masked(name: str) -> None:
    assert mask_name(name) == name[0] + "**"


def _flip(token: str, at: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    swapped = alphabet[(alphabet.index(token[at]) + 1) % 64]
    return token[:at] + swapped + token[at + 1 :]


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_altered_token_is_forged(client: TestClient, market: Market, where: str) -> None:
    token = qr_service.code_of(market.stall).token
    status, body = _scan(client, _flip(token, 3 if where == "payload" else len(token) - 10))
    assert status == 404 and body["error"]["code"] == "forged_qr"  # type: ignore[index]


@pytest.mark.parametrize("token", ["x", "not a token", "A" * 150, "%00", "....", "AAAA" * 23])
def test_garbage_is_forged_never_500(client: TestClient, token: str) -> None:
    resp = client.get(f"/api/v1/public/qr/{token}")
    assert resp.status_code in (404, 422)
    if resp.status_code == 404:
        assert resp.json()["error"]["code"] in ("forged_qr", "not_found")


def test_token_from_another_key_is_forged(client: TestClient, market: Market) -> None:
    other = QRKeyRing.from_secret("somebody-else-s-secret-that-is-long-enough", active_kid=1)
    status, body = _scan(client, other.issue(SubjectKind.STALL, market.stall.id or 0, 1))
    assert status == 404 and body["error"]["code"] == "forged_qr"  # type: ignore[index]
    assert "伪造" in body["error"]["message"]  # type: ignore[index]


def test_reprint_revokes_the_old_code(client: TestClient, session: Session, market: Market) -> None:
    old = qr_service.code_of(market.stall)
    headers = login(client, market.staff)
    resp = client.post(f"/api/v1/qr/stall/{market.stall.id}/reprint", headers=headers)
    assert resp.status_code == 200, resp.text
    new = resp.json()
    assert new["serial"] == old.serial + 1 and new["url"].endswith(f"/q/{new['token']}")
    status, body = _scan(client, old.token)
    assert status == 410 and body["error"]["code"] == "revoked_qr"  # type: ignore[index]
    assert body["error"]["details"] == {"reason": "reprinted"}  # type: ignore[index]
    assert _scan(client, new["token"])[0] == 200
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "qr.reprint")).one()
    assert (
        entry.before == {"qr_serial": 1}
        and entry.after == {"qr_serial": 2}
        and entry.actor_id == market.staff.id
    )


def test_closed_stall_and_retired_instrument_codes_are_revoked(
    client: TestClient, session: Session, market: Market
) -> None:
    stall_token = qr_service.code_of(market.stall).token
    scale_token = qr_service.code_of(market.scale).token
    market.stall.is_active = False
    market.scale.status = InstrumentStatus.retired
    session.add_all([market.stall, market.scale])
    session.commit()
    for token in (stall_token, scale_token):
        status, body = _scan(client, token)
        assert status == 410 and body["error"]["details"] == {"reason": "inactive"}  # type: ignore[index]


def test_staff_get_the_current_code_in_scope_only(
    client: TestClient, session: Session, market: Market
) -> None:
    resp = client.get(f"/api/v1/qr/instrument/{market.scale.id}", headers=login(client, market.staff))
    assert resp.status_code == 200
    assert qr_service.key_ring().verify(resp.json()["token"]).subject_id == market.scale.id
    other = make_account(session, Role.staff, COUNTY_B)
    assert client.get(f"/api/v1/qr/stall/{market.stall.id}", headers=login(client, other)).status_code == 404
    assert (
        client.post(f"/api/v1/qr/stall/{market.stall.id}/reprint", headers=login(client, other)).status_code
        == 404
    )
    consumer = make_account(session, Role.consumer)
    assert (
        client.get(f"/api/v1/qr/stall/{market.stall.id}", headers=login(client, consumer)).status_code == 403
    )


def test_retired_key_ids_still_verify(
    client: TestClient, market: Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    old_token = qr_service.code_of(market.stall).token
    monkeypatch.setattr(settings, "qr_active_kid", 2)
    monkeypatch.setattr(settings, "qr_retired_kids", [1])
    fresh = qr_service.code_of(market.stall)
    assert fresh.kid == 2
    assert _scan(client, old_token)[0] == 200 and _scan(client, fresh.token)[0] == 200
    monkeypatch.setattr(settings, "qr_retired_kids", [])
    status, body = _scan(client, old_token)
    assert status == 404 and body["error"]["code"] == "forged_qr"  # type: ignore[index]


# ---- printed sheets ---------------------------------------------------------------------------------------


def _decoded_stall_ids(image: Image.Image) -> set[int]:
    ring = qr_service.key_ring()
    ids = set()
    for result in zxingcpp.read_barcodes(image):
        match = re.fullmatch(r".*/q/([A-Za-z0-9_-]+)", result.text)
        assert match, result.text
        subject = ring.verify(match.group(1))
        assert subject.kind is SubjectKind.STALL
        ids.add(subject.subject_id)
    return ids


def _market_with_stalls(session: Session, count: int) -> tuple[int, set[int]]:
    staff = make_account(session, Role.staff, COUNTY_A)
    market = make_operator(session, staff, sector=Sector.market, name="湖滨菜市场")
    stalls = {
        make_stall(session, market, number=f"B{i:02d}", name=f"第{i}号摊").id or 0 for i in range(count)
    }
    return market.id or 0, stalls


def test_png_sheet_decodes_back_to_every_stall(session: Session) -> None:
    market_id, stall_ids = _market_with_stalls(session, 5)
    font = find_cjk_font()
    _market, codes = market_codes(session, market_id, cjk=font is not None)
    sheet = render(codes, SheetFormat.png, font_path=font)
    assert sheet.codes == 5 and sheet.pages == 1
    with Image.open(io.BytesIO(sheet.data)) as image:
        assert image.format == "PNG"
        assert _decoded_stall_ids(image.convert("L")) == stall_ids


def test_pdf_sheet_has_a4_pages_whose_codes_decode(session: Session) -> None:
    market_id, stall_ids = _market_with_stalls(session, 13)
    _market, codes = market_codes(session, market_id, cjk=False)
    pages = render_pages(codes, font_path=None)
    assert len(pages) == 2 and all(p.size == (1654, 2339) for p in pages)
    assert set().union(*(_decoded_stall_ids(p) for p in pages)) == stall_ids
    pdf = render(codes, SheetFormat.pdf, font_path=None).data
    assert pdf.startswith(b"%PDF") and b"/Count 2" in pdf


def test_labels_fall_back_to_ascii_without_a_cjk_font(session: Session) -> None:
    market_id, _ = _market_with_stalls(session, 1)
    _market, [code] = market_codes(session, market_id, cjk=False)
    assert code.number == "Stall B00" and code.heading == f"Market #{market_id}" and code.name == ""
    _market, [chinese] = market_codes(session, market_id, cjk=True)
    assert chinese.number == "摊位 B00" and chinese.heading == "湖滨菜市场"


def test_configured_font_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    font = tmp_path / "custom.ttf"
    font.write_bytes(b"not really a font")
    monkeypatch.setattr(get_settings(), "qr_sheet_font", font)
    assert find_cjk_font() == font


def test_cli_writes_the_sheet(committed_session: Session, tmp_path: Path) -> None:
    from backend.cli import app

    market_id, stall_ids = _market_with_stalls(committed_session, 3)
    committed_session.commit()
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        app, ["qr", "sheet", "--market", str(market_id), "--format", "png", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert _decoded_stall_ids(image.convert("L")) == stall_ids
    pdf = tmp_path / "sheet.pdf"
    assert (
        CliRunner().invoke(app, ["qr", "sheet", "--market", str(market_id), "--out", str(pdf)]).exit_code == 0
    )
    assert pdf.read_bytes().startswith(b"%PDF")
    missing = CliRunner().invoke(app, ["qr", "sheet", "--market", "999999999"])
    assert missing.exit_code == 2


def test_kind_maps_both_ways() -> None:
    for kind in QRKind:
        assert QRKind.of(kind.subject_kind) is kind
