"""Where registered models' bytes live: pickles under `root/models/<name>/`, each with the
SHA-256 the registry records, checked before anything is unpickled.

Saving writes a temp file in the destination folder, then renames it into place, so a reader
never sees a half-written artifact. Each file gets a fresh random token in its name (96 bits),
so processes saving the same model at once never overwrite one another.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pickle
import re
import secrets
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.pickling import dumps
from workbench.registry.artifact_errors import ArtifactIntegrityError, ArtifactMissingError
from workbench.registry.errors import RegistryInputError
from workbench.registry.rules import check_model_name

MODELS_DIR = "models"
SUFFIX = ".pkl"
CHECKSUM = re.compile(r"sha256:[0-9a-f]{64}")
_HINT_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class StoredArtifact:
    path: str  # relative to the store's root, '/'-separated
    checksum: str  # "sha256:<hex>" of the file's bytes
    size: int  # bytes


def checksum_of(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def flavor_of(estimator: Any) -> str:
    """ "xgboost" or "sklearn" for those libraries' estimators, else the top-level name of the
    module that defines the estimator's class. Read from the class's module name: neither
    library is imported."""
    module = getattr(type(estimator), "__module__", None) or "builtins"
    return module.split(".", 1)[0]


def _token(version_hint: str) -> str:
    hint = _HINT_UNSAFE.sub("-", str(version_hint)).strip(".-")[:40]
    random = secrets.token_hex(12)
    return f"{hint}-{random}" if hint else random


class ArtifactStore:
    """Model artifacts under `root`; paths handed out and taken back are relative to it."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def save(self, name: str, version_hint: str, obj: Any) -> StoredArtifact:
        """Pickle `obj` to a new file `models/<name>/<hint>-<random>.pkl`. `version_hint` only
        makes the file name readable (unsafe characters become '-'); it need not be unique."""
        folder_rel = PurePosixPath(MODELS_DIR, *_name_parts(name))
        folder = self.root.joinpath(*folder_rel.parts)
        folder.mkdir(parents=True, exist_ok=True)
        data = dumps(obj)
        final_name = _token(version_hint) + SUFFIX
        tmp = folder / f".{final_name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / final_name)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return StoredArtifact(
            path=str(folder_rel / final_name), checksum=checksum_of(data), size=len(data)
        )

    def read_verified(self, path: str, checksum: str) -> bytes:
        """The artifact's bytes, after checking them against `checksum`.
        ArtifactMissingError: no such file. ArtifactIntegrityError: the bytes differ."""
        expected = _check_checksum(checksum)
        file = self._resolve(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissingError(path, str(self.root)) from None
        except IsADirectoryError:
            raise ArtifactMissingError(path, str(self.root)) from None
        actual = checksum_of(data)
        if not hmac.compare_digest(actual, expected):
            raise ArtifactIntegrityError(path, expected, actual)
        return data

    def load(self, path: str, checksum: str) -> Any:
        """The object saved at `path`, unpickled only once its bytes match `checksum`."""
        return pickle.loads(self.read_verified(path, checksum))

    def _resolve(self, path: str) -> Path:
        rel = PurePosixPath(path)
        if (
            not path
            or rel.is_absolute()
            or "\\" in path
            or any(part in ("", ".", "..") for part in path.split("/"))
        ):
            raise RegistryInputError(
                f"invalid artifact path {path!r}: expected a path relative to the artifact "
                "root, such as 'models/<name>/<file>.pkl', with no '..' or absolute part"
            )
        return self.root.joinpath(*rel.parts)


def _name_parts(name: str) -> list[str]:
    check_model_name(name)
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise RegistryInputError(
            f"model name {name!r} cannot name an artifact folder: '/'-separated parts must be "
            "non-empty and not '.' or '..'"
        )
    return parts


def _check_checksum(checksum: str) -> str:
    if not isinstance(checksum, str) or CHECKSUM.fullmatch(checksum.lower()) is None:
        raise RegistryInputError(
            f"invalid checksum {checksum!r}: expected 'sha256:' followed by 64 hex digits"
        )
    return checksum.lower()
