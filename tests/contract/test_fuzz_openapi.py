"""Fuzzing from our own OpenAPI document (schemathesis), in-process against the ASGI app.

Every operation of ``/openapi.json`` is exercised by schemathesis' examples, coverage and fuzzing phases (valid
and invalid input, a fixed seed, derandomised), each example sent as an admin, as staff of a county or
anonymously (``identity_for``), and then by the stateful phase, which chains operations along the links
schemathesis infers from the schema. The requests reach real code paths: the accounts and objects of ``contract_world`` are committed in the test database.

Every response must not be a server error, and must match its operation's documented status codes, content
types, headers and schema; all of schemathesis' checks run except those listed in ``EXCLUDED_CHECKS``.
"""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.core.transport import Response
from schemathesis.specs.openapi import checks as openapi_checks

from backend import ratelimit
from backend.db import get_engine
from backend.main import create_app
from tests.conftest import _restore_rows, _table_rows
from tests.contract.conftest import ContractWorld
from tests.support.stalls import STALL_LOG, SlowCall, watch

SEED = 20261202
#: Seconds a request may take before schemathesis gives up (its default is 10). A conformance run is not a
#: latency test: one CI run on a busy machine saw a single request stall past 10 s once and pass on replay.
#: ``watch`` dumps every thread's stack after 3 s, so a stall still leaves its cause in the warnings.
REQUEST_TIMEOUT_S = 60
#: Generated examples per operation in the fuzzing phase (the schema's examples and the coverage phase add more).
MAX_EXAMPLES = 100
#: The coverage phase: boundary values and one-invalid-part-at-a-time cases of every parameter and body.
COVERAGE = True

#: Checks that do not run, each with the reason. Everything else schemathesis has runs on every response
#: (and ``_OPERATIONS`` turns two more off for the upload paths only, with the reason there).
EXCLUDED_CHECKS: dict[str, tuple[CheckFunction, str]] = {
    "positive_data_acceptance": (
        openapi_checks.positive_data_acceptance,
        "schema-valid input is still refused by business rules the schema cannot express (a USCC checksum, "
        "a jurisdiction outside the caller's scope, a state transition that is not allowed, an unknown id); "
        "those answers are 404/409/422 with our error shape, which the other checks verify",
    ),
}
_EXCLUDED = [check for check, _reason in EXCLUDED_CHECKS.values()]


def test_undocumented_statuses_and_content_fail_the_fuzzing() -> None:
    """Schemathesis runs every check not excluded: a status or content type the document omits fails it."""
    for check in (
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
    ):
        assert check not in _EXCLUDED


def test_a_stalled_call_leaves_every_thread_s_stack_and_a_warning() -> None:
    """``watch`` (around every fuzzed request) explains a stall: the stacks past its limit, a warning naming them."""
    import time

    before = STALL_LOG.stat().st_size if STALL_LOG.exists() else 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with watch("quick block", after_s=5):
            time.sleep(0.01)
    assert (STALL_LOG.stat().st_size if STALL_LOG.exists() else 0) == before
    with pytest.warns(SlowCall, match=r"slow block took 0\.\d s"), watch("slow block", after_s=0.2):
        time.sleep(0.4)
    written = STALL_LOG.read_bytes()[before:].decode("utf-8")
    assert (
        "most recent call first" in written and "test_a_stalled_call_leaves_every_thread_s_stack" in written
    )
    assert written.rstrip().splitlines()[-1].startswith("=== slow block took 0.")


def test_fuzzed_requests_may_take_a_minute() -> None:
    """Schemathesis' 10 s default is replaced, for the single examples and the stateful phase alike."""
    assert schema.config.request_timeout_for(operation=schema["/healthz"]["GET"]) == REQUEST_TIMEOUT_S


_OPERATIONS = [
    {
        # An upload path is also the item path of its collection with the id "import"
        # (/api/v1/operators/import is /api/v1/operators/{operator_id}, GET and PATCH): those methods answer 422
        # there (not an integer id) rather than 405, and Allow names them.
        "include-path-regex": r"/import$",
        "checks": {"unsupported_method": {"enabled": False}, "allow_header_conformance": {"enabled": False}},
    }
]


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "request-timeout": REQUEST_TIMEOUT_S,
            "generation": {"max-examples": MAX_EXAMPLES},
            "phases": {"coverage": {"enabled": COVERAGE}, "stateful": {"max-steps": 6}},
            # Schemathesis' own check of the schema: multipart and form bodies are slow to generate.
            "suppress-health-check": ["too_slow"],
            "operations": _OPERATIONS,
        }
    )


APP = create_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=_config())

#: Who sends each example: everything in the whole country, one county's staff (scoped answers), and nobody
#: (401s, public pages). Chosen from the example itself, so a run is reproducible and every identity gets a
#: share of every operation's examples without tripling the run time.
IDENTITIES = ("admin", "admin", "staff_a", "anonymous")


def identity_for(case: schemathesis.Case) -> str:
    """The identity that sends ``case`` (a stable function of its generated data)."""
    data = repr((case.path_parameters, case.query, case.body, sorted((case.headers or {}).items())))
    return IDENTITIES[zlib.crc32(data.encode("utf-8", "surrogatepass")) % len(IDENTITIES)]


#: too_slow: an example costs a database round trip and often an argon2 hash, not slow generation.
#: filter_too_much: patterns (USCC, division codes) reject many drawn strings. data_too_large: multipart bodies.
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


@pytest.mark.fuzz
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=_SUPPRESSED,
)
@hypothesis.seed(SEED)
def test_operation_conforms(case: schemathesis.Case, contract_world: ContractWorld) -> None:
    """No server error, and every answer as documented, for valid and invalid input by each identity."""
    ratelimit.reset()
    identity = identity_for(case)
    if identity != "anonymous":
        case.headers = {**(case.headers or {}), **contract_world.headers[identity]}
    with watch(f"{case.method} {case.path}"):
        case.call_and_validate(excluded_checks=_EXCLUDED, timeout=REQUEST_TIMEOUT_S)


@pytest.mark.fuzz
def test_stateful_sequences_conform(contract_world: ContractWorld) -> None:
    """Chains of calls along the inferred links, as an admin, with every check after every step."""
    headers = dict(contract_world.headers["admin"])
    # Each run starts from the same world: Hypothesis replays runs and needs the same answers each time (a
    # POST that created a row once and conflicts with it the next time, or a call that accepted one of the
    # world's cases, changes which steps can follow). The world's rows are put back whole after every run.
    engine = get_engine()
    world = _table_rows(engine)

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            ratelimit.reset()

        def teardown(self) -> None:
            _restore_rows(engine, world)
            super().teardown()

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers, "timeout": REQUEST_TIMEOUT_S}

        def validate_response(
            self, response: Response, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response, excluded_checks=_EXCLUDED, headers=headers, transport_kwargs=kwargs or None
            )

    Machine.run(
        settings=settings(
            max_examples=100,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=_SUPPRESSED,
        )
    )
