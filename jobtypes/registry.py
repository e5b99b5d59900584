"""Job types are found through the ``archiveorigin_batch.handlers`` entry-point group: the
built-in ones are registered in this project's pyproject.toml, and any installed package can
add its own the same way. ``BATCH_EXTRA_HANDLERS`` (comma-separated ``module:Class``) adds
handlers that are importable but not installed as entry points: the no-op benchmark handler,
test handlers, a handler being developed."""

import importlib
import os
from functools import cache
from importlib.metadata import entry_points

from jobtypes.contract import Handler

ENTRY_POINT_GROUP = "archiveorigin_batch.handlers"


class UnknownJobType(Exception):
    def __init__(self, job_type: str, known: list[str]):
        super().__init__(f"unknown job_type {job_type!r}; known: {', '.join(known)}")
        self.job_type = job_type
        self.known = known


class HandlerRegistrationError(Exception):
    """An entry point does not name a proper Handler class."""


def _checked(cls: object, name: str, where: str) -> type[Handler]:
    if not (isinstance(cls, type) and issubclass(cls, Handler)):
        raise HandlerRegistrationError(f"{where} is not a Handler subclass")
    if getattr(cls, "job_type", None) != name:
        raise HandlerRegistrationError(
            f"{where} is registered as {name!r} but its job_type is "
            f"{getattr(cls, 'job_type', None)!r}"
        )
    return cls


@cache
def handler_classes() -> dict[str, type[Handler]]:
    found: dict[str, type[Handler]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = _checked(entry.load(), entry.name, entry.value)
    for spec in filter(None, os.environ.get("BATCH_EXTRA_HANDLERS", "").split(",")):
        module, _, attr = spec.strip().partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise HandlerRegistrationError(f"BATCH_EXTRA_HANDLERS: {spec}: {exc}") from None
        found[cls.job_type] = _checked(cls, getattr(cls, "job_type", "?"), spec)
    return dict(sorted(found.items()))


def job_types() -> list[str]:
    return list(handler_classes())


def handler_class(job_type: str) -> type[Handler]:
    classes = handler_classes()
    if job_type not in classes:
        raise UnknownJobType(job_type, list(classes))
    return classes[job_type]
