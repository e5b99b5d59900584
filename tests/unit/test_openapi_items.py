"""The OpenAPI document says what an item is: ``POST /batch/jobs`` takes a union of one
request per registered job type (the test plugins included), told apart by ``job_type``,
each with its own item schema; an independent JSON Schema validator (jsonschema-rs) holds
requests to it."""

import jsonschema_rs
import pytest

from ingest_api.app import create_app
from jobtypes.registry import job_types


@pytest.fixture(scope="module")
def document():
    return create_app().openapi()


def _submit(document):  # type: ignore[no-untyped-def]
    return document["paths"]["/batch/jobs"]["post"]


def _validator(document):  # type: ignore[no-untyped-def]
    schema = _submit(document)["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


def test_every_registered_job_type_is_one_request_of_the_union(document):
    schema = _submit(document)["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["discriminator"]["mapping"]) == set(job_types())
    assert {"scripted", "noop", "query"} <= set(job_types())  # plugins and built-ins
    scripted = document["components"]["schemas"]["ScriptedJobRequest"]
    assert scripted["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/ScriptedInput"
    }
    parameter = next(p for p in _submit(document)["parameters"] if p["name"] == "job_type")
    assert parameter["schema"]["anyOf"][0]["enum"] == sorted(job_types())


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"job_type": "scripted", "items": [{"token": "t", "sleep_ms": 5}]}, True),
        ({"job_type": "query", "items": [{"content_hash": "ab" * 32}]}, True),
        ({"job_type": "scripted", "items": [{"content_hash": "ab" * 32}]}, False),
        ({"job_type": "query", "items": [{"content_hash": "not hex"}]}, False),
        ({"job_type": "scripted", "items": []}, False),
        ({"job_type": "nothing", "items": [{"token": "t"}]}, False),
    ],
)
def test_the_document_tells_a_valid_item_from_an_invalid_one(document, body, valid):
    assert _validator(document).is_valid(body) is valid
