"""One-pass reading of the events a hot path expects, into typed dicts.

Validating JSON into a pydantic model builds a model object and a ``UUID`` object per id;
on the hot paths (a worker's items, the projector's items and outcomes) those cost more
than the rest of the envelope. ``typed_dict_of(Model)`` is the model's fields as a typed
dict, each required and with its own constraints, except the ids, taken as canonical text
(another spelling of a valid UUID is refused here and read the long way), and the schema
version, taken strictly as the codec takes it (an integer: not ``true`` nor ``1.0``).

The limits of ``events.limits`` hold here as in the models, at less cost: a reader takes
only JSON text without a backslash (the only way a string of valid JSON can carry a
forbidden character is an escape), and checks the numbers and the depth of its JSON objects.
Text with a backslash raises ``NeedsFullCheck``.

What a typed reader refuses must be decoded again by ``events.codec.decode``, which upcasts
old versions or says exactly what is wrong; the tests hold the two to the same verdict.
"""

import functools
from collections.abc import Callable
from typing import Annotated, Any, Union
from uuid import UUID

from pydantic import AfterValidator, ConfigDict, Field, Strict, TypeAdapter
from typing_extensions import TypedDict

from events.limits import check_object, numbers_within_limits
from events.models import Event


class NeedsFullCheck(Exception):
    """JSON text with escapes: its strings are checked by the long way (the codec)."""


# A UUID as ``str(UUID(...))`` writes it.
CanonicalUuid = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


def _strictly(version: int) -> Any:
    return Annotated[int, Strict(), Field(ge=version, le=version)]


def typed_dict_of(model: type[Event], name: str | None = None, **overrides: Any) -> Any:
    """The model's fields as a typed dict (see the module), with ``overrides`` (field name:
    type) replacing some. Its JSON objects are checked by ``json_reader`` (named in its
    ``__json_objects__``), without a validator call per object."""
    fields: dict[str, Any] = {}
    objects = []
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        metadata = [m for m in field.metadata if not _is_object_check(m)]
        if len(metadata) < len(field.metadata):
            objects.append(field_name)
        fields[field_name] = Annotated[(annotation, *metadata)] if metadata else annotation
        if annotation is UUID:
            fields[field_name] = CanonicalUuid
        elif annotation == UUID | None:
            fields[field_name] = CanonicalUuid | None
    fields["schema_version"] = _strictly(model.model_fields["schema_version"].default)
    fields.update(overrides)
    typed = TypedDict(name or f"{model.__name__}Wire", fields)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    typed.__json_objects__ = tuple(o for o in objects if o not in overrides)  # type: ignore[attr-defined]
    return typed


def _is_object_check(constraint: Any) -> bool:
    return isinstance(constraint, AfterValidator) and constraint.func is check_object


def json_reader(*types: Any) -> Callable[[bytes], Any]:
    """``validate_json`` for one typed dict, or for several told apart by ``event_type``,
    of JSON text without a backslash, whose JSON objects keep the limits' numbers and depth
    (else ``NeedsFullCheck``)."""
    if len(types) == 1:
        validate = TypeAdapter(types[0]).validator.validate_json
    else:
        union = Union[types]  # type: ignore[valid-type]  # noqa: UP007
        adapter = TypeAdapter(Annotated[union, Field(discriminator="event_type")])
        validate = adapter.validator.validate_json
    objects = tuple(dict.fromkeys(o for t in types for o in t.__json_objects__))

    def read(value: bytes) -> Any:
        if b"\\" in value:
            raise NeedsFullCheck
        event = validate(value)
        for name in objects:
            found = event.get(name)
            if found is not None and not numbers_within_limits(found):
                raise NeedsFullCheck
        return event

    return read


@functools.lru_cache(maxsize=4096)
def job_uuid(text: str) -> UUID:
    """The ``UUID`` of a job id's canonical text, remembered (a job has many items)."""
    return UUID(text)
