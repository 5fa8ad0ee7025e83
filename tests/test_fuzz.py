"""API fuzzing with schemathesis against the app's own /openapi.json, over the real engine.

Every generated request (valid and invalid queries, odd unicode, huge numbers, wrong types)
must get a documented status, never a 5xx, and a body that matches the documented schema.
Driven through schemathesis's Python API and Hypothesis directly: its pytest plugin reads a
private pytest attribute that pytest 9 removed.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig

# Everything schemathesis checks except "positive_data_acceptance": the API validates meaning
# beyond the schema (a date like 2019-02-31, a query of blanks) and answers those with a
# documented 422 in the one error shape, which that check would call a failure.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.missing_required_header,
    checks.unsupported_method,
    checks.ignored_auth,
]


@pytest.mark.fuzz
def test_api_conforms_to_its_schema(app) -> None:  # type: ignore[no-untyped-def]
    # A request the schema forbids may be refused for its length before its parameters are read
    # (414 past 4,096 characters of URI): a rejection too, beside schemathesis's default list.
    config = SchemathesisConfig.from_str(
        "[checks.negative_data_rejection]\n"
        'expected-statuses = [400, 401, 403, 404, 405, 406, 409, 414, 415, 422, 428, 429, "5xx"]\n'
    )
    # A bulk write's body is NDJSON, which schemathesis cannot make from a schema: raw lines,
    # good and bad (the app under test takes no writes: the routes must still refuse in shape).
    ndjson = st.sampled_from([b'{"id": "a", "text": "Un texte."}\n', b"", b"{not json\n", "é".encode() * 3])
    schemathesis.openapi.media_type("application/x-ndjson", ndjson)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/search", "/articles/{doc_id}", "/health"}
    seen: dict[str, int] = {}
    # Both modes: valid requests by the schema (answers, 304s never: no If-None-Match) and
    # requests the schema forbids (out of range k, bad dates, wrong types), which must get 4xx.
    for op, mode in [(op, mode) for op in operations for mode in GenerationMode]:

        @given(case=op.as_strategy(generation_mode=mode))
        # derandomized: the same requests every run, so the coverage asserted below cannot flake
        @hsettings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(checks=CHECKS)
            key = f"{case.method.upper()} {case.operation.path} {response.status_code}"
            seen[key] = seen.get(key, 0) + 1

        try:
            check()
        except Unsatisfiable:
            # a route with no parameters (/health, /version) has no request its schema forbids
            assert mode is GenerationMode.NEGATIVE and not op.path_parameters and not op.query, op.path
    # The run really exercised the search: answers and rejections both.
    assert seen.get("GET /search 200", 0) >= 10 and seen.get("GET /search 422", 0) >= 10, seen
