"""JSON Schema documents for direct publishers, from the same pydantic models the services
use: one per event type, and one per job type for the ``input`` of its ``ItemSubmitted``."""

from typing import Any

from pydantic import BaseModel

from events.models import EVENT_CLASSES, NOTIFICATION_CLASSES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _document(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, **schema, "title": title, "description": description}


def event_schemas() -> dict[str, dict[str, Any]]:
    documents = {}
    for name, cls in {**EVENT_CLASSES, **NOTIFICATION_CLASSES}.items():
        document = _document(cls, name, (cls.__doc__ or name).strip())
        # defaults in the models, but a publisher must send them: they say what the event is
        required = document.setdefault("required", [])
        required[:0] = [f for f in ("event_type", "schema_version") if f not in required]
        documents[name] = document
    return documents


def input_schemas(inputs: dict[str, type[BaseModel]]) -> dict[str, dict[str, Any]]:
    """``inputs``: job type → its handler's input model."""
    return {
        job_type: _document(
            model, f"{job_type} item input", f"`ItemSubmitted.input` for job type {job_type}"
        )
        for job_type, model in inputs.items()
    }
