"""Deprecated: the job-type contract is ``jobtypes`` now, the built-in job types
``archive_jobs``. ``consumers.handlers.base`` stays one release for plugins written
against it."""
