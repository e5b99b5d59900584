"""Deprecated alias of ``jobtypes.contract`` (kept one release): import from ``jobtypes``."""

import warnings

from jobtypes.contract import (
    DependencyUnavailable,
    Handler,
    ItemContext,
    JsonOutput,
    PermanentError,
    TransientError,
)

warnings.warn(
    "consumers.handlers.base is deprecated; import the job-type contract from jobtypes",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "DependencyUnavailable",
    "Handler",
    "ItemContext",
    "JsonOutput",
    "PermanentError",
    "TransientError",
]
