"""Local services for development and CI, without Docker: Kafka from Maven Central jars and
the machine's PostgreSQL."""
