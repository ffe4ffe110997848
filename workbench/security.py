"""TLS for the connections Workbench opens to a Dask scheduler.

The certificates come from the settings (`dask_tls_ca_file`, `dask_tls_cert`, `dask_tls_key`);
`client_security` turns them into the `distributed.security.Security` every Dask Client that
Workbench connects to a scheduler is given. The same checks run when the settings load (as
pydantic validators, see `Settings`) and again just before connecting, since settings copied
with `model_copy(update=...)` skip validation and files may go away in between.

Redis and Kafka need nothing here: Redis credentials and TLS travel in `redis_url`
(`redis://USER:PASSWORD@host:port/0`, `rediss://...?ssl_ca_certs=...`), Kafka's in the
`kafka_security_protocol` / `kafka_sasl_*` / `kafka_ssl_cafile` settings.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.config import Settings

TLS_SCHEME = "tls://"


class DaskTlsError(WorkbenchError):
    """The Dask TLS settings cannot work: missing, unreadable, or not matching the address."""

    exit_code = 2


def how_to_set(field: str) -> str:
    return f"{field} in the profile or WORKBENCH_{field.upper()}"


def missing_file(field: str, path: Path) -> str | None:
    """The problem with one certificate setting (without the field's name in front: pydantic
    puts it there), or None when it names a file."""
    if path.is_file():
        return None
    return f"no such file {path} (fix {how_to_set(field)})"


def tls_problems(
    scheduler_address: str | None,
    ca_file: Path | None,
    cert: Path | None,
    key: Path | None,
) -> list[str]:
    """What stops the Dask TLS settings from working, each naming its setting; [] if none."""
    named = {"dask_tls_ca_file": ca_file, "dask_tls_cert": cert, "dask_tls_key": key}
    configured = {field: path for field, path in named.items() if path is not None}
    wants_tls = scheduler_address is not None and scheduler_address.startswith(TLS_SCHEME)
    problems = [f"{f}: {p}" for f, path in configured.items() if (p := missing_file(f, path))]
    if problems:
        return problems
    if not configured:
        if wants_tls:
            return [
                f"scheduler_address {scheduler_address} is a TLS address but no certificates "
                "are configured: set dask_tls_ca_file (the cluster's CA) and dask_tls_cert "
                "(plus dask_tls_key unless the cert file holds the key), in the profile or as "
                "WORKBENCH_DASK_TLS_CA_FILE / WORKBENCH_DASK_TLS_CERT / WORKBENCH_DASK_TLS_KEY"
            ]
        return []
    needed = [f for f in ("dask_tls_ca_file", "dask_tls_cert") if named[f] is None]
    if needed:
        given = ", ".join(configured)
        return [
            f"{given} given without {' and '.join(needed)}: Dask TLS needs the CA and a client "
            f"certificate; set {'; '.join(how_to_set(f) for f in needed)}"
        ]
    if scheduler_address is not None and not wants_tls:
        return [
            f"dask_tls_* certificates are set but scheduler_address {scheduler_address} is not "
            f"encrypted: use {TLS_SCHEME}host:port (a scheduler started with --tls-ca-file, "
            "--tls-cert, --tls-key), or remove the dask_tls_* settings"
        ]
    assert ca_file is not None and cert is not None
    problem = _load_problem(ca_file, cert, key)
    return [problem] if problem else []


def _load_problem(ca_file: Path, cert: Path, key: Path | None) -> str | None:
    """Whether the CA bundle and the certificate/key pair load (a key not matching the
    certificate, a PEM that is no certificate, ...), as the TLS handshake will need them."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    except (ssl.SSLError, OSError) as exc:
        return f"dask_tls_ca_file: cannot load {ca_file} as a CA bundle ({exc})"
    try:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    except (ssl.SSLError, OSError) as exc:
        pair = f"{cert}" if key is None else f"{cert} with the key {key}"
        hint = "" if key is not None else "; set dask_tls_key if the key is in its own file"
        return f"dask_tls_cert / dask_tls_key: cannot load {pair} ({exc}){hint}"
    return None


def client_security(settings: Settings, address: str) -> Any:
    """The `distributed.security.Security` for a Client connecting to `address`, or None for a
    plain tcp:// scheduler without certificates configured. DaskTlsError (naming the setting to
    fix) when the settings cannot work for that address."""
    ca_file, cert, key = settings.dask_tls_ca_file, settings.dask_tls_cert, settings.dask_tls_key
    problems = tls_problems(address, ca_file, cert, key)
    if problems:
        raise DaskTlsError(f"cannot connect to the Dask scheduler: {'; '.join(problems)}")
    if ca_file is None:
        return None
    from distributed.security import Security

    return Security(
        tls_ca_file=str(ca_file),
        tls_client_cert=str(cert),
        tls_client_key=None if key is None else str(key),
        require_encryption=True,
    )
