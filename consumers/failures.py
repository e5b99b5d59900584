"""The worker's error policy, in one place. What goes wrong while a worker turns a record into
an outcome is one of three things, and each is treated one way:

1. **The item's failure**: the handler's verdict on this item. ``PermanentError``: the item
   fails at once with its code. ``TransientError``, the handler's timeout, an output its
   output model refuses, or any other exception from the handler: the item is tried again
   with backoff until its attempts run out, then fails (``retried_error`` names the code).
   An input its input model refuses fails at once (``invalid_input``); a record that is not
   a valid event is dead-lettered, and its item, when it can still be named, fails
   (``malformed_event``).
2. **A dependency's outage**: ``DependencyUnavailable`` from the handler is not the item's
   fault. The item waits and tries again without spending an attempt, and the worker stops
   fetching while any item waits (``consumers.outage``). Kafka not acknowledging outcomes
   is the same for the whole worker: ``DeliveryFailed`` ends its session, which starts
   again from the committed positions (``consumers.app``), so nothing unacknowledged is lost.
3. **A bug in the worker's own code**: an exception outside the handler while reading,
   dispatching or publishing a record. The record's item fails with ``internal_error`` (the
   record is dead-lettered ``internal_error`` when it names no item), with the traceback in
   the log, and its partition moves on. A bug that cannot be settled that way (publishing
   the failure fails too, or the dispatcher itself breaks) stops the worker:
   ``WorkerBroken``, exit status 70, and its supervisor (``batchctl run``) starts it again;
   the records it had not acknowledged are delivered again. A bug never leaves a record
   unacknowledged while the worker goes on.
"""

import logging

from pydantic import ValidationError

from events.limits import UnsafeValue
from jobtypes.contract import TransientError
from jobtypes.validation import validation_message

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"
EXIT_STATUS_BROKEN = 70  # EX_SOFTWARE (sysexits.h): an internal software error


class WorkerBroken(Exception):
    """A bug the worker could not settle by failing the record's item (policy 3)."""


def retried_error(exc: Exception, timeout_s: float) -> tuple[str, str]:
    """The error code and message of an attempt that is tried again (policy 1): what the
    item fails with if it was the last."""
    if isinstance(exc, TransientError):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return "timeout", f"the handler did not finish within {timeout_s:g}s"
    if isinstance(exc, ValidationError):
        return "invalid_output", validation_message(exc)
    if isinstance(exc, UnsafeValue):
        return "invalid_output", str(exc)
    log.exception("handler raised an unexpected exception", exc_info=exc)
    return "handler_error", f"{type(exc).__name__}: {exc}"


def bug_message(exc: BaseException) -> str:
    """What an item failed by a bug (policy 3) says: the exception, not where it was."""
    return f"the worker failed on this item ({type(exc).__name__}: {exc}); see its log"
