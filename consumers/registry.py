"""Job types are found through the ``archiveorigin_batch.handlers`` entry-point group: the
built-in ones are registered in this project's pyproject.toml, and any installed package can
add its own the same way."""

from functools import cache
from importlib.metadata import entry_points

from consumers.handlers.base import Handler

ENTRY_POINT_GROUP = "archiveorigin_batch.handlers"


class UnknownJobType(Exception):
    def __init__(self, job_type: str, known: list[str]):
        super().__init__(f"unknown job_type {job_type!r}; known: {', '.join(known)}")
        self.job_type = job_type
        self.known = known


class HandlerRegistrationError(Exception):
    """An entry point does not name a proper Handler class."""


@cache
def handler_classes() -> dict[str, type[Handler]]:  # type: ignore[type-arg]
    found: dict[str, type[Handler]] = {}  # type: ignore[type-arg]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Handler)):
            raise HandlerRegistrationError(f"{entry.value} is not a Handler subclass")
        if getattr(cls, "job_type", None) != entry.name:
            raise HandlerRegistrationError(
                f"entry point {entry.name!r} names {entry.value} whose job_type is "
                f"{getattr(cls, 'job_type', None)!r}"
            )
        found[entry.name] = cls
    return dict(sorted(found.items()))


def job_types() -> list[str]:
    return list(handler_classes())


def handler_class(job_type: str) -> type[Handler]:  # type: ignore[type-arg]
    classes = handler_classes()
    if job_type not in classes:
        raise UnknownJobType(job_type, list(classes))
    return classes[job_type]
