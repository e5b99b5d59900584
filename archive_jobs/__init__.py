"""The Archive Origin job types: device enrollment, proof locking and proof queries against
the device and proof registry in PostgreSQL (and a no-op one for benchmarks). Each module
defines one handler class, registered as an entry point in the
``archiveorigin_batch.handlers`` group, as a plugin's would be (``jobtypes.registry``)."""
