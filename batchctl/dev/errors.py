class DevServiceError(Exception):
    """A local service could not be installed, started or reached; the message says why."""
