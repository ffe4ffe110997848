"""Configuration from the environment (WORKBENCH_*), with sane local defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="ignore")

    scheduler_address: str | None = Field(
        None, description="A running Dask scheduler; unset means start a local cluster."
    )
    workers: int | None = Field(None, ge=1, description="Local workers; default: one per core.")
    threads_per_worker: int = Field(1, ge=1)
    worker_memory_limit: str = Field("auto", description="Per local worker, e.g. '4GiB'.")
    home: Path = Field(Path(".workbench"), description="Local state: runs, outputs, caches.")
    keep_results: int = Field(
        4, ge=0, description="Finished executions whose task outputs stay on the workers."
    )
