"""Who may call what: one row per route of the app (method + path template) with the roles that may call it.

The callers (``tests.contract.conftest.ROLES``): ``anonymous``, ``consumer_device``, ``supervisor`` (county A),
``operator`` (the user of a market in county A), ``staff_a`` (西湖区), ``staff_b`` (上城区, a neighbour county),
``staff_city`` (杭州市, A's parent), ``auditor`` (a read-only 审计员 of county A), ``institution`` (a verification institution bound to county A),
``association``, ``department`` (a partner department) and ``admin``.

Routes that take ids are called with ids of objects in county A (an operator, its stall and instrument, a
complaint and its case, a record, a correction request, an interview, an inspection plan, …), so ``allow``
says who may reach *those* objects: staff of county B are never in it, and must get 404 (never 403, which would
reveal that the object exists) wherever staff may call the route at all. A route with ``public_ids`` takes
ids of public things (a division code, a QR token, a public profile) that everyone may read.

``test_authz_matrix.py`` fails for any route of the app without a row here, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "anonymous"
DEVICE = "consumer_device"
SUPERVISOR = "supervisor"
OPERATOR = "operator"
STAFF_A = "staff_a"
STAFF_B = "staff_b"
STAFF_CITY = "staff_city"
AUDITOR = "auditor"
INSTITUTION = "institution"
ASSOCIATION = "association"
DEPARTMENT = "department"
ADMIN = "admin"

EVERYONE = frozenset(
    {
        ANONYMOUS,
        DEVICE,
        SUPERVISOR,
        OPERATOR,
        STAFF_A,
        STAFF_B,
        STAFF_CITY,
        AUDITOR,
        INSTITUTION,
        ASSOCIATION,
        DEPARTMENT,
        ADMIN,
    }
)
SIGNED_IN = EVERYONE - {ANONYMOUS}
#: Every holder of a staff scope (``StaffScope``): routes without ids, each answering within its own scope.
ANY_STAFF = frozenset({STAFF_A, STAFF_B, STAFF_CITY, ADMIN})
#: Staff whose scope covers county A: who may act on county A's objects.
STAFF_OVER_A = frozenset({STAFF_A, STAFF_CITY, ADMIN})


@dataclass(frozen=True)
class Row:
    """One route: who may call it, and how the test calls it."""

    method: str
    path: str
    allow: frozenset[str]
    #: Path parameters that are not named after a world id (``{kind}`` → ``stall``), or name another id.
    params: Mapping[str, str] = field(default_factory=dict)
    #: The JSON body sent (``{}`` by default for POST/PUT/PATCH: schema-invalid, so nothing changes) when a
    #: route checks the role only after validating the body; values ``"@name"`` are world ids.
    body: Any = None
    #: Query parameters; values ``"@name"`` are world ids.
    query: Mapping[str, str] = field(default_factory=dict)
    #: Extra request headers (a partner department's API key); values ``"@name"`` are world ids.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The path's ids name public things (a division code, a QR token); nobody is refused by id.
    public_ids: bool = False
    #: An allowed caller may get 404 here for a documented reason (a missing file or a one-time row).
    allowed_may_404: str = ""
    #: Why county A's auditor may not read this staff route although it is a GET ("" = the rule applies).
    auditor_excluded: str = ""


#: Methods that only read: the auditor's token is refused (403) on every other one.
READS = frozenset({"GET", "HEAD"})


def r(method: str, path: str, allow: frozenset[str], **kwargs: Any) -> Row:
    """A row (short to keep the table readable). County A's read-only auditor reads what county A's staff
    read: every GET that admits ``staff_a`` admits ``auditor`` too, unless the row says why not; no write that
    needs an account admits it (``test_authz_matrix`` checks those are a 403 in our error shape), while the
    open ones (signing in and out) take no account and so refuse nobody."""
    row = Row(method, path, allow, **kwargs)
    if method in READS and STAFF_A in allow and not row.auditor_excluded:
        return Row(method, path, allow | {AUDITOR}, **kwargs)
    if method not in READS and ANONYMOUS not in allow:
        return Row(method, path, allow - {AUDITOR}, **kwargs)
    return row


V1 = "/api/v1"

MATRIX: tuple[Row, ...] = (
    # --- framework pages ------------------------------------------------------------------------------------
    r("GET", "/openapi.json", EVERYONE),
    r("GET", "/docs", EVERYONE),
    r("GET", "/docs/oauth2-redirect", EVERYONE),
    r("GET", "/redoc", EVERYONE),
    # --- health, auth ---------------------------------------------------------------------------------------
    r("GET", "/healthz", EVERYONE),
    # --- the app's bootstrap and app-link files -------------------------------------------------------------
    r("GET", f"{V1}/app/config", EVERYONE),
    r("GET", "/.well-known/assetlinks.json", EVERYONE),
    r("GET", "/.well-known/apple-app-site-association", EVERYONE),
    r("POST", f"{V1}/auth/token", EVERYONE),
    r("POST", f"{V1}/auth/refresh", EVERYONE),
    r("POST", f"{V1}/auth/logout", EVERYONE),
    r("POST", f"{V1}/auth/device", EVERYONE),
    r("POST", f"{V1}/auth/register", EVERYONE),
    r("POST", f"{V1}/auth/activate", EVERYONE),
    r("GET", f"{V1}/me", SIGNED_IN),
    r("POST", f"{V1}/accounts", ANY_STAFF),
    r("POST", f"{V1}/accounts/{{account_id}}/deactivate", STAFF_OVER_A),
    # --- jurisdictions (public) -----------------------------------------------------------------------------
    r("GET", f"{V1}/jurisdictions", EVERYONE),
    r("GET", f"{V1}/jurisdictions/locate", EVERYONE, query={"lon": "120.13", "lat": "30.259"}),
    r("GET", f"{V1}/jurisdictions/{{code}}", EVERYONE, public_ids=True),
    # --- operators, stalls, activation, self-commitment -----------------------------------------------------
    r("POST", f"{V1}/operators", ANY_STAFF),
    r("GET", f"{V1}/operators", ANY_STAFF),
    r("GET", f"{V1}/operators/{{operator_id}}", STAFF_OVER_A | {OPERATOR}),
    r("PATCH", f"{V1}/operators/{{operator_id}}", STAFF_OVER_A, body={"name": 5}),
    r("POST", f"{V1}/operators/{{operator_id}}/stalls", STAFF_OVER_A),
    r("GET", f"{V1}/operators/{{operator_id}}/stalls", STAFF_OVER_A | {OPERATOR}),
    r("PATCH", f"{V1}/stalls/{{stall_id}}", STAFF_OVER_A, body={"name": "契约测试摊位"}),
    r("POST", f"{V1}/operators/{{operator_id}}/activation-codes", STAFF_OVER_A),
    r("GET", f"{V1}/self-commitment/texts", EVERYONE),
    r("POST", f"{V1}/operators/{{operator_id}}/self-commitment", STAFF_OVER_A | {OPERATOR}),
    r("GET", f"{V1}/operators/{{operator_id}}/self-commitment", STAFF_OVER_A | {OPERATOR}),
    r("POST", f"{V1}/operators/import", ANY_STAFF),
    # --- instruments ----------------------------------------------------------------------------------------
    r("GET", f"{V1}/instrument-types", EVERYONE),
    r("POST", f"{V1}/operators/{{operator_id}}/instruments", STAFF_OVER_A),
    r("GET", f"{V1}/operators/{{operator_id}}/instruments", STAFF_OVER_A | {OPERATOR}),
    r("GET", f"{V1}/instruments/{{instrument_id}}", STAFF_OVER_A | {OPERATOR, INSTITUTION}),
    r("PATCH", f"{V1}/instruments/{{instrument_id}}", STAFF_OVER_A, body={"serial": 5}),
    r("GET", f"{V1}/instruments/{{instrument_id}}/verifications", STAFF_OVER_A | {OPERATOR, INSTITUTION}),
    r(
        "POST",
        f"{V1}/instruments/{{instrument_id}}/verifications",
        STAFF_OVER_A | {INSTITUTION},
        # The role is checked after the body is read: a valid one, so a refused operator is seen to be refused.
        body={"verified_on": "@yesterday", "passed": True, "institution": "契约测试计量院"},
    ),
    # --- QR codes -------------------------------------------------------------------------------------------
    r("GET", f"{V1}/public/qr/{{token}}", EVERYONE, public_ids=True),
    r(
        "GET",
        f"{V1}/qr/{{kind}}/{{subject_id}}",
        STAFF_OVER_A,
        params={"kind": "stall", "subject_id": "@stall_id"},
    ),
    r(
        "POST",
        f"{V1}/qr/{{kind}}/{{subject_id}}/reprint",
        STAFF_OVER_A,
        params={"kind": "stall", "subject_id": "@stall_id"},
    ),
    # --- complaints -----------------------------------------------------------------------------------------
    r("POST", f"{V1}/complaints", frozenset({DEVICE, SUPERVISOR})),
    r("POST", f"{V1}/complaint-form", frozenset({DEVICE, SUPERVISOR})),
    r("POST", f"{V1}/uploads", frozenset({DEVICE, SUPERVISOR})),
    r("GET", f"{V1}/complaints/similar", SIGNED_IN),
    r("GET", f"{V1}/me/complaints", SIGNED_IN),
    r("GET", f"{V1}/complaints/{{complaint_id}}", frozenset({DEVICE})),
    r(
        "GET",
        f"{V1}/complaints/{{complaint_id}}/photos/{{photo_id}}/{{rendition}}",
        STAFF_OVER_A | {DEVICE},
        params={"rendition": "display"},
    ),
    r("GET", f"{V1}/staff/complaints/{{complaint_id}}", STAFF_OVER_A),
    r("GET", f"{V1}/staff/complaints/{{complaint_id}}/photos/{{photo_id}}/original", STAFF_OVER_A),
    # --- cases ----------------------------------------------------------------------------------------------
    r("GET", f"{V1}/cases", ANY_STAFF),
    r("GET", f"{V1}/cases/overdue", ANY_STAFF),
    r("GET", f"{V1}/cases/transfers", ANY_STAFF),
    r("GET", f"{V1}/cases/rejection-reasons", ANY_STAFF),
    r("GET", f"{V1}/cases/{{case_id}}", STAFF_OVER_A),
    *(
        r("POST", f"{V1}/cases/{{case_id}}/{step}", STAFF_OVER_A, body={"note": 5, "reason": 5})
        for step in (
            "accept",
            "reject",
            "investigate",
            "substantiate",
            "unsubstantiate",
            "mediate",
            "close",
            "reopen",
            "transfer",
            "operator-notified",
            "deadlines/extend",
            "deadlines/pause",
            "arbitrations",
        )
    ),
    r("GET", f"{V1}/cases/{{case_id}}/arbitrations", STAFF_OVER_A),
    r("POST", f"{V1}/cases/{{case_id}}/arbitrations/{{arbitration_id}}/result", STAFF_OVER_A),
    # --- deadline figures (per deployment and bureau) -------------------------------------------------------
    r("GET", f"{V1}/deadline-figures", ANY_STAFF),
    r("GET", f"{V1}/jurisdictions/{{code}}/deadline-rules", STAFF_OVER_A, params={"code": "330106"}),
    r(
        "PUT",
        f"{V1}/jurisdictions/{{code}}/deadline-rules/{{key}}",
        STAFF_OVER_A,
        params={"code": "330106", "key": "correction_decision"},
        # Validated before the scope check: a valid body, so county B's staff are seen to get 404.
        body={"working_days": 15, "legal_basis_zh": "契约测试规则", "legal_basis_en": "contract test rule"},
    ),
    r(
        "DELETE",
        f"{V1}/jurisdictions/{{code}}/deadline-rules/{{key}}",
        STAFF_OVER_A,
        params={"code": "330106", "key": "correction_decision"},
        allowed_may_404="the rule is removed by the first allowed caller; later ones find none (404)",
    ),
    r("GET", f"{V1}/me/findings", frozenset({OPERATOR})),
    r("GET", f"{V1}/me/association-memberships", frozenset({OPERATOR})),
    # --- records, corrections, ratings, supervisor reports --------------------------------------------------
    r("POST", f"{V1}/records", ANY_STAFF),
    r("GET", f"{V1}/records", ANY_STAFF),
    r("GET", f"{V1}/records/{{record_id}}", STAFF_OVER_A),
    *(
        r("POST", f"{V1}/records/{{record_id}}/{step}", STAFF_OVER_A)
        for step in ("verify", "dismiss", "revoke", "correct")
    ),
    r("GET", f"{V1}/me/records", frozenset({OPERATOR})),
    r("GET", f"{V1}/me/records/{{record_id}}", frozenset({OPERATOR})),
    r("POST", f"{V1}/records/{{record_id}}/corrections", frozenset({OPERATOR})),
    r("GET", f"{V1}/me/corrections", frozenset({OPERATOR})),
    r("POST", f"{V1}/me/corrections", frozenset({OPERATOR})),
    r("GET", f"{V1}/corrections", ANY_STAFF),
    r("GET", f"{V1}/corrections/{{correction_id}}", STAFF_OVER_A),
    r("POST", f"{V1}/corrections/{{correction_id}}/decide", STAFF_OVER_A),
    r("GET", f"{V1}/operators/{{operator_id}}/rating", STAFF_OVER_A | {OPERATOR}),
    r("GET", f"{V1}/operators/{{operator_id}}/rating/history", STAFF_OVER_A | {OPERATOR}),
    r("POST", f"{V1}/operators/{{operator_id}}/rating/refresh", STAFF_OVER_A),
    r("GET", f"{V1}/rating-rules", EVERYONE),
    r(
        "POST",
        f"{V1}/supervisor-reports",
        frozenset({SUPERVISOR}),
        # The role is checked after the body is read: a valid one, so that refusals are seen as refusals.
        body={
            "operator_id": "@operator_id",
            "kind": "short_weight",
            "fact_date": "@yesterday",
            "summary": "巡查",
        },
    ),
    r("GET", f"{V1}/me/supervisor-reports", frozenset({SUPERVISOR})),
    # --- supervision ----------------------------------------------------------------------------------------
    r("POST", f"{V1}/inspections", ANY_STAFF),
    r("GET", f"{V1}/inspections", ANY_STAFF),
    r("GET", f"{V1}/key-supervision", ANY_STAFF),
    r("POST", f"{V1}/inspection-plans", ANY_STAFF),
    r("GET", f"{V1}/inspection-plans", ANY_STAFF),
    r("GET", f"{V1}/inspection-plans/{{plan_id}}.csv", STAFF_OVER_A),
    r("GET", f"{V1}/inspection-plans/{{plan_id}}", STAFF_OVER_A),
    r("POST", f"{V1}/interviews", ANY_STAFF),
    r("GET", f"{V1}/interviews", ANY_STAFF),
    r("GET", f"{V1}/interviews/{{interview_id}}", STAFF_OVER_A),
    r("POST", f"{V1}/interviews/{{interview_id}}/acknowledge", frozenset({OPERATOR})),
    r("POST", f"{V1}/interviews/{{interview_id}}/outcome", STAFF_OVER_A),
    r("POST", f"{V1}/interviews/{{interview_id}}/cancel", STAFF_OVER_A),
    r("GET", f"{V1}/me/interviews", frozenset({OPERATOR})),
    r("POST", f"{V1}/department-notices", ANY_STAFF),
    r("GET", f"{V1}/department-notices", ANY_STAFF),
    # --- publication gate (Art. 19-20) and the public untrustworthy list -----------------------------------
    r("GET", f"{V1}/publishing/queue", ANY_STAFF),
    r("GET", f"{V1}/records/{{record_id}}/publication", STAFF_OVER_A),
    *(
        r("POST", f"{V1}/records/{{record_id}}/publication/{step}", STAFF_OVER_A)
        for step in ("request", "approve", "refuse", "unpublish")
    ),
    r("GET", f"{V1}/public/untrustworthy", EVERYONE),
    r("GET", f"{V1}/public/untrustworthy.json", EVERYONE),
    # --- partner departments: key management by staff, the feed by key (Art. 21) ---------------------------
    r("POST", f"{V1}/exchange/keys", ANY_STAFF),
    r("GET", f"{V1}/exchange/keys", ANY_STAFF),
    r("GET", f"{V1}/exchange/keys/{{key_id}}", STAFF_OVER_A),
    r("POST", f"{V1}/exchange/keys/{{key_id}}/revoke", STAFF_OVER_A),
    # Schema-invalid, so the key the feed row reads with is never rotated away.
    r("POST", f"{V1}/exchange/keys/{{key_id}}/rotate", STAFF_OVER_A, body={"not_a_field": 1}),
    r("GET", f"{V1}/exchange/read-log", ANY_STAFF),
    # Read with the department's key, whoever else is signed in; test_feed_refuses_bearer_tokens checks that
    # no role's token reads it without the key.
    r("GET", f"{V1}/feed/changes", EVERYONE, headers={"X-Api-Key": "@feed_key"}),
    # --- intake from verification institutions (Art. 15) and associations (Art. 16), their own items --------
    r("POST", f"{V1}/intake/verifications", frozenset({INSTITUTION})),
    r("POST", f"{V1}/intake/verifications/import", frozenset({INSTITUTION})),
    r("GET", f"{V1}/intake/verifications", frozenset({INSTITUTION})),
    r("GET", f"{V1}/intake/verifications/{{submission_id}}", frozenset({INSTITUTION})),
    r("GET", f"{V1}/intake/instruments/{{instrument_id}}/operator-class", frozenset({INSTITUTION})),
    r("GET", f"{V1}/intake/arbitrations", frozenset({INSTITUTION})),
    r("POST", f"{V1}/intake/arbitrations/{{arbitration_id}}/result", frozenset({INSTITUTION})),
    r("POST", f"{V1}/intake/violations", frozenset({INSTITUTION})),
    r("POST", f"{V1}/intake/violations/import", frozenset({INSTITUTION})),
    r("POST", f"{V1}/intake/association-reports", frozenset({ASSOCIATION})),
    r("POST", f"{V1}/intake/association-reports/import", frozenset({ASSOCIATION})),
    r("GET", f"{V1}/intake/association-memberships", frozenset({ASSOCIATION})),
    r("POST", f"{V1}/intake/association-memberships", frozenset({ASSOCIATION})),
    r("POST", f"{V1}/intake/association-memberships/import", frozenset({ASSOCIATION})),
    r("GET", f"{V1}/intake/association-memberships/{{membership_id}}", frozenset({ASSOCIATION})),
    # Schema-invalid ({}), so the world's membership is never ended.
    r("POST", f"{V1}/intake/association-memberships/{{membership_id}}/end", frozenset({ASSOCIATION})),
    r("GET", f"{V1}/operators/{{operator_id}}/association-memberships", STAFF_OVER_A),
    r("GET", f"{V1}/intake/reports", frozenset({INSTITUTION, ASSOCIATION})),
    r("GET", f"{V1}/intake/reports/{{report_id}}", frozenset({ASSOCIATION})),
    r("GET", f"{V1}/intake/jobs", frozenset({INSTITUTION, ASSOCIATION})),
    r("GET", f"{V1}/intake/jobs/{{job_id}}", frozenset({INSTITUTION})),
    r("GET", f"{V1}/intake/jobs/{{job_id}}/errors", frozenset({INSTITUTION})),
    # --- devices and the inbox (the caller's own) -----------------------------------------------------------
    r("GET", f"{V1}/devices", SIGNED_IN),
    r("POST", f"{V1}/devices", SIGNED_IN),
    r("DELETE", f"{V1}/devices/{{device_id}}", frozenset({OPERATOR})),
    r("GET", f"{V1}/me/notifications", SIGNED_IN),
    r("POST", f"{V1}/me/notifications/read-all", SIGNED_IN),
    r("POST", f"{V1}/me/notifications/{{notification_id}}/read", frozenset({OPERATOR})),
    r("GET", f"{V1}/me/notification-preferences", SIGNED_IN),
    r("PUT", f"{V1}/me/notification-preferences", SIGNED_IN),
    # --- SMS: contact numbers (operators' own, staff with consent), reach, the monthly report ---------------
    r("GET", f"{V1}/me/sms-contact", frozenset({OPERATOR}), allowed_may_404="no contact number given yet"),
    # An invalid number: the operator gets 422 invalid_phone (nothing stored), everyone else is refused first.
    r("PUT", f"{V1}/me/sms-contact", frozenset({OPERATOR}), body={"phone": "12345", "consent": True}),
    r("DELETE", f"{V1}/me/sms-contact", frozenset({OPERATOR})),
    r(
        "GET",
        f"{V1}/operators/{{operator_id}}/sms-contact",
        STAFF_OVER_A,
        allowed_may_404="no contact number recorded for the operator",
    ),
    r(
        "PUT",
        f"{V1}/operators/{{operator_id}}/sms-contact",
        STAFF_OVER_A,
        body={"phone": "12345", "consent": True, "consent_note": "契约测试"},
    ),
    r("DELETE", f"{V1}/operators/{{operator_id}}/sms-contact", STAFF_OVER_A),
    r("GET", f"{V1}/notice-reach", ANY_STAFF),
    r("GET", f"{V1}/sms-report", ANY_STAFF, query={"month": "2026-12"}),
    # --- public pages and search ----------------------------------------------------------------------------
    r("GET", f"{V1}/public/operators", EVERYONE),
    r("GET", f"{V1}/public/operators/{{operator_id}}", EVERYONE, public_ids=True),
    r("GET", "/q/{token}", EVERYONE, public_ids=True),
    r("GET", "/app/q/{token}", EVERYONE, public_ids=True),
    r("GET", "/static/{name}", EVERYONE, public_ids=True, params={"name": "qr.js"}),
    # --- Open311 GeoReport v2 (public; filing needs a client's api_key, not a role) ------------------------
    r("GET", "/open311/v2/services.{response_format}", EVERYONE),
    r(
        "GET",
        "/open311/v2/services/{service_code}.{response_format}",
        EVERYONE,
        public_ids=True,
        params={"service_code": "short_weight"},
    ),
    r("GET", "/open311/v2/requests.{response_format}", EVERYONE),
    r("POST", "/open311/v2/requests.{response_format}", EVERYONE, query={"api_key": "@api_key"}),
    r("GET", "/open311/v2/requests/{service_request_id}.{response_format}", EVERYONE, public_ids=True),
)

#: Values of path parameters that are not world ids.
DEFAULT_PARAMS: Mapping[str, str] = {
    "code": "330106",
    "token": "@qr_token",
    "response_format": "json",
}
