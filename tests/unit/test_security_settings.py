"""The security settings: Dask TLS validation messages (each names the setting to fix), the
Security object the Dask client gets, Redis URLs kept out of reprs, and Kafka SASL/TLS options
reaching aiokafka's constructors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from workbench.config import Settings, load_profile
from workbench.errors import ProfileError, WorkbenchError
from workbench.security import DaskTlsError, client_security

TLS_ADDRESS = "tls://scheduler.example:8786"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.support.tls_certs import write_certs  # cryptography: a dev dependency

    return write_certs(tmp_path_factory.mktemp("tls"))


def tls(certs: Any, **more: Any) -> dict[str, Any]:
    return {
        "scheduler_address": TLS_ADDRESS,
        "dask_tls_ca_file": certs.ca_file,
        "dask_tls_cert": certs.cert,
        "dask_tls_key": certs.key,
        **more,
    }


def problem(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)
    return " ".join(e["msg"] for e in caught.value.errors())


def profile_problem(tmp_path: Path, **values: Any) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({k: str(v) for k, v in values.items()}), encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    return str(caught.value)


# -- load-time validation ------------------------------------------------------------------------
def test_tls_address_without_certificates_names_the_settings_and_how_to_set_them() -> None:
    message = problem(scheduler_address=TLS_ADDRESS)
    assert f"scheduler_address {TLS_ADDRESS} is a TLS address but no certificates" in message
    for name in ("dask_tls_ca_file", "dask_tls_cert", "WORKBENCH_DASK_TLS_CA_FILE"):
        assert name in message


def test_profile_error_has_the_message_without_pydantic_noise(tmp_path: Path) -> None:
    message = profile_problem(tmp_path, scheduler_address=TLS_ADDRESS)
    assert f"profile.yaml: scheduler_address {TLS_ADDRESS}" in message
    assert "Value error" not in message


def test_missing_certificate_file_names_the_field_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "client.pem"
    message = profile_problem(tmp_path, dask_tls_cert=missing)
    assert f"dask_tls_cert: no such file {missing}" in message
    assert "WORKBENCH_DASK_TLS_CERT" in message


def test_certificate_without_ca_asks_for_the_ca(certs: Any) -> None:
    message = problem(scheduler_address=TLS_ADDRESS, dask_tls_cert=certs.cert)
    assert "dask_tls_cert given without dask_tls_ca_file" in message
    assert "WORKBENCH_DASK_TLS_CA_FILE" in message


def test_certificates_with_a_plain_tcp_address_are_refused(certs: Any) -> None:
    message = problem(**tls(certs, scheduler_address="tcp://scheduler.example:8786"))
    assert "not encrypted" in message and "tls://host:port" in message


def test_certificates_without_scheduler_address_are_allowed(certs: Any) -> None:
    """A local cluster ignores them; a profile may set the address from the environment."""
    assert Settings(**tls(certs, scheduler_address=None)).dask_tls_cert == certs.cert


def test_key_not_matching_the_certificate_is_refused(certs: Any, tmp_path: Path) -> None:
    from tests.support.tls_certs import write_certs

    other = write_certs(tmp_path, name="other")
    message = problem(**tls(certs, dask_tls_key=other.key))
    assert "dask_tls_cert / dask_tls_key: cannot load" in message and str(other.key) in message


def test_certificate_without_key_asks_for_the_key(certs: Any) -> None:
    message = problem(**tls(certs, dask_tls_key=None))
    assert "set dask_tls_key if the key is in its own file" in message


def test_a_cert_file_holding_the_key_needs_no_key_setting(certs: Any, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
    settings = Settings(**tls(certs, dask_tls_cert=both, dask_tls_key=None))
    assert client_security(settings, TLS_ADDRESS).tls_client_key is None


def test_a_ca_file_that_is_no_certificate_is_refused(certs: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    assert "dask_tls_ca_file: cannot load" in problem(**tls(certs, dask_tls_ca_file=junk))


def test_settings_from_the_environment(certs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in tls(certs).items():
        monkeypatch.setenv(f"WORKBENCH_{name.upper()}", str(value))
    settings = Settings()
    assert (settings.dask_tls_ca_file, settings.dask_tls_key) == (certs.ca_file, certs.key)


def test_home_folder_in_paths_is_expanded(certs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(certs.ca_file.parent))
    settings = Settings(**tls(certs, dask_tls_ca_file=Path("~") / certs.ca_file.name))
    assert settings.dask_tls_ca_file == certs.ca_file


# -- the Security the Dask client gets -----------------------------------------------------------
def test_client_security_carries_the_files_and_requires_encryption(certs: Any) -> None:
    security = client_security(Settings(**tls(certs)), TLS_ADDRESS)
    assert security.require_encryption is True
    assert (security.tls_ca_file, security.tls_client_cert, security.tls_client_key) == (
        str(certs.ca_file),
        str(certs.cert),
        str(certs.key),
    )


def test_plain_scheduler_without_certificates_gets_no_security() -> None:
    assert client_security(Settings(), "tcp://127.0.0.1:8786") is None


def test_connect_time_checks_catch_what_load_time_could_not(certs: Any, tmp_path: Path) -> None:
    unvalidated = Settings().model_copy(update={"scheduler_address": TLS_ADDRESS})
    with pytest.raises(DaskTlsError, match="no certificates are configured") as caught:
        client_security(unvalidated, TLS_ADDRESS)
    assert isinstance(caught.value, WorkbenchError) and caught.value.exit_code == 2

    moved = tmp_path / "ca.pem"
    moved.write_bytes(certs.ca_file.read_bytes())
    settings = Settings(**tls(certs, dask_tls_ca_file=moved))
    moved.unlink()  # gone between loading the profile and connecting
    with pytest.raises(DaskTlsError, match=f"dask_tls_ca_file: no such file {moved}"):
        client_security(settings, TLS_ADDRESS)


def test_the_executor_hands_the_security_to_the_dask_client(
    certs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import distributed

    from workbench.execution.dask_executor import DaskExecutor

    seen: dict[str, Any] = {}

    class FakeClient:
        def subscribe_topic(self, topic: str, handler: Any) -> None:
            pass

    async def connected() -> FakeClient:
        return FakeClient()

    def fake_client(address: str, **kwargs: Any) -> Any:
        seen.update(kwargs, address=address)
        return connected()

    monkeypatch.setattr(distributed, "Client", fake_client)
    asyncio.run(DaskExecutor(Settings(**tls(certs))).start())
    assert seen["address"] == TLS_ADDRESS
    assert seen["security"].tls_client_cert == str(certs.cert)


# -- Redis URLs ----------------------------------------------------------------------------------
def test_redis_url_with_a_password_stays_out_of_reprs() -> None:
    from workbench.registry.address import RegistryAddress

    settings = Settings(redis_url="redis://alice:s3cret@redis.example:6379/0")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in repr(RegistryAddress.from_settings(settings))


def test_mask_url_hides_user_passwords_and_keeps_tls_options() -> None:
    from workbench.cache.redis_backend import mask_url

    url = "rediss://alice:s3cret@redis.example:6380/0?ssl_ca_certs=/etc/ca.pem"
    assert mask_url(url) == "rediss://alice:***@redis.example:6380/0?ssl_ca_certs=%2Fetc%2Fca.pem"


# -- Kafka SASL / TLS ----------------------------------------------------------------------------
def kafka_settings() -> Settings:
    return Settings(
        kafka_bootstrap_servers="broker.example:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc",
        kafka_sasl_password="kafka-s3cret",
    )


def assert_sasl(kwargs: dict[str, Any]) -> None:
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", "kafka-s3cret")
    assert kwargs["ssl_context"] is not None


class Refused(Exception):
    pass


def test_sasl_options_reach_the_producer_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    from workbench.events.kafka import KafkaPublisher

    seen: list[dict[str, Any]] = []

    class FakeProducer:
        def __init__(self, **kwargs: Any) -> None:
            seen.append(kwargs)

        async def start(self) -> None:
            raise Refused("no broker in a unit test")

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)

    async def attempt() -> None:
        publisher = KafkaPublisher(kafka_settings())
        assert await publisher.start() is False
        await publisher.close()

    asyncio.run(attempt())
    assert_sasl(seen[0])


def test_sasl_options_reach_the_consumer_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    from workbench.events.kafka_source import KafkaSource

    seen: list[dict[str, Any]] = []

    class FakeConsumer:
        def __init__(self, *topics: str, **kwargs: Any) -> None:
            seen.append(kwargs)

        async def start(self) -> None:
            raise Refused("no broker in a unit test")

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", FakeConsumer)
    with pytest.raises(Exception):  # noqa: B017 - whatever open() makes of the refusal
        asyncio.run(KafkaSource(kafka_settings()).open())
    assert_sasl(seen[0])
