# The chaos scenarios use the same real services and per-session isolation as the
# integration tests.
from tests.integration.conftest import (  # noqa: F401
    database_url,
    engine,
    kafka_servers,
    kafka_settings,
    processes,
    server_url,
    stack_env,
)
