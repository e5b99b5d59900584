"""Job-type handlers. Each module defines one handler class registered as an entry point in
the ``archiveorigin_batch.handlers`` group."""

from consumers.handlers.base import Handler, PermanentError, TransientError

__all__ = ["Handler", "PermanentError", "TransientError"]
