"""Which bureau receives a complaint (Art. 6 "谁管辖、谁负责") and why: routing rules 1-6 applied to a stored
complaint, with the geocoder for reports that only give an address."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlmodel import Session

from backend.complaints.models import Complaint
from backend.config import get_settings
from backend.jurisdictions import geocoder, locator
from backend.jurisdictions.models import Jurisdiction
from backend.operators.models import Operator
from geo import (
    CoordSystem,
    GeoInputError,
    Reason,
    RoutingRule,
    check_operator_location,
    operator_mismatch_reason,
    province_code,
)

log = logging.getLogger(__name__)

RoutingSource = Literal["operator", "geotag", "address", "none"]


class GeocoderRetry(Exception):
    """The configured geocoder failed transiently; the routing task retries before giving up on it."""


@dataclass(frozen=True)
class RoutingOutcome:
    """Where a complaint goes and why; ``triage`` when no county could be named (rule 5 and its kin)."""

    jurisdiction_code: str | None
    rule: int
    reason: Reason
    candidates: list[dict[str, Any]] = field(default_factory=list)
    low_confidence: bool = False
    triage: bool = False
    source: RoutingSource = "geotag"
    location_mismatch: bool | None = None
    operator_distance_m: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for the case history and the audit entry."""
        return {
            "jurisdiction_code": self.jurisdiction_code,
            "rule": self.rule,
            "reason": {"code": self.reason.code, "zh": self.reason.zh, "en": self.reason.en},
            "candidates": self.candidates,
            "low_confidence": self.low_confidence,
            "triage": self.triage,
            "source": self.source,
            "location_mismatch": self.location_mismatch,
            "operator_distance_m": self.operator_distance_m,
        }


def _existing(session: Session, code: str | None) -> str | None:
    """``code`` if the jurisdiction table has it (the foreign key would refuse anything else)."""
    if code is None:
        return None
    return code if session.get(Jurisdiction, code) is not None else None


def _triage(session: Session, province: str | None, reason: Reason, source: RoutingSource) -> RoutingOutcome:
    """Rule 5: the province's triage queue, or the national one (admins) when no province can be named."""
    return RoutingOutcome(
        jurisdiction_code=_existing(session, province),
        rule=int(RoutingRule.UNROUTABLE),
        reason=reason,
        low_confidence=True,
        triage=True,
        source=source,
    )


def _by_operator(session: Session, complaint: Complaint, operator: Operator) -> RoutingOutcome:
    """Rule 1: the operator's registered jurisdiction, with the geotag's distance checked against it."""
    threshold = get_settings().routing_mismatch_m
    jurisdiction = session.get(Jurisdiction, operator.jurisdiction_code)
    name = jurisdiction.name if jurisdiction is not None else None
    distance: float | None = None
    mismatch: bool | None = None
    if None not in (complaint.lon, complaint.lat, operator.lon, operator.lat):
        assert complaint.lon is not None and complaint.lat is not None
        assert operator.lon is not None and operator.lat is not None
        distance, mismatch = check_operator_location(
            (operator.lon, operator.lat), (complaint.lon, complaint.lat), threshold
        )
        reason = operator_mismatch_reason(distance, threshold)
    elif complaint.lon is None:
        reason = Reason(
            "operator_jurisdiction",
            "已知经营者，按其登记辖区分派（投诉未附定位，未核对位置）。",
            "Known operator: routed to its registered jurisdiction (no geotag to check against).",
        )
    else:
        reason = Reason(
            "operator_jurisdiction",
            "已知经营者，按其登记辖区分派（经营者未登记位置，未核对定位）。",
            "Known operator: routed to its registered jurisdiction (it has no registered location to check "
            "the geotag against).",
        )
    return RoutingOutcome(
        jurisdiction_code=operator.jurisdiction_code,
        rule=int(RoutingRule.OPERATOR_JURISDICTION),
        reason=reason,
        candidates=[{"code": operator.jurisdiction_code, "name": name, "distance_m": distance}],
        low_confidence=False,
        source="operator",
        location_mismatch=mismatch,
        operator_distance_m=distance,
    )


def _by_point(
    session: Session,
    lon: float,
    lat: float,
    accuracy_m: float | None,
    source: RoutingSource,
    prefix: tuple[str, str] = ("", ""),
) -> RoutingOutcome:
    """Rules 2-6 on a WGS-84 point, with every boundary code mapped onto the current GB/T 2260 table."""
    located = locator.locate(lon, lat, CoordSystem.WGS84, accuracy_m)
    decision = located.decision
    norm = locator.boundaries().normalisation
    candidates = [
        {
            "code": norm.normalise(c.code) or c.code,
            "name": c.name,
            "distance_m": c.distance_m,
            "overlap_share": c.overlap_share,
        }
        for c in decision.candidates
    ]
    reason = Reason(decision.reason.code, prefix[0] + decision.reason.zh, prefix[1] + decision.reason.en)
    code = _existing(session, located.code)
    if decision.rule is RoutingRule.UNROUTABLE:
        return _triage(session, decision.province_code, reason, source)
    if code is None:
        # The boundary data names a county the current code table does not know (a rename the alias table
        # lacks): its province can still take it, and `gongping geo check` lists the code for review.
        raw = decision.code or ""
        log.warning("boundary code %s has no current jurisdiction; routing to provincial triage", raw)
        return _triage(
            session,
            province_code(raw) if raw else None,
            Reason(
                "unmapped_boundary_code",
                f"{reason.zh}但边界代码{raw}不在现行行政区划代码表中，转省级分拣。",
                f"{reason.en} But boundary code {raw} is not in the current division table; sent to "
                "provincial triage.",
            ),
            source,
        )
    return RoutingOutcome(
        jurisdiction_code=code,
        rule=int(decision.rule),
        reason=reason,
        candidates=candidates,
        low_confidence=decision.low_confidence,
        source=source,
    )


def _by_address(session: Session, address: str, *, final_attempt: bool) -> RoutingOutcome:
    """An address-only report: geocode it when a geocoder is configured, else provincial/national triage."""
    if not get_settings().geocoder_url:
        return _triage(
            session,
            None,
            Reason(
                "address_only_no_geocoder",
                "投诉仅提供文字地址，且未配置地址解析服务，转人工分派。",
                "The report gives only an address and no geocoder is configured; sent to triage for staff to "
                "route by hand.",
            ),
            "address",
        )
    try:
        point = geocoder.geocode(address)
    except geocoder.GeocoderUnavailable as exc:
        if not final_attempt:
            raise GeocoderRetry(str(exc)) from exc
        return _triage(
            session,
            None,
            Reason(
                "geocoder_unavailable",
                "地址解析服务多次不可用，转人工分派。",
                "The geocoder stayed unavailable; sent to triage for staff to route by hand.",
            ),
            "address",
        )
    if point is None:
        return _triage(
            session,
            None,
            Reason(
                "address_not_found",
                "无法根据投诉地址确定位置，转人工分派。",
                "The address could not be located; sent to triage for staff to route by hand.",
            ),
            "address",
        )
    return _by_point(
        session,
        point.lon,
        point.lat,
        None,
        "address",
        (f"按地址解析定位（{point.display_name}）：", f"Located from the address ({point.display_name}): "),
    )


def decide(session: Session, complaint: Complaint, *, final_attempt: bool = False) -> RoutingOutcome:
    """Apply the routing rules in order; raises GeocoderRetry when a configured geocoder fails transiently."""
    if complaint.operator_id is not None:
        operator = session.get(Operator, complaint.operator_id)
        if operator is not None:
            return _by_operator(session, complaint, operator)
    if complaint.lon is not None and complaint.lat is not None:
        try:
            return _by_point(session, complaint.lon, complaint.lat, complaint.accuracy_m, "geotag")
        except GeoInputError as exc:
            # Intake validates geotags, so this is a stored value gone bad: staff place it rather than the
            # task failing for ever.
            log.error("complaint %s: geotag unusable for routing: %s", complaint.id, exc)
            return _triage(
                session,
                None,
                Reason(
                    "invalid_geotag",
                    "投诉定位数据无法使用，转人工分派。",
                    "The geotag cannot be used; sent to triage.",
                ),
                "geotag",
            )
    if complaint.address:
        return _by_address(session, complaint.address, final_attempt=final_attempt)
    return _triage(
        session,
        None,
        Reason(
            "no_location",
            "投诉既无经营者、定位，也无地址，转人工分派。",
            "The report names no operator and has no geotag or address; sent to triage.",
        ),
        "none",
    )
