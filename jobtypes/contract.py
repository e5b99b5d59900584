"""The handler contract every job type implements.

Delivery to a handler is at-least-once: a worker that crashes after calling ``handle`` but
before its outcome is acknowledged calls it again for the same item. Handlers must therefore
be idempotent: handling the same item twice must give the same outcome and no extra effect.
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar
from uuid import UUID

from pydantic import BaseModel

from events.ids import job_id_text

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class ItemContext(NamedTuple):
    """Which item is being handled: ``(job_id, item_index)`` names it across redeliveries,
    so a handler can recognise its own earlier effects; ``attempt`` counts from 1.
    (Immutable; a tuple because one is made per attempt, and a tuple is the cheapest
    immutable record to make.)"""

    job_id: UUID
    item_index: int
    attempt: int = 1


class JsonOutput(dict[str, Any]):
    """An output already in the form the outcome event carries: what
    ``output_model.model_dump(mode="json")`` gives, except that datetimes may stay datetimes
    (the encoder writes them as the model does). The worker sends it without validating it,
    saving a model per item on a hot path; so it is for outputs built from values the handler
    trusts (rows typed by the database), and a test must hold it to the output model."""


class PermanentError(Exception):
    """The item can never succeed: it fails at once with this code, without retries."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class TransientError(Exception):
    """The item may succeed later: it is retried with backoff until attempts run out."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class DependencyUnavailable(Exception):
    """A dependency the handler needs (a database, a service) does not answer: not the item's
    fault. The worker stops fetching and tries the item again, with capped backoff and
    jitter, until the dependency answers; the item's attempts are not spent."""

    def __init__(self, dependency: str, message: str):
        super().__init__(f"{dependency} is unavailable: {message}")
        self.dependency = dependency
        self.message = message


class Handler(ABC, Generic[In, Out]):
    """A job type: its name, input and output models, routing key, timeout and logic."""

    job_type: ClassVar[str]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]
    timeout_s: ClassVar[float] = 30.0
    # Whether a call's first step (up to its first real wait) may run inline in the
    # worker's dispatching task; see ``handle``.
    inline_start: ClassVar[bool] = True

    def routing_key(self, item: In, *, job_id: UUID, item_index: int) -> str:
        """Items with the same key are processed in order; others run concurrently.
        By default every item is independent."""
        return default_routing_key(job_id_text(job_id), item_index)

    @classmethod
    def keys_by_item(cls) -> bool:
        """Whether ``routing_key`` looks at the item; if not, the default keys (every item
        independent) follow from the job and the index alone: ``default_routing_keys``."""
        return cls.routing_key is not Handler.routing_key

    def routing_keys(self, items: Sequence[In], *, job_id: UUID, start: int) -> list[str]:
        """``routing_key`` of consecutive items numbered from ``start`` (the API's path)."""
        if not self.keys_by_item():
            return default_routing_keys(job_id_text(job_id), start, len(items))
        key = self.routing_key
        return [key(item, job_id=job_id, item_index=i) for i, item in enumerate(items, start)]

    async def start(self) -> None:
        """Acquire resources (connections, pools) before the first item."""

    async def stop(self) -> None:
        """Release what ``start`` acquired."""

    @abstractmethod
    async def handle(self, item: In, context: ItemContext) -> Out | JsonOutput:
        """Process one item. Raise PermanentError or TransientError to fail it, and
        DependencyUnavailable when what it needs does not answer.

        Where a call runs:

        - **Context variables**: each call runs every step in a ``contextvars`` context of
          its own, copied from the worker's: what it sets is seen by the rest of the call
          (and by tasks it starts), never by the worker or by another item's call.
        - **Task**: with ``inline_start`` (the default), the call's first step, up to its
          first ``await`` that really waits, runs inline in the worker's task that
          dispatches the item, so that a handler that never waits costs no task; a
          runner task of the worker carries it on from there to its end, running no other
          item meanwhile. Before that first wait ``asyncio.current_task()`` is the
          dispatching task, and an ``asyncio.timeout()`` (or a ``TaskGroup``) entered there
          and still open across a wait would cancel that task, not this call: enter them
          after a first wait, or set ``inline_start = False``, which runs the whole call in
          a runner task. A retry's call always runs wholly in a runner task.
        - **Timeout**: the worker enforces ``timeout_s`` on each call itself.
        """


def default_routing_key(job_id: str, item_index: int) -> str:
    """``Handler.routing_key``'s default: the item's own key, ``job_id:index`` (``job_id`` is
    the job id's text)."""
    return f"{job_id}:{item_index}"


def default_routing_keys(job_id: str, start: int, count: int) -> list[str]:
    """``default_routing_key`` of ``count`` items numbered from ``start``."""
    return [default_routing_key(job_id, index) for index in range(start, start + count)]
