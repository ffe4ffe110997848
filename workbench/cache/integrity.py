"""Sealing cache entries with an HMAC, so a result is loaded only if this installation wrote it.

A sealed entry is `MARKER + VERSION + tag + payload`, where the tag is HMAC-SHA256 over
`key + b"\\0" + payload`. Binding the key means an entry copied under another key fails
(`\\0` cannot occur in a key, so the split is unambiguous). Payloads are pickles: they must be
verified before anything unpickles them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from workbench.cache.base import validate_key
from workbench.errors import CacheError, CacheIntegrityError

MARKER = b"WBC"
VERSION = 1
TAG_BYTES = hashlib.sha256().digest_size
HEADER_BYTES = len(MARKER) + 1 + TAG_BYTES
SECRET_ENV = "WORKBENCH_CACHE_SECRET"


def _tag(key: str, payload: bytes | memoryview, secret: bytes) -> bytes:
    if not secret:
        raise ValueError("the cache secret is empty; get one from load_secret()")
    mac = hmac.new(secret, validate_key(key).encode("ascii"), hashlib.sha256)
    mac.update(b"\0")
    mac.update(payload)
    return mac.digest()


def seal(key: str, payload: bytes, secret: bytes) -> bytes:
    """Prefix `payload` with a marker, the format version and its HMAC tag for `key`."""
    return MARKER + bytes([VERSION]) + _tag(key, payload, secret) + payload


def unseal(key: str, blob: bytes, secret: bytes) -> memoryview:
    """The payload of a sealed entry, as a view into `blob` (entries can be large: no copy);
    CacheIntegrityError if it is not one this secret sealed."""
    if not blob.startswith(MARKER):
        raise _rejected(key, "bad marker: not a sealed Workbench cache entry")
    if len(blob) < HEADER_BYTES:
        raise _rejected(key, f"truncated: {len(blob)} bytes, shorter than the sealed header")
    version = blob[len(MARKER)]
    if version != VERSION:
        raise _rejected(key, f"unsupported format version {version} (this Workbench reads 1)")
    tag = blob[len(MARKER) + 1 : HEADER_BYTES]
    payload = memoryview(blob)[HEADER_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, payload, secret)):
        raise _rejected(
            key,
            f"tag mismatch: usually another {SECRET_ENV} (or key file) wrote it; otherwise it "
            "was stored under another key, truncated or tampered with",
        )
    return payload


def _rejected(key: str, why: str) -> CacheIntegrityError:
    return CacheIntegrityError(
        f"cache entry {key} failed its integrity check and is ignored: {why}"
    )


def default_key_file() -> Path:
    import platformdirs  # only where a key file is actually needed

    return platformdirs.user_config_path("workbench") / "cache.key"


def load_secret(secret: str | None, key_file: Path | None = None) -> bytes:
    """The secret that seals cache entries.

    A non-empty `secret` (WORKBENCH_CACHE_SECRET) wins. Otherwise the key file is read,
    generated once if missing. Its text is the secret, so putting the same text in
    WORKBENCH_CACHE_SECRET elsewhere lets other machines share this cache.
    """
    if secret:
        return secret.encode("utf-8")
    path = key_file if key_file is not None else default_key_file()
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CacheError(
            f"cannot read the cache key file {path}: {exc}. Fix its permissions (chmod 600), "
            f"delete it to have a new key generated, or set {SECRET_ENV}"
        ) from exc
    if not text:
        raise CacheError(
            f"the cache key file {path} is empty: delete it to have a new key generated, "
            f"or set {SECRET_ENV}"
        )
    return text.encode("utf-8")


def _create_key_file(path: Path) -> None:
    """Write a fresh key to a private temp file, then hard-link it into place: the link fails if
    another process got there first, so racing processes all end up reading the same key, and
    nobody ever reads a half-written file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)  # whatever the umask
                os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise CacheError(
            f"cannot create the cache key file {path}: {exc}. Make its directory writable, "
            f"or set {SECRET_ENV}"
        ) from exc
