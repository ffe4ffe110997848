"""Errors of the artifact store (kept apart from `errors`, which holds the store's own errors)."""

from __future__ import annotations

from workbench.registry.errors import RegistryError


class ArtifactIntegrityError(RegistryError):
    """An artifact's bytes do not match the checksum registered with it: it was refused and
    never unpickled (unpickling runs code, so a tampered file must not get that far)."""

    def __init__(self, path: str, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"model artifact {path} failed its integrity check: expected checksum {expected}, "
            f"the file has {actual}; refused, never loaded. It was modified, truncated or "
            "replaced after registration: restore it from a backup or register the model again."
        )


class ArtifactMissingError(RegistryError, LookupError):
    """The registry points at an artifact file that is not there."""

    def __init__(self, path: str, root: str) -> None:
        self.path = path
        self.root = root
        super().__init__(
            f"model artifact {path} is missing under the artifact root {root}: it was moved or "
            "deleted after registration, or the registry is pointed at another root. Restore "
            "the file or use the root the model was registered with."
        )
