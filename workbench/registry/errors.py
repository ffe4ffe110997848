"""Registry errors. Each names what was asked for and what exists, so the fix is obvious."""

from __future__ import annotations

from collections.abc import Iterable

from workbench.errors import WorkbenchError


def _listing(items: Iterable[object]) -> str:
    shown = [str(i) for i in items]
    return ", ".join(shown) if shown else "none"


class RegistryError(WorkbenchError):
    """Root of the model registry's errors. A refused call changed nothing."""


class RegistryInputError(RegistryError, ValueError):
    """A malformed argument: a bad model or alias name, an unknown stage, no `who`."""

    exit_code = 2


class ModelNotFoundError(RegistryError, LookupError):
    exit_code = 2  # the caller named something that is not there

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"no model named {name!r} in the registry; registered models: "
            f"{_listing(self.known)}. Register a version first."
        )


class VersionNotFoundError(RegistryError, LookupError):
    exit_code = 2

    def __init__(self, name: str, version: int, known: Iterable[int]) -> None:
        self.name = name
        self.version = version
        self.known = sorted(known)
        super().__init__(
            f"model {name!r} has no version {version}; its versions: {_listing(self.known)}"
        )


class AliasNotFoundError(RegistryError, LookupError):
    exit_code = 2

    def __init__(self, name: str, alias: str, known: Iterable[str]) -> None:
        self.name = name
        self.alias = alias
        self.known = sorted(known)
        super().__init__(
            f"model {name!r} has no alias, stage or version {alias!r}; its aliases: "
            f"{_listing(self.known)}. Use a version number, a stage name or one of those."
        )


class RegistryConflictError(RegistryError):
    """The request is well formed but the model's current state does not allow it."""


class StaleValidationError(RegistryConflictError):
    """The version's report compared it with a champion that is no longer the champion."""
