"""Configuration from the environment (WORKBENCH_*), with sane local defaults."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import (
    ByteSize,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from workbench.spec.models import CacheStrategy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="ignore")

    scheduler_address: str | None = Field(
        None, description="A running Dask scheduler; unset means start a local cluster."
    )
    workers: int | None = Field(None, ge=1, description="Local workers; default: one per core.")
    threads_per_worker: int = Field(1, ge=1)
    worker_memory_limit: str = Field("auto", description="Per local worker, e.g. '4GiB'.")
    home: Path = Field(Path(".workbench"), description="Local state: runs, outputs, caches.")
    connect_timeout_s: float = Field(
        10.0, gt=0, description="How long to try reaching the Dask scheduler before giving up."
    )
    # -- Dask TLS (a tls:// scheduler_address needs them; see workbench/security.py) -----------
    dask_tls_ca_file: Path | None = Field(
        None, description="CA bundle that signed the Dask scheduler's and workers' certificates."
    )
    dask_tls_cert: Path | None = Field(
        None, description="This client's certificate (PEM) for a tls:// Dask scheduler."
    )
    dask_tls_key: Path | None = Field(
        None, description="The key of dask_tls_cert; unset when the cert file holds the key too."
    )

    @field_validator("dask_tls_ca_file", "dask_tls_cert", "dask_tls_key")
    @classmethod
    def _certificate_file_exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        from workbench.security import missing_file

        if path is None:
            return None
        path = path.expanduser()
        problem = missing_file(str(info.field_name), path)
        if problem:
            raise PydanticCustomError("dask_tls_file", problem)  # no "Value error, " prefix
        return path

    @model_validator(mode="after")
    def _dask_tls_consistent(self) -> Settings:
        from workbench.security import tls_problems

        problems = tls_problems(
            self.scheduler_address, self.dask_tls_ca_file, self.dask_tls_cert, self.dask_tls_key
        )
        if problems:
            raise PydanticCustomError("dask_tls", "; ".join(problems))
        return self

    keep_results: int = Field(
        4, ge=0, description="Finished executions whose task outputs stay on the workers."
    )
    redis_url: str | None = Field(
        None,
        description="Redis for shared state and the shared cache; unset in local mode. "
        "redis://USER:PASSWORD@host:port/0 for an ACL user, rediss://...?ssl_ca_certs=... "
        "for TLS.",
        repr=False,  # it may hold a password
    )
    cache_strategy: CacheStrategy | None = Field(
        None,
        description="For tasks that set no cache_strategy: disk locally, hybrid with Redis.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: platformdirs.user_cache_path("workbench"),
        description="The disk cache and the cache ledger.",
    )
    cache_memory_bytes: ByteSize = Field(ByteSize(512 * 2**20), description="Memory tier bound.")
    cache_disk_bytes: ByteSize = Field(ByteSize(10 * 2**30), description="Disk cache bound.")
    cache_ttl_s: float = Field(7 * 24 * 3600.0, gt=0, description="Lifetime of Redis entries.")
    cache_chunk_bytes: ByteSize = Field(
        ByteSize(8 * 2**20), description="Redis payloads above this are stored in chunks."
    )
    cache_secret: SecretStr | None = Field(
        None, description="HMAC key for cache entries; every instance of a cluster needs the same."
    )
    cache_flight_lease_ms: int = Field(
        5000,
        ge=100,
        description="Lease of a single-flight claim in Redis, renewed while the task runs; "
        "after a crash, others wait at most this long before computing it themselves.",
    )
    cache_write_retry_s: float = Field(
        60.0,
        ge=0,
        description="In a cluster, how long a failed checkpoint write is retried (Redis away) "
        "before the task's completion is committed without it.",
    )
    cache_key_file: Path | None = Field(
        None, description="Where the local HMAC key lives; default: the user's config folder."
    )

    @property
    def default_cache_strategy(self) -> CacheStrategy:
        if self.cache_strategy is not None:
            return self.cache_strategy
        return CacheStrategy.HYBRID if self.redis_url else CacheStrategy.DISK

    # -- cluster mode (a Redis URL turns it on) -----------------------------------------------
    namespace: str = Field(
        "workbench", pattern=r"^[A-Za-z0-9_.-]+$", description="Redis key prefix of this cluster."
    )
    artifact_root: Path | None = Field(
        None, description="A folder every instance and worker can read (specs' data, outputs)."
    )
    capacity: int = Field(4, ge=1, description="Executions one instance runs at once.")
    lease_ms: int = Field(
        2000, ge=100, description="Leader lease; a crashed leader's is void after it."
    )
    renew_interval_ms: int = Field(500, ge=10, description="How often the leader renews its lease.")
    renew_deadline_ms: int = Field(
        1500, ge=10, description="A leader that could not renew for this long steps down."
    )
    heartbeat_interval_ms: int = Field(500, ge=10, description="How often an instance heartbeats.")
    heartbeat_ttl_ms: int = Field(
        2000,
        ge=100,
        description="An instance silent for this long is dead; its work is re-assigned.",
    )
    poll_interval_ms: int = Field(
        50, ge=5, description="How often instances look for leadership and new assignments."
    )

    @property
    def cluster_mode(self) -> bool:
        return self.redis_url is not None

    # -- events (Kafka) -------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        None,
        description="Kafka brokers, 'host:port[,host:port...]'; unset means no Kafka events.",
    )
    kafka_topic: str = Field(
        "workbench.events",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="The topic every instance publishes its events to.",
    )
    kafka_security_protocol: str = Field(
        "PLAINTEXT",
        pattern=r"^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: str | None = Field(
        None,
        pattern=r"^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$",
        description="With SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (user and password).",
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle for SSL / SASL_SSL; unset means the system's CAs."
    )
    events_queue_size: int = Field(
        10_000,
        ge=1,
        description="Events waiting for Kafka; beyond it progress is coalesced or dropped first.",
    )
    events_send_timeout_s: float = Field(
        2.0, gt=0, description="How long one batch may wait for the broker before it counts failed."
    )
    events_shutdown_timeout_s: float = Field(
        3.0, gt=0, description="Longest time closing the publisher may take, broker up or down."
    )


PROFILE_DIRS_ENV = "WORKBENCH_PROFILES"


def load_profile(profile: str | Path) -> Settings:
    """Settings from a cluster profile: a YAML file of Settings fields (`redis_url`,
    `scheduler_address`, `artifact_root`, ...), named by path or by name under `clusters/`
    (of the current folder, or of the folders in WORKBENCH_PROFILES). WORKBENCH_* environment
    variables override the file."""
    import os

    import yaml
    from pydantic import ValidationError

    from workbench.errors import ProfileError

    path = _find_profile(profile)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read cluster profile {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise ProfileError(f"cluster profile {path} must be a mapping of settings")
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ProfileError(
            f"cluster profile {path}: unknown settings {', '.join(unknown)}; "
            f"known: {', '.join(sorted(Settings.model_fields))}"
        )
    from_file = {k: v for k, v in values.items() if f"WORKBENCH_{k.upper()}" not in os.environ}
    try:
        return Settings(**from_file)
    except ValidationError as exc:
        problems = "; ".join(_describe(e["loc"], e["msg"]) for e in exc.errors())
        raise ProfileError(f"cluster profile {path}: {problems}") from None


def _describe(loc: tuple[int | str, ...], message: str) -> str:
    """One validation error; a check across fields has no location (its message names them)."""
    where = ".".join(str(p) for p in loc)
    return f"{where}: {message}" if where else message


def _find_profile(profile: str | Path) -> Path:
    import os

    from workbench.errors import ProfileError

    candidate = Path(profile).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if candidate.is_file():
            return candidate
        raise ProfileError(f"cluster profile file not found: {candidate}")
    folders = [Path.cwd() / "clusters"]
    folders += [Path(p) for p in os.environ.get(PROFILE_DIRS_ENV, "").split(os.pathsep) if p]
    for folder in folders:
        for suffix in (".yaml", ".yml"):
            found = folder / f"{profile}{suffix}"
            if found.is_file():
                return found
    searched = ", ".join(str(f) for f in folders)
    raise ProfileError(
        f"no cluster profile named {str(profile)!r} (looked in {searched}); give a path to a "
        f".yaml file or add its folder to {PROFILE_DIRS_ENV}"
    )
