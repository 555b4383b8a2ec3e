"""The QR landing page: content, languages, weight, escaping, security headers, warning pages, its script."""

from __future__ import annotations

import base64
import hashlib
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlmodel import Session

from backend.audit.service import SYSTEM
from backend.auth.models import Role
from backend.db import table_of, utcnow
from backend.instruments.models import Instrument
from backend.operators.models import Operator, Stall
from backend.operators.schemas import SelfCommitmentCreate
from backend.operators.service import sign_commitment
from backend.public import page
from backend.qr import service as qr_service
from backend.records.models import OperatorRating
from backend.records.rules import IntegrityClass
from tests.backend.public.conftest import Market
from tests.factories import COUNTY_A, make_account, make_instrument, make_operator, make_record, make_stall

HOSTILE = '<script>alert("x")</script>'
HOSTILE_ATTR = '"><img src=x onerror=alert(1)>'


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def _tags(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_stall_page_shows_the_public_profile_in_chinese(
    client: TestClient, session: Session, market: Market
) -> None:
    sign_commitment(
        session,
        operator=market.market,
        data=SelfCommitmentCreate(text_version="2017-1", signer="周明"),
        actor=market.staff,
    )
    resp = client.get(f"/q/{market.stall_token}")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert '<html lang="zh-CN">' in html
    for text in (
        "老张蔬菜",
        "西溪农贸市场",
        "A12",
        "张**",
        "集贸市场",
        "基本守信",
        "五年内无经核实的不良计量信用记录",
    ):
        assert text in html, text
    # The scale of Art. 10 is explained beside the class shown.
    assert "三类等级分别是什么意思？" in html and "<dt>失信</dt>" in html and "<dt>守信</dt>" in html
    assert "张三丰" not in html and "13800138000" not in html and "测试人" not in html
    assert "检定合格，在有效期内" in html and str(market.scale.valid_until) in html
    assert "已作出承诺" in html and "12315" in html
    assert f'href="gongping://q/{market.stall_token}"' in html
    assert f"/app/q/{market.stall_token}" in html
    tags = _tags(html)
    photo = next(a for t, a in tags.tags if t == "input" and a.get("type") == "file")
    assert photo["accept"] == "image/*" and photo["capture"] == "environment" and "multiple" in photo
    form = next(a for t, a in tags.tags if t == "form")
    assert form["data-token"] == market.stall_token and form["data-locale"] == "zh-CN"
    assert resp.headers["cache-control"] == "public, max-age=60"
    assert "Accept-Language" in resp.headers["vary"]


def test_page_security_headers_allow_no_inline_script(client: TestClient, market: Market) -> None:
    resp = client.get(f"/q/{market.stall_token}")
    csp = dict(d.strip().split(" ", 1) for d in resp.headers["content-security-policy"].split(";"))
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'"
    assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in resp.headers["content-security-policy"]
    tags = _tags(resp.text)
    scripts = [a for t, a in tags.tags if t == "script"]
    assert len(scripts) == 1 and (scripts[0]["src"] or "").startswith("/static/qr.js?v=")
    # The inline stylesheet is exactly the one the policy pins by hash.
    digest = base64.b64encode(hashlib.sha256(tags.style.encode()).digest()).decode()
    assert csp["style-src"] == f"'sha256-{digest}'"
    assert not any(name.startswith("on") for _t, attrs in tags.tags for name in attrs)
    assert not any("style" in attrs for _t, attrs in tags.tags)
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["x-content-type-options"] == "nosniff"


def test_english_by_switch_and_by_accept_language(client: TestClient, market: Market) -> None:
    by_switch = client.get(f"/q/{market.stall_token}?lang=en").text
    by_header = client.get(f"/q/{market.stall_token}", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    for html in (by_switch, by_header):
        assert '<html lang="en">' in html
        assert "Farmers&#39; market" in html and "Basically trustworthy" in html
        assert "Verified, valid" in html and "How to complain" in html and 'href="?lang=zh-CN"' in html
    chinese = client.get(f"/q/{market.stall_token}?lang=zh-CN", headers={"Accept-Language": "en"}).text
    assert '<html lang="zh-CN">' in chinese and 'href="?lang=en"' in chinese


def test_page_and_script_weigh_under_50_kb_even_for_a_large_market(
    client: TestClient, session: Session, market: Market
) -> None:
    long = "名" * 60
    market.market.name = long
    market.market.address = "地" * 250
    for _ in range(40):
        make_instrument(session, market.market, verified_on=date.today() - timedelta(days=400))
    session.commit()
    html = client.get(f"/q/{qr_service.code_of(market.market).token}")
    assert html.status_code == 200
    script = client.get(next(a["src"] for t, a in _tags(html.text).tags if t == "script") or "")
    assert script.status_code == 200
    total = len(html.content) + len(script.content)
    assert total < 50 * 1024, total
    # A large market lists the first instruments and says how many there are.
    assert html.text.count('class="st st-') == page.PAGE_INSTRUMENT_LIMIT
    assert "共 41 台，此处显示前 20 台" in html.text


def test_hostile_names_render_as_text(client: TestClient, session: Session) -> None:
    staff = make_account(session, Role.staff, COUNTY_A)
    operator = make_operator(session, staff, name=HOSTILE)
    operator.address = HOSTILE_ATTR
    stall = make_stall(session, operator, number="B1", name=HOSTILE_ATTR, holder_name="<b>李四</b>")
    instrument = make_instrument(session, operator, stall=stall)
    instrument.maker = HOSTILE
    instrument.model = "{{ 7*7 }}"
    session.commit()
    html = client.get(f"/q/{qr_service.code_of(stall).token}").text
    assert HOSTILE not in html and HOSTILE_ATTR not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in html
    tags = _tags(html)
    assert [t for t, _a in tags.tags].count("script") == 1
    assert not any(t == "img" for t, _a in tags.tags)
    assert "&lt;**" in html  # the masked holder: first character, escaped, and two stars


def _tamper(token: str) -> str:
    last = "A" if token[-2] != "A" else "B"
    return token[:-2] + last + token[-1]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_forged_code_shows_a_warning_page(client: TestClient, market: Market, lang: str) -> None:
    for token in ("not-a-code", _tamper(market.stall_token), "x" * 300):
        resp = client.get(f"/q/{token}", headers={"Accept-Language": lang})
        assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/html")
        html = resp.text
        assert ("可能是伪造" in html) if lang == "zh-CN" else ("may be counterfeit" in html)
        assert "12315" in html and 'id="complaint-form"' in html and 'data-token=""' in html
        assert "西溪农贸市场" not in html
        assert "content-security-policy" in resp.headers


def test_script_in_a_forged_token_is_escaped(client: TestClient) -> None:
    resp = client.get("/q/%22%3E%3Cscript%3Ealert(1)%3C!--")
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/html")
    assert "<script>alert(1)" not in resp.text and "&#34;&gt;&lt;script&gt;alert(1)&lt;!--" in resp.text


def test_revoked_codes_show_a_warning_page(client: TestClient, session: Session, market: Market) -> None:
    old = market.stall_token
    qr_service.reprint(session, subject=market.stall, actor=SYSTEM)
    session.commit()
    resp = client.get(f"/q/{old}")
    assert resp.status_code == 410 and "已作废" in resp.text and "【举报二维码：已作废】" in resp.text
    assert client.get(f"/q/{qr_service.code_of(market.stall).token}").status_code == 200
    market.market.is_active = False
    session.commit()
    closed = client.get(f"/q/{qr_service.code_of(market.stall).token}?lang=en")
    assert closed.status_code == 410 and "has been revoked" in closed.text


def _rating(session: Session, operator: Operator, cls: IntegrityClass, record_ids: list[int]) -> None:
    reasons = [{"rule": "art13_4_complaints_substantiated", "article": "13(4)", "record_ids": record_ids}]
    # Written as the rating engine writes it (a Core insert: the model's ``cls`` field shadows __new__'s).
    session.execute(
        insert(table_of(OperatorRating)).values(
            operator_id=operator.id or 0,
            cls=cls,
            as_of=date.today(),
            reasons=reasons if cls is IntegrityClass.UNTRUSTWORTHY else [],
            rules_version="test",
            signature="test",
            revision=1,
            updated_at=utcnow(),
        )
    )
    session.commit()


def test_stored_class_is_shown_with_its_date(client: TestClient, session: Session, market: Market) -> None:
    _rating(session, market.market, IntegrityClass.TRUSTWORTHY, [])
    html = client.get(f"/q/{market.stall_token}").text
    assert "cls-trustworthy" in html and ">守信<" in html and "计量管理制度健全" in html
    assert f"评定日期 {date.today()}" in html


def test_untrustworthy_class_waits_for_the_publication_review(
    client: TestClient, session: Session, market: Market
) -> None:
    records = [make_record(session, market.market) for _ in range(3)]
    _rating(session, market.market, IntegrityClass.UNTRUSTWORTHY, [r.id or 0 for r in records])
    html = client.get(f"/q/{market.stall_token}").text
    shown = html.split('id="integrity-class"', 1)[1].split("</div>", 1)[0]
    assert "暂无评级" in shown and "失信" not in shown and 'class="cls cls-untrustworthy"' not in html
    api = client.get(f"/api/v1/public/qr/{market.stall_token}").json()["operator"]
    assert api["integrity_class"] is None and api["integrity_class_name"] == "暂无评级"
    records[1].public_eligible = True
    session.commit()
    html = client.get(f"/q/{market.stall_token}").text
    assert "cls-untrustworthy" in html and ">失信<" in html and "重点监管" in html


def test_instrument_code_shows_only_that_instrument(
    client: TestClient, session: Session, market: Market
) -> None:
    other = make_instrument(session, market.market, stall=market.stall)
    session.commit()
    html = client.get(f"/q/{qr_service.code_of(market.scale).token}").text
    assert market.scale.serial in html and other.serial not in html
    assert "计量器具 (1)" in html


def test_instrument_states_are_spelled_out(client: TestClient, session: Session, market: Market) -> None:
    stall: Stall = market.stall
    overdue: Instrument = make_instrument(
        session, market.market, stall=stall, verified_on=date.today() - timedelta(days=800)
    )
    failed = make_instrument(session, market.market, stall=stall, verified_on=date.today(), passed=False)
    never = make_instrument(session, market.market, stall=stall)
    session.commit()
    html = client.get(f"/q/{market.stall_token}").text
    for instrument, text in ((overdue, "超过检定周期"), (failed, "检定不合格"), (never, "未经检定")):
        assert instrument.serial in html and text in html


def test_script_is_served_with_cache_headers(client: TestClient) -> None:
    digest = page.STATIC_FILES["qr.js"].digest
    pinned = client.get(f"/static/qr.js?v={digest}")
    assert pinned.status_code == 200 and pinned.headers["content-type"].startswith("text/javascript")
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert pinned.headers["etag"] == f'"{digest}"' and b"Idempotency-Key" in pinned.content
    assert client.get("/static/qr.js").headers["cache-control"] == "public, max-age=300"
    assert client.get("/static/../backend/config.py").status_code == 404
    assert client.get("/static/nothing.js").status_code == 404


def test_script_uses_no_eval_or_inline_html(client: TestClient) -> None:
    source = page.STATIC_FILES["qr.js"].body.decode()
    assert "innerHTML" not in source and "eval(" not in source and "document.write" not in source
    assert "crypto.randomUUID" in source and "/api/v1/auth/device" in source


def test_app_link_lands_back_on_the_page(client: TestClient, market: Market) -> None:
    resp = client.get(f"/app/q/{market.stall_token}?lang=en", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == f"/q/{market.stall_token}?lang=en"
    odd = client.get("/app/q/x%3Fnext=evil%23z", follow_redirects=False)
    assert odd.headers["location"] == "/q/x%3Fnext%3Devil%23z"
