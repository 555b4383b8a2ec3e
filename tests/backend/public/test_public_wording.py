"""What the public reads about a class and a name is true: the deciding rule's wording, people's names masked."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM
from backend.common.masking import mask_name, public_operator_name, public_stall_name, search_form
from backend.operators.models import Operator
from backend.publication.listing import public_name_sql
from backend.qr import service as qr_service
from backend.records import rating
from backend.records import service as records_service
from backend.records.models import RecordSource
from backend.records.rules import RecordKind, RecordState
from tests.backend.public.conftest import Market
from tests.factories import COUNTY_A, make_stall


def test_a_class_from_verified_bad_records_is_not_described_as_a_clean_record(
    client: TestClient, session: Session, market: Market
) -> None:
    records_service.create(
        session,
        operator=market.market,
        kind=RecordKind.COMPLAINT_SUBSTANTIATED,
        fact_date=date.today() - timedelta(days=20),
        source=RecordSource.staff,
        state=RecordState.VERIFIED,
        actor=SYSTEM,
        reason="test",
    )
    session.commit()
    rating.rerate_operator(session, market.market.id or 0)
    session.commit()
    profile = client.get(f"/api/v1/public/operators/{market.market.id}").json()["operator"]
    assert profile["integrity_class"] == "basically_trustworthy"
    explanation = profile["integrity_class_explanation"]
    assert explanation.startswith("五年内有经核实的不良计量信用记录") and "无经核实" not in explanation
    english = client.get(f"/api/v1/public/operators/{market.market.id}?lang=en").json()["operator"]
    assert "Has verified bad metrology records within 5 years" in english["integrity_class_explanation"]
    html = client.get(f"/q/{market.stall_token}").text
    assert "五年内有经核实的不良计量信用记录，但未达到第十三条" in html
    # The legend gives every ground of 基本守信, the gap included.
    assert html.count("未达到第十三条列入失信的任何一项标准") == 2


#: Real-looking holders: compound surnames, two and three characters, middle dots, ASCII and full-width spaces;
#: the name as registered and as it appears inside the stall's or the shop's name.
NAMES = [
    ("王小二", "王小二水果店", "王**水果店"),
    ("王 小二", "王小二水果店", "王**水果店"),
    ("王小二", "王 小二水果店", "王**水果店"),
    ("王　小二", "王　小 二水果店", "王**水果店"),
    ("李娜", "李娜鲜肉铺", "李**鲜肉铺"),
    ("欧阳娜娜", "欧阳娜娜干货", "欧**干货"),
    ("司马 相如", "老字号司马相如酱菜", "老字号司**酱菜"),
    ("诸葛亮", "诸葛亮炒货（二号）", "诸**炒货（二号）"),
    ("上官婉儿", "上官 婉儿 茶叶", "上** 茶叶"),
    ("阿依古丽·买买提", "阿依古丽·买买提干果", "阿**干果"),
    ("阿依古丽·买买提", "阿依古丽买买提干果", "阿**干果"),
    ("阿依古丽 · 买买提", "阿依古丽・买买提干果", "阿**干果"),
    ("张伟", "张伟张伟", "张**张**"),
    ("陈静", "静心茶铺", "静心茶铺"),
]


@pytest.mark.parametrize(("holder", "name", "shown"), NAMES)
def test_stall_holders_are_masked_on_the_page_whatever_the_spacing_or_code(
    client: TestClient, session: Session, market: Market, holder: str, name: str, shown: str
) -> None:
    # The holder's own business code is a sole proprietorship's (91…), not an individual business's.
    stall = make_stall(session, market.market, number="B7", name=name, holder_name=holder)
    stall.holder_uscc = "91330106MA2XXXXX0X"
    session.add(stall)
    session.commit()
    token = qr_service.code_of(stall).token
    body = client.get(f"/api/v1/public/qr/{token}").json()
    assert body["stall"]["name"] == shown
    html = client.get(f"/q/{token}").text
    assert shown in html
    # The full name appears nowhere on the page, however it is spaced there.
    chars = "".join(ch for ch in holder if ch not in " 　·・")
    assert chars not in "".join(ch for ch in html if ch not in " 　·・\n")


@pytest.mark.parametrize(("holder", "name", "shown"), NAMES)
def test_operators_are_masked_in_search_and_profile(
    client: TestClient, session: Session, market: Market, holder: str, name: str, shown: str
) -> None:
    market.market.name = name
    market.market.legal_representative = holder
    session.add(market.market)
    session.commit()
    profile = client.get(f"/api/v1/public/operators/{market.market.id}").json()
    assert profile["operator"]["name"] == shown
    found = client.get(
        "/api/v1/public/operators", params={"jurisdiction_code": COUNTY_A, "q": shown.split("*")[-1] or shown}
    ).json()
    assert [item["name"] for item in found["items"]] == [shown]
    # A search by the person's name, however spaced, finds nothing.
    for query in (holder, holder.replace(" ", ""), " ".join(holder)):
        hits = client.get(
            "/api/v1/public/operators", params={"jurisdiction_code": COUNTY_A, "q": query}
        ).json()
        assert hits["items"] == [], query


def test_the_sql_search_form_is_the_shown_name_without_separators(session: Session, market: Market) -> None:
    """The lists search in SQL what ``masking`` shows in Python: the two must agree for every name."""
    for holder, name, shown in NAMES:
        market.market.name = name
        market.market.legal_representative = holder
        session.add(market.market)
        session.flush()
        in_sql = session.execute(
            select(public_name_sql()).where(col(Operator.id) == market.market.id)
        ).scalar_one()
        assert public_operator_name(name, holder) == shown
        assert in_sql == search_form(shown), (holder, name)


@pytest.mark.parametrize(("holder", "name", "shown"), NAMES)
def test_masking_table(holder: str, name: str, shown: str) -> None:
    assert public_operator_name(name, holder) == shown
    assert public_stall_name(name, holder) == shown
    assert mask_name(holder) == holder.strip()[0] + "**"
