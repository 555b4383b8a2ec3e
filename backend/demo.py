"""Seed, once, a demo county with a market and stalls, other sectors, instruments in every state, accounts, the
market association's members, and the market's records, class and a reminder for its operator file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

from sqlmodel import Session, col, select

from backend.audit.service import SYSTEM
from backend.auth import service as auth_service
from backend.auth.models import Account, Role
from backend.auth.scope import Scope
from backend.cases import service as case_service
from backend.common.schemas import LonLat
from backend.complaints import service as complaint_service
from backend.complaints.schemas import ComplaintSubmission
from backend.dates import bureau_date
from backend.instruments import service as instrument_service
from backend.instruments.models import Instrument
from backend.instruments.schemas import InstrumentCreate, VerificationCreate
from backend.intake import memberships
from backend.media.factory import media_storage
from backend.operators import service as operator_service
from backend.operators.models import ManagementAssessment, Operator, Sector, Stall
from backend.operators.schemas import OperatorCreate, OperatorUpdate, SelfCommitmentCreate, StallCreate
from backend.operators.uscc import random_usccs
from backend.records import rating
from backend.records import service as records_service
from backend.records.models import RatingTrigger, RecordSource
from backend.records.rules import RecordKind, RecordState
from backend.supervision import service as supervision_service
from backend.supervision.models import InterviewKind
from backend.supervision.schemas import InterviewCreate

DEMO_COUNTY = "330106"  # 浙江省杭州市西湖区
DEMO_CITY = "330100"  # 杭州市
DEMO_PASSWORD = "Gongping2026demo"


@dataclass(frozen=True)
class DemoAccount:
    """A demo sign-in, printed by ``gongping demo --accounts-json``."""

    username: str
    password: str
    role: str
    jurisdiction_code: str | None
    operator_id: int | None = None


_ACCOUNTS: tuple[tuple[str, Role, str | None, str], ...] = (
    ("admin", Role.admin, None, "平台管理员"),
    ("staff_xihu", Role.staff, DEMO_COUNTY, "西湖区市场监管局 王科员"),
    ("staff_hangzhou", Role.staff, DEMO_CITY, "杭州市市场监管局 李科长"),
    ("staff_shangcheng", Role.staff, "330102", "上城区市场监管局 赵科员"),
    ("auditor_xihu", Role.auditor, DEMO_COUNTY, "西湖区市场监管局 审计员 周"),
    ("supervisor_xihu", Role.supervisor, DEMO_COUNTY, "计量诚信监督员 陈阿姨"),
    ("institution_zj", Role.institution, None, "浙江省计量科学研究院"),
    ("association_market", Role.association, DEMO_CITY, "杭州市农贸市场行业协会"),
    ("department_tax", Role.department, DEMO_CITY, "杭州市税务局"),
    ("consumer_demo", Role.consumer, None, "消费者"),
)

_OPERATORS: tuple[tuple[str, Sector, str, str, float, float], ...] = (
    ("杭州西溪农贸市场", Sector.market, "杭州市西湖区文二西路 100 号", "周明", 120.1052, 30.2795),
    ("西湖石油加油站", Sector.fuel_station, "杭州市西湖区天目山路 500 号", "吴强", 120.1121, 30.2778),
    ("好邻居生活超市", Sector.retail, "杭州市西湖区古墩路 88 号", "郑华", 120.0965, 30.2881),
    ("西湖社区卫生服务中心", Sector.medical, "杭州市西湖区学院路 20 号", "孙医生", 120.1333, 30.2789),
    ("明亮眼镜店", Sector.optical, "杭州市西湖区文三路 66 号", "钱亮", 120.1298, 30.2802),
)


def already_seeded(session: Session) -> bool:
    """Whether the demo data exists (the seed runs once)."""
    return (
        session.execute(select(col(Account.id)).where(col(Account.username) == "admin")).first() is not None
    )


def seed(session: Session, today: date | None = None) -> list[DemoAccount]:
    """Create the demo data (idempotent: a second call changes nothing) and return the demo accounts."""
    today = today or bureau_date()
    if already_seeded(session):
        return demo_accounts(session)
    accounts: dict[str, Account] = {}
    for username, role, jurisdiction, name in _ACCOUNTS:
        accounts[username] = auth_service.create_account(
            session,
            actor=SYSTEM,
            username=username,
            password=DEMO_PASSWORD,
            role=role,
            display_name=name,
            jurisdiction_code=jurisdiction,
            organisation=name if role in (Role.institution, Role.association, Role.department) else None,
            term_starts_on=today - timedelta(days=30) if role == Role.supervisor else None,
            term_ends_on=today + timedelta(days=700) if role == Role.supervisor else None,
        )
    staff = accounts["staff_xihu"]
    scope = Scope(staff, f"/330000/330100/{DEMO_COUNTY}/")
    codes = random_usccs(DEMO_COUNTY, len(_OPERATORS) + 6, seed=2260)
    operators: list[Operator] = []
    for (name, sector, address, legal, lon, lat), code in zip(_OPERATORS, codes, strict=False):
        operators.append(
            operator_service.create(
                session,
                data=OperatorCreate(
                    uscc=code,
                    name=name,
                    sector=sector,
                    address=address,
                    legal_representative=legal,
                    jurisdiction_code=DEMO_COUNTY,
                    location=LonLat(lon=lon, lat=lat),
                    phone="0571-88880000",
                ),
                scope=scope,
            )
        )
    market, station, supermarket, clinic, optician = operators
    operator_service.update(
        session,
        operator=supermarket,
        data=OperatorUpdate(management_assessment=ManagementAssessment.sound, is_demonstration_unit=True),
        scope=scope,
    )
    operator_service.update(
        session,
        operator=station,
        data=OperatorUpdate(management_assessment=ManagementAssessment.not_fully_sound),
        scope=scope,
    )
    stalls = []
    for number, holder, goods, holder_code in (
        ("A01", "张建国", "蔬菜", codes[5]),
        ("A02", "李秀英", "水果", codes[6]),
        ("B01", "王大海", "水产", None),
        ("B02", "刘桂花", "猪肉", codes[7]),
        ("C01", "陈小平", "干货", None),
    ):
        stalls.append(
            operator_service.add_stall(
                session,
                market=market,
                data=StallCreate(
                    number=number, name=f"{holder}{goods}摊", holder_name=holder, holder_uscc=holder_code
                ),
                actor=staff,
            )
        )
    operator_service.sign_commitment(
        session,
        operator=supermarket,
        data=SelfCommitmentCreate(text_version="2017-1", signer="郑华"),
        actor=staff,
    )
    operator_service.sign_commitment(
        session, operator=market, data=SelfCommitmentCreate(text_version="2017-1", signer="周明"), actor=staff
    )
    institution = accounts["institution_zj"]
    # Instruments in every verification state: valid, due soon, overdue, failed, never verified.
    plan: list[tuple[Operator, int | None, str, str, int | None, bool]] = [
        (market, stalls[0].id, "price_scale", "A01-PS-001", 200, True),  # valid
        (market, stalls[1].id, "price_scale", "A02-PS-001", 350, True),  # due within 30 days
        (market, stalls[2].id, "price_scale", "B01-PS-001", 400, True),  # overdue
        (market, stalls[3].id, "price_scale", "B02-PS-001", 20, False),  # failed
        (market, stalls[4].id, "mechanical_scale", "C01-MS-001", None, True),  # never verified
        (station, None, "fuel_dispenser", "JY-01", 30, True),
        (station, None, "fuel_dispenser", "JY-02", 170, True),  # due soon (6-month period)
        (supermarket, None, "price_scale", "SC-01", 60, True),
        (clinic, None, "sphygmomanometer", "XY-01", 100, True),
        (optician, None, "refractometer", "YG-01", 90, True),
        (optician, None, "focimeter", "JD-01", 500, True),  # overdue
    ]
    instruments: list[Instrument] = []
    for operator, stall_id, type_code, serial, days_ago, passed in plan:
        instrument = instrument_service.create(
            session,
            operator=operator,
            data=InstrumentCreate(
                type_code=type_code, serial=serial, maker="示例衡器厂", model="DEMO-1", stall_id=stall_id
            ),
            actor=staff,
        )
        instruments.append(instrument)
        if days_ago is not None:
            instrument_service.record_verification(
                session,
                instrument=instrument,
                data=VerificationCreate(
                    verified_on=today - timedelta(days=days_ago),
                    passed=passed,
                    certificate_no=f"ZJJL-{serial}",
                    institution="浙江省计量科学研究院",
                ),
                actor=institution,
                today=today,
            )
    # The market association's members (Art. 16): it can report warnings and censures about these only.
    association = accounts["association_market"]
    memberships.add(
        session,
        account=association,
        data=memberships.MembershipInput(
            operator_uscc=market.uscc, joined_on=today - timedelta(days=720), member_number="HZNM-0001"
        ),
    )
    former = memberships.add(
        session,
        account=association,
        data=memberships.MembershipInput(
            operator_uscc=supermarket.uscc, joined_on=today - timedelta(days=900), member_number="HZNM-0002"
        ),
    )
    memberships.end(
        session,
        account=association,
        membership_id=former.id or 0,
        ended_on=today - timedelta(days=60),
        reason="经营范围调整，主动退会",
    )
    _demo_complaint(session, accounts["consumer_demo"], market, stalls[1])
    _demo_market_file(
        session, scope, accounts["supervisor_xihu"], market, overdue=instruments[2], today=today
    )
    auth_service.create_account(
        session,
        actor=staff,
        username="operator_market",
        password=DEMO_PASSWORD,
        role=Role.operator,
        display_name="西溪农贸市场管理处",
        operator_id=market.id,
    )
    return demo_accounts(session)


def _demo_complaint(session: Session, filer: Account, market: Operator, stall: Stall) -> None:
    """A short-weight complaint about a market stall, routed into 西湖区: the case staff work in the workbench."""
    raw = {
        "category": "short_weight",
        "description": "在A02摊位买了1000克苹果，到市场公平秤复称只有920克。",
        "operator_id": market.id,
        "stall_id": stall.id,
        "weighing": {"declared_g": "1000", "measured_g": "920"},
        "contact": {"name": "刘女士", "phone": "13800001234"},
    }
    submission = complaint_service.Submission(
        ComplaintSubmission.model_validate(raw), (), complaint_service.request_hash(raw, [])
    )
    complaint = complaint_service.create(
        session, account=filer, submission=submission, storage=media_storage()
    )
    # Routed now rather than by the worker, so the case is there as soon as the demo starts (the worker's
    # later routing of the same complaint finds it and changes nothing).
    case_service.route_complaint(session, complaint.id or 0)


def _demo_market_file(
    session: Session, scope: Scope, supervisor: Account, market: Operator, *, overdue: Instrument, today: date
) -> None:
    """What the market's operator file shows staff: a verified bad record and the class it brings, a
    supervisor's report awaiting verification, and a reminder about the overdue scale."""
    # A sound management system makes the market 守信 until the verified record below: a change in its history.
    operator_service.update(
        session,
        operator=market,
        data=OperatorUpdate(management_assessment=ManagementAssessment.sound),
        scope=scope,
    )
    records_service.create(
        session,
        operator=market,
        kind=RecordKind.INSTRUMENT_OVERDUE,
        fact_date=today - timedelta(days=20),
        source=RecordSource.staff,
        source_ref=f"demo:overdue:{overdue.id}",
        state=RecordState.VERIFIED,
        summary="B01 摊位电子秤超过检定有效期仍在使用，现场责令停用并送检。",
        instrument_id=overdue.id,
        instrument_still_in_use=False,
        actor=scope.user,
        reason="现场检查 / on-site inspection",
    )
    records_service.create(
        session,
        operator=market,
        kind=RecordKind.SHORT_WEIGHT,
        fact_date=today - timedelta(days=3),
        source=RecordSource.supervisor,
        source_ref="demo:patrol:1",
        summary="巡查时在 A02 摊位复称 1000 克苹果，实重 950 克。",
        actor=supervisor,
        reason="监督员巡查报告 / supervisor's patrol report",
    )
    # The class the verified record brings, stored (the worker would re-rate after the commit).
    rating.rerate_operator(session, market.id or 0, trigger=RatingTrigger.manual, actor=scope.user)
    supervision_service.schedule_interview(
        session,
        scope=scope,
        data=InterviewCreate(
            operator_id=market.id or 0,
            kind=InterviewKind.reminder,
            subject="B01 摊位电子秤已超过检定有效期，请于 7 日内送检并停止使用。",
        ),
    )


def demo_accounts(session: Session) -> list[DemoAccount]:
    """The demo accounts as they exist."""
    names = [a[0] for a in _ACCOUNTS] + ["operator_market"]
    rows = session.execute(select(Account).where(col(Account.username).in_(names))).scalars().all()
    order = {n: i for i, n in enumerate(names)}
    return [
        DemoAccount(a.username, DEMO_PASSWORD, a.role.value, a.jurisdiction_code, a.operator_id)
        for a in sorted(rows, key=lambda a: order[a.username])
    ]


def as_dicts(accounts: list[DemoAccount]) -> list[dict[str, object]]:
    """JSON-ready demo accounts."""
    return [asdict(a) for a in accounts]
