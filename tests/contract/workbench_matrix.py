"""Who may open what in the workbench (``/workbench``): one row per route, like ``authz_matrix.py``.

The workbench signs in with a form and a session cookie, not a bearer token, so its routes are checked by
``test_workbench_matrix.py`` (which signs every role in through the form) instead of the API matrix. Only staff,
read-only auditors (every page staff of their county open, no action: ``r`` adds them to the GET rows) and
admins get a session; every other role is refused at sign-in (a 403 page) and, holding no session, is
sent back to the sign-in form by every page. Ids are those of county A's objects in the contract world.
"""

from __future__ import annotations

from tests.contract.authz_matrix import ANY_STAFF, EVERYONE, STAFF_OVER_A, Row, r

WB = "/workbench"

WORKBENCH_MATRIX: tuple[Row, ...] = (
    # --- open to everyone: assets, the language switch, signing in and out ----------------------------------
    r("GET", f"{WB}/static/{{name}}", EVERYONE, params={"name": "workbench.css"}, public_ids=True),
    r("GET", f"{WB}/lang", EVERYONE),
    r("GET", f"{WB}/login", EVERYONE),
    r("POST", f"{WB}/login", EVERYONE),
    # With a wrong CSRF token: a signed-in user's session survives (400), the others go to the form.
    r("POST", f"{WB}/logout", EVERYONE, body={"csrf": "wrong"}),
    # --- signed-in staff ------------------------------------------------------------------------------------
    r("GET", f"{WB}/", ANY_STAFF),
    r("GET", f"{WB}/cases/{{case_id}}", STAFF_OVER_A),
    # A form the schema refuses (no reason): allowed staff get 422 and nothing changes.
    r("POST", f"{WB}/cases/{{case_id}}/{{step}}", STAFF_OVER_A, params={"step": "reopen"}),
    r(
        "GET",
        f"{WB}/cases/{{case_id}}/photos/{{photo_id}}/{{rendition}}",
        STAFF_OVER_A,
        params={"rendition": "thumbnail"},
    ),
    r("GET", f"{WB}/cases/{{case_id}}/photos/{{photo_id}}/original", STAFF_OVER_A),
    r("GET", f"{WB}/reviews", ANY_STAFF),
    r("GET", f"{WB}/reviews/records", ANY_STAFF),
    # A dismissal without its reason: allowed staff get 422 in place and nothing changes.
    r("POST", f"{WB}/records/{{record_id}}/{{step}}", STAFF_OVER_A, params={"step": "dismiss"}),
    r("GET", f"{WB}/reviews/corrections", ANY_STAFF),
    # No decision chosen: allowed staff get 422 in place and the request stays pending.
    r("POST", f"{WB}/corrections/{{correction_id}}/decide", STAFF_OVER_A),
    r("GET", f"{WB}/reviews/intake", ANY_STAFF),
    # The world's job was uploaded by an institution bound to county A.
    r("GET", f"{WB}/intake/{{job_id}}", STAFF_OVER_A),
    r("GET", f"{WB}/intake/{{job_id}}/progress.json", STAFF_OVER_A),
    r("GET", f"{WB}/intake/{{job_id}}/errors.csv", STAFF_OVER_A),
    r("GET", f"{WB}/reviews/publication", ANY_STAFF),
    r("GET", f"{WB}/dashboard", ANY_STAFF),
    r("GET", f"{WB}/map", ANY_STAFF),
    r("GET", f"{WB}/map/points.json", ANY_STAFF),
    r("GET", f"{WB}/map/boundaries.json", ANY_STAFF),
    # --- the operator file: forms the schema refuses (no reason, no subject, no outcome) change nothing -------
    r("GET", f"{WB}/operators", ANY_STAFF),
    r("GET", f"{WB}/operators/{{operator_id}}", STAFF_OVER_A),
    r("GET", f"{WB}/operators/{{operator_id}}/qr-sheet.pdf", STAFF_OVER_A),
    r("POST", f"{WB}/operators/{{operator_id}}/interviews", STAFF_OVER_A),
    r(
        "POST",
        f"{WB}/operators/{{operator_id}}/interviews/{{interview_id}}/{{step}}",
        STAFF_OVER_A,
        params={"step": "outcome"},
    ),
    r(
        "POST",
        f"{WB}/operators/{{operator_id}}/records/{{record_id}}/{{action}}",
        STAFF_OVER_A,
        params={"action": "dismiss"},
    ),
    # A refusal of a record with no pending request: allowed staff get the service's 409 in place.
    r("POST", f"{WB}/records/{{record_id}}/publication/{{step}}", STAFF_OVER_A, params={"step": "refuse"}),
)
