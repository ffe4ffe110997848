"""Security settings end to end: a TLS Dask scheduler reached with the certificates a profile
names, Redis with an ACL user (plain and over TLS) for the state store, leader election, the
shared cache and HPO studies; and the clear errors when certificates or credentials are wrong.

Certificates are generated per test session (tests/support/tls_certs.py, `cryptography`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_local_execution import probe, workflow
from tests.support.redis_server import RedisServer, RedisTls
from tests.support.tls_certs import CertFiles, write_certs
from workbench.cache.redis_backend import RedisBackend
from workbench.config import Settings, load_profile
from workbench.coordination.election import RedisLeaderElection
from workbench.dag.states import WorkflowStatus
from workbench.errors import CacheError, ClusterUnavailableError, ProfileError
from workbench.orchestrator.instance import connect_store
from workbench.orchestrator.orchestrator import DistributedOrchestrator
from workbench.security import DaskTlsError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

USER, PASSWORD = "alice", "s3cret-Pw"
ACL_RULE = f"{USER} on >{PASSWORD} ~* &* +@all"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return write_certs(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_scheduler(certs: CertFiles) -> Iterator[str]:
    """A Dask scheduler and one worker process that only speak TLS (mutual: they require the
    client's certificate too); yields the tls:// address."""
    from distributed import LocalCluster
    from distributed.security import Security

    pem = {"cert": str(certs.cert), "key": str(certs.key)}
    server = Security(
        tls_ca_file=str(certs.ca_file),
        tls_scheduler_cert=pem["cert"],
        tls_scheduler_key=pem["key"],
        tls_worker_cert=pem["cert"],
        tls_worker_key=pem["key"],
        tls_client_cert=pem["cert"],
        tls_client_key=pem["key"],
        require_encryption=True,
    )
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=True,
        protocol="tls",
        security=server,
        host="127.0.0.1",
        dashboard_address=":0",  # a free port: never collide with another cluster
    ) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        yield cluster.scheduler_address


def tls_profile(path: Path, address: str, certs: CertFiles | None, **more: Any) -> Path:
    values: dict[str, Any] = {
        "scheduler_address": address,
        "connect_timeout_s": 5,
        "home": str(path.parent / "home"),
        "cache_dir": str(path.parent / "cache"),
        **more,
    }
    if certs is not None:
        values |= {
            "dask_tls_ca_file": str(certs.ca_file),
            "dask_tls_cert": str(certs.cert),
            "dask_tls_key": str(certs.key),
        }
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def small_flow(ledger: Path, workflow_id: str) -> dict[str, Any]:
    spec = workflow(
        probe("a", ledger, sleep_s=0.05, value=1.0),
        probe("b", ledger, ["a"], sleep_s=0.05, value=10.0),
    )
    return {**spec, "workflow_id": workflow_id}


async def run_flow(orchestrator: DistributedOrchestrator, spec: dict[str, Any]) -> Any:
    async with orchestrator:
        execution_id = await orchestrator.submit_ml_workflow(spec)
        execution = await orchestrator.wait_for_execution(execution_id, timeout=60)
        output = (await orchestrator.fetch_result(execution_id, "b")).output
        return execution, output, orchestrator.executor.scheduler_address


# -- Dask TLS --------------------------------------------------------------------------------------
def test_workflow_runs_on_a_tls_scheduler_with_the_profiles_certificates(
    tmp_path: Path, tls_scheduler: str, certs: CertFiles
) -> None:
    settings = load_profile(tls_profile(tmp_path / "secure.yaml", tls_scheduler, certs))
    orchestrator = DistributedOrchestrator("tls", settings=settings)
    execution, output, address = asyncio.run(
        run_flow(orchestrator, small_flow(tmp_path / "l.jsonl", "tls_flow"))
    )
    assert execution.status is WorkflowStatus.SUCCEEDED
    assert output == 11.0
    assert address == tls_scheduler


def test_status_probe_uses_the_certificates(tls_scheduler: str, certs: CertFiles) -> None:
    from workbench.client.overview import ServiceState, scheduler_workers

    settings = Settings(
        scheduler_address=tls_scheduler,
        dask_tls_ca_file=certs.ca_file,
        dask_tls_cert=certs.cert,
        dask_tls_key=certs.key,
    )
    rows, health = scheduler_workers(tls_scheduler, settings)
    assert health.state is ServiceState.OK and len(rows) == 1

    rows, health = scheduler_workers(tls_scheduler)  # no settings: no certificates
    assert health.state is ServiceState.DOWN and rows == []
    assert "dask_tls_ca_file" in health.detail


def test_tls_address_without_certificates_is_refused_when_the_profile_loads(
    tmp_path: Path, tls_scheduler: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(tls_profile(tmp_path / "bare.yaml", tls_scheduler, None))
    message = str(caught.value)
    assert "TLS address but no certificates" in message
    assert "dask_tls_ca_file" in message and "WORKBENCH_DASK_TLS_CERT" in message


def test_tls_address_without_certificates_fails_fast_at_connect(
    tmp_path: Path, tls_scheduler: str
) -> None:
    """Settings copied with model_copy skip validation: the connection checks again."""
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache").model_copy(
        update={"scheduler_address": tls_scheduler}
    )
    started = time.monotonic()
    with pytest.raises(DaskTlsError, match="dask_tls_ca_file"):
        asyncio.run(DistributedOrchestrator("bare", settings=settings).start())
    assert time.monotonic() - started < 5


def test_certificates_of_another_ca_are_a_bounded_clear_error(
    tmp_path: Path, tls_scheduler: str
) -> None:
    strangers = write_certs(tmp_path / "other", name="stranger")
    settings = load_profile(tls_profile(tmp_path / "other.yaml", tls_scheduler, strangers))
    settings = settings.model_copy(update={"connect_timeout_s": 3.0})
    started = time.monotonic()
    with pytest.raises(ConnectionError) as caught:
        asyncio.run(DistributedOrchestrator("stranger", settings=settings).start())
    took = time.monotonic() - started
    assert took < 3.0 + 10, f"gave up after {took:.1f} s"
    assert tls_scheduler in str(caught.value) and "dask_tls_ca_file" in str(caught.value)


# -- Redis with an ACL user ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    with RedisServer(password="default-pw", acl_users=[ACL_RULE]) as server:
        yield server


def redis_settings(tmp_path: Path, url: str, **more: Any) -> Settings:
    return Settings(
        redis_url=url,
        namespace=f"sec{time.monotonic_ns()}",
        home=tmp_path / "home",
        cache_dir=tmp_path / "cache",
        artifact_root=tmp_path / "shared",
        **more,
    )


def check_redis_uses(settings: Settings) -> None:
    """State store, leader election, the Redis cache tier and an HPO study on `settings`."""
    import optuna

    from workbench.cache.result_cache import ResultCache
    from workbench.hpo.storage import study_storage
    from workbench.hpo.studies import study_names

    client, store = connect_store(settings)
    try:
        assert store.instances() == []
        election = RedisLeaderElection(client, "i1", namespace=settings.namespace)
        token = election.try_acquire()
        assert token is not None and election.holder() == ("i1", token)
    finally:
        client.close()

    cache = ResultCache(settings)
    try:
        assert settings.redis_url is not None
        redis_tier = cache._redis_tier()
        redis_tier.put("k" * 64, b"payload")
        assert redis_tier.get("k" * 64) == b"payload"
    finally:
        cache.close()

    name = f"study-{settings.namespace}"
    study = optuna.create_study(study_name=name, storage=study_storage(settings, name))
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    assert name in study_names(settings)


def test_redis_acl_user_in_the_url_reaches_every_redis_use(
    tmp_path: Path, acl_redis: RedisServer
) -> None:
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{acl_redis.port}/0"
    check_redis_uses(redis_settings(tmp_path, url))


def test_cluster_member_with_acl_redis_and_tls_dask_runs_a_workflow(
    tmp_path: Path, acl_redis: RedisServer, tls_scheduler: str, certs: CertFiles
) -> None:
    """The whole secure profile: leader election, state store and the hybrid cache on the ACL
    user's Redis, tasks on the TLS scheduler."""
    url = f"redis://{USER}:{PASSWORD}@127.0.0.1:{acl_redis.port}/0"
    profile = tls_profile(
        tmp_path / "secure.yaml",
        tls_scheduler,
        certs,
        redis_url=url,
        namespace=f"secure{time.monotonic_ns()}",
        artifact_root=str(tmp_path / "shared"),
        cache_secret="shared-cache-secret",
    )
    settings = load_profile(profile)
    assert PASSWORD not in repr(settings)
    execution, output, _ = asyncio.run(
        run_flow(DistributedOrchestrator("i1", settings=settings), small_flow(tmp_path / "l", "f"))
    )
    assert execution.status is WorkflowStatus.SUCCEEDED
    assert output == 11.0


def test_wrong_redis_password_is_an_authentication_error_with_the_url_masked(
    tmp_path: Path, acl_redis: RedisServer
) -> None:
    url = f"redis://{USER}:not-the-password@127.0.0.1:{acl_redis.port}/0"
    settings = redis_settings(tmp_path, url)
    with pytest.raises(ClusterUnavailableError) as store_error:
        connect_store(settings)
    with pytest.raises(CacheError) as cache_error:
        RedisBackend(url)
    for error in (store_error.value, cache_error.value):
        message = str(error)
        assert "authentication" in message and "redis://USER:PASSWORD@" in message
        assert "not-the-password" not in message
        assert f"redis://{USER}:***@127.0.0.1:{acl_redis.port}/0" in message


# -- Redis over TLS ------------------------------------------------------------------------------
def test_rediss_url_with_ca_in_the_query_reaches_every_redis_use(
    tmp_path: Path, certs: CertFiles
) -> None:
    tls = RedisTls(ca_file=certs.ca_file, cert=certs.cert, key=certs.key)
    with RedisServer(acl_users=[ACL_RULE], tls=tls) as server:
        url = (
            f"rediss://{USER}:{PASSWORD}@127.0.0.1:{server.tls_port}/0"
            f"?ssl_ca_certs={certs.ca_file}&ssl_cert_reqs=required"
        )
        check_redis_uses(redis_settings(tmp_path, url))
