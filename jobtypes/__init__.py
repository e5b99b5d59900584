"""The job-type contract: what a job type is (``Handler``), how it fails, the field types the
Archive Origin job types share, how job types are found (entry points), and how an invalid
item is named. The API, the workers and plugins import it; it imports only ``events``.

A plugin writes::

    from jobtypes import Handler, ItemContext, PermanentError
"""

from jobtypes.contract import (
    DependencyUnavailable,
    Handler,
    ItemContext,
    JsonOutput,
    PermanentError,
    TransientError,
)

__all__ = [
    "DependencyUnavailable",
    "Handler",
    "ItemContext",
    "JsonOutput",
    "PermanentError",
    "TransientError",
]
