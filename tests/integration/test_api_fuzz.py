"""Property-based fuzzing of the API from its own OpenAPI document (schemathesis), on the
real services: no request, however odd, gets a 5xx, and every response — status code,
content type, headers, body — is one the document declares.

(Hypothesis drives each operation's strategy directly: schemathesis' pytest fixture loader
does not work with this pytest version.)"""

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
        # Items are validated per job type at the edge, by models whose every rule the
        # document cannot express (a query item names exactly one of three keys; a
        # signature decodes to 64 bytes): schema-valid items may rightly get a 422.
        case.call_and_validate(headers=keys["alice"], excluded_checks=[positive_data_acceptance])

    tested = for_every_operation(api_schema, 40, check)
    assert "POST /batch/jobs" in tested and "GET /batch/jobs/{job_id}/items" in tested
    assert len(tested) == 17  # the console's pages are not in the document


def test_without_a_key_nothing_but_health_answers(api_schema):
    def check(case):  # type: ignore[no-untyped-def]
        response = case.call()
        assert response.status_code < 500
        if case.operation.path.startswith("/batch/"):
            assert response.status_code == 401, (case.operation.path, response.status_code)

    for_every_operation(api_schema, 10, check)


# What schemathesis' own generators do not send: NUL and other control characters, lone
# surrogates, NaN and infinities, integers past 64 bits, in any field of any request.
HOSTILE_TEXTS = ["\x00", "a\x00b", "\x1b[2J", "\x07", "\ud800", "\ufffe"]
HOSTILE_NUMBERS: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    2**64,
    -(2**63) - 1,
    10**400,
]
PARAM_TEXTS = ["\x00", "a\x00b", "\x1b[2J", "NaN", "9" * 40, "-1", "1e999"]


class Hostile:
    """Draws hostile replacements for a case's values, remembering whether it made one."""

    def __init__(self, data: st.DataObject):
        self.data = data
        self.injected = False

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.key(k): self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.replace(value, HOSTILE_TEXTS)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.replace(value, HOSTILE_NUMBERS)
        return value

    def key(self, key: str) -> str:
        return self.replace(key, ["k\x00", "\x1b"])

    def replace(self, value: Any, hostile: list[Any]) -> Any:
        if not self.data.draw(st.booleans()):
            return value
        self.injected = True
        return self.data.draw(st.sampled_from(hostile))


@pytest.fixture(scope="module")
def fuzzed_app(api_settings, api_schema):
    """The schema's cases, sent by a client of an app of its own (schemathesis runs the
    schema's app on event loops of its own: an app's Kafka producer belongs to one)."""
    settings = api_settings.model_copy(
        update={"api_rate_limit_per_s": 1e6, "api_rate_limit_burst": 10**6}
    )
    with TestClient(create_app(settings)) as client:
        yield api_schema, client


def test_hostile_values_in_any_field_get_no_server_error_and_are_never_accepted(fuzzed_app, keys):
    schema, client = fuzzed_app
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), data=st.data())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case, data):  # type: ignore[no-untyped-def]
            hostile = Hostile(data)
            for name, value in (case.path_parameters or {}).items():
                replaced = hostile.replace(value, PARAM_TEXTS)
                case.path_parameters[name] = (
                    quote(replaced, safe="") if replaced != value else value
                )
            kwargs = case.as_transport_kwargs()
            params = {k: hostile.replace(v, PARAM_TEXTS) for k, v in kwargs["params"].items()}
            headers = {**kwargs["headers"], **keys["alice"]}
            body = None
            if "json" in kwargs:  # written as a careless client writes it: NaN, escapes
                body = json.dumps(hostile(kwargs["json"])).encode()
            response = client.request(
                kwargs["method"], kwargs["url"], params=params, headers=headers, content=body
            )
            assert response.status_code < 500, (kwargs["method"], kwargs["url"], response.text)
            if hostile.injected and case.operation.method.upper() == "POST":
                assert response.status_code != 202, (kwargs["url"], body)

        run()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /batch/jobs" in tested and len(tested) == 17
