"""The sidecar's configuration: flags over environment (OPTISCHEMA_*) over an
optional TOML file (--config) over defaults. Connection strings may carry a
password (from the environment or the file, never from code); libpq's own
PGPASSWORD and ~/.pgpass work too. Nothing here is ever logged whole."""
from __future__ import annotations

import os
import socket
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
                               TomlConfigSettingsSource)

# The file named by --config; pydantic-settings builds sources per class, so it travels this way.
_config_file: ContextVar[Path | None] = ContextVar("optischema_config_file", default=None)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _split(value: Any, sep: str) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(sep) if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPTISCHEMA_", extra="forbid")

    # One libpq connection string or URI per monitored database. In the
    # environment: OPTISCHEMA_DSN, one per line (a DSN may contain spaces and commas).
    dsn: Annotated[list[str], NoDecode] = Field(default_factory=list)
    worker_id: str = Field(default_factory=_default_worker_id)
    concurrency: int = Field(2, ge=1, le=64, description="jobs run at once, per database")
    # Job kinds this sidecar runs (default: every kind it has a handler for).
    kinds: Annotated[list[str] | None, NoDecode] = None
    poll_interval: float = Field(5.0, gt=0, description="seconds between queue polls when no NOTIFY arrives")
    lease: float = Field(60.0, ge=2, description="seconds a claimed job stays ours without a heartbeat")
    heartbeat_interval: float = Field(10.0, gt=0, description="seconds between heartbeats (which renew leases)")
    schedule: bool = True
    schedule_tick: float = Field(30.0, gt=0, description="seconds between checks for due scheduled jobs")
    sample_interval: float = Field(10.0, ge=0, description="seconds between samples of the statements running now "
                                   "(optischema.sample_running()); 0: only at snapshots")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9187, ge=0, le=65535, description="0 turns the /metrics and /healthz server off")
    shutdown_grace: float = Field(30.0, ge=0, description="seconds a running job may finish after SIGTERM")
    connect_timeout: int = Field(10, ge=1)
    log_level: str = "INFO"
    llm_model: str | None = None

    @field_validator("dsn", mode="before")
    @classmethod
    def _dsn_lines(cls, value: Any) -> Any:
        return _split(value, "\n")

    @field_validator("kinds", mode="before")
    @classmethod
    def _kinds_list(cls, value: Any) -> Any:
        return _split(value, ",")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def load(overrides: dict[str, Any], config_file: Path | None = None) -> Settings:
    """Settings from flags (overrides), the environment and config_file."""
    if config_file is not None and not config_file.is_file():
        raise ValueError(f"config file {config_file} does not exist")
    token = _config_file.set(config_file)
    try:
        settings = Settings(**overrides)
    finally:
        _config_file.reset(token)
    if settings.lease <= 2 * settings.heartbeat_interval:
        raise ValueError(f"lease ({settings.lease}s) must be more than twice heartbeat_interval "
                         f"({settings.heartbeat_interval}s): heartbeats renew leases")
    return settings
