"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis), on the
real services: no request, however odd, gets a 5xx, and every response — status code,
content type, headers, body — is one the document declares.

(Hypothesis drives each operation's strategy directly: schemathesis' pytest fixture loader
does not work with this pytest version.)"""

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from ingest_api.app import create_app


@pytest.fixture(scope="module")
def api_schema(api_settings):
    # A rate limit the fuzzer does not reach: 429s would hide the endpoints behind them.
    app = create_app(
        api_settings.model_copy(update={"api_rate_limit_per_s": 1e6, "api_rate_limit_burst": 10**6})
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def for_every_operation(schema, examples: int, check: Callable) -> list[str]:  # type: ignore[type-arg]
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case):  # type: ignore[no-untyped-def]
            check(case)

        run()
        tested.append(f"{operation.method.upper()} {operation.path}")
    return tested


def test_no_server_errors_and_responses_match_the_schema(api_schema, keys):
    def check(case):  # type: ignore[no-untyped-def]
        # Items are validated per job type at the edge, against models the document cannot
        # express for a free-form `items` list: schema-valid items may rightly get a 422.
        case.call_and_validate(headers=keys["alice"], excluded_checks=[positive_data_acceptance])

    tested = for_every_operation(api_schema, 40, check)
    assert "POST /batch/jobs" in tested and "GET /batch/jobs/{job_id}/items" in tested
    assert len(tested) == 10


def test_without_a_key_nothing_but_health_answers(api_schema):
    def check(case):  # type: ignore[no-untyped-def]
        response = case.call()
        assert response.status_code < 500
        if case.operation.path.startswith("/batch/"):
            assert response.status_code == 401, (case.operation.path, response.status_code)

    for_every_operation(api_schema, 10, check)
