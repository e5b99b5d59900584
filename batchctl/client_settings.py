"""Where ``batchctl``'s user commands find the API: environment first, then a config file."""

import os
from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def config_path() -> Path:
    """``BATCHCTL_CONFIG``, else ``$XDG_CONFIG_HOME/batchctl/config.toml``."""
    if explicit := os.environ.get("BATCHCTL_CONFIG"):
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "batchctl" / "config.toml"


class ClientSettings(BaseSettings):
    """Environment: ``BATCHCTL_API_URL`` (default ``http://127.0.0.1:8000``),
    ``BATCHCTL_API_KEY``, ``BATCHCTL_TIMEOUT_S``; or the same names, lower case and without
    the prefix (``api_url = ...``, ``api_key = ...``), in the config file."""

    model_config = SettingsConfigDict(env_prefix="BATCHCTL_", extra="ignore", frozen=True)

    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    timeout_s: float = 30.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return init_settings, env_settings, toml
