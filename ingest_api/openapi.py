"""The OpenAPI document says what an item is: the JSON body of ``POST /batch/jobs`` is a
union of one request per registered job type (plugins included), told apart by
``job_type``, each with its own item schema; an NDJSON upload's ``job_type`` parameter is one
of them, and its body's lines are those items. Generated clients and schema-driven fuzzers
can then write a valid item."""

from typing import Annotated, Any, Literal, Union

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, TypeAdapter, create_model

from ingest_api.schemas import JobRequest
from jobtypes.registry import handler_classes

NDJSON = "application/x-ndjson"
REF = "#/components/schemas/{model}"


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            describe_job_requests(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _request_of(job_type: str, input_model: type[BaseModel]) -> type[JobRequest]:
    name = "".join(part.capitalize() for part in job_type.split("_"))
    return create_model(
        f"{name}JobRequest",
        __base__=JobRequest,
        __doc__=f"A batch of {job_type} items.",
        job_type=(Literal[job_type], ...),  # type: ignore[arg-type]
        items=(list[input_model], Field(min_length=1)),  # type: ignore[valid-type]
    )


def describe_job_requests(document: dict[str, Any]) -> None:
    classes = handler_classes()
    models = [_request_of(job_type, cls.input_model) for job_type, cls in sorted(classes.items())]
    union: Any = models[0] if len(models) == 1 else Union[tuple(models)]  # noqa: UP007
    schema = TypeAdapter(Annotated[union, Field(discriminator="job_type")]).json_schema(
        ref_template=REF
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    submit = document["paths"]["/batch/jobs"]["post"]
    content = submit["requestBody"]["content"]
    content["application/json"]["schema"] = schema
    content[NDJSON]["schema"] = {
        "type": "string",
        "description": "one item per line (a JSON object: the items of the job type's "
        "request, e.g. "
        + ", ".join(f"{m.__name__}.items" for m in models)
        + "); job_type, metadata and priority as query parameters",
    }
    for parameter in submit.get("parameters", []):
        if parameter["name"] == "job_type":
            parameter["schema"] = {
                "anyOf": [{"type": "string", "enum": sorted(classes)}, {"type": "null"}],
                "title": "Job Type",
            }
