"""Deprecated alias of ``jobtypes.contract`` (kept one release): import from ``jobtypes``."""

import warnings

from jobtypes import *  # noqa: F403
from jobtypes import __all__  # noqa: F401

warnings.warn(
    "consumers.handlers.base is deprecated; import the job-type contract from jobtypes",
    DeprecationWarning,
    stacklevel=2,
)
