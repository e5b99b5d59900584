"""PostgreSQL connection settings, shared by every process's own settings class."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """Environment: ``DATABASE_URL``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    database_url: str = "postgresql+psycopg2://batch:batch@127.0.0.1:5432/archiveorigin_batch"
