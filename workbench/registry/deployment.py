"""The deployment-target seam: what "deploy version v of a model" means for one kind of
consumer. Targets are found by name in the entry-point group `workbench.deployment_targets`
(`batch` and `http` ship with Workbench); a package adds its own by declaring one there.

A target checks its options before anything moves (so a workflow with a bad target fails at
validation), then makes the version reachable: every built-in one does that by pointing a
ref (a stage or an alias) at it, which `batch_inference` tasks and `workbench serve` follow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from workbench.registry.base import ModelVersion, Stage
from workbench.registry.errors import RegistryConflictError, RegistryError, RegistryInputError

if TYPE_CHECKING:
    from workbench.registry.manager import ModelLifecycleManager

ENTRY_POINT_GROUP = "workbench.deployment_targets"


class DeploymentError(RegistryError):
    """The target could not make the version reachable (a server that never picked it up)."""


@dataclass(frozen=True)
class Deployment:
    target: str
    name: str
    version: int
    ref: str  # "fraud@production": how consumers address the deployed version
    address: str  # where it is reachable: the ref, or a server's URL
    details: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class DeploymentTarget(Protocol):
    name: str

    def check_options(self, options: Mapping[str, Any]) -> BaseModel:
        """The options parsed; RegistryInputError naming the bad field otherwise."""
        ...

    def deploy(
        self, manager: ModelLifecycleManager, version: ModelVersion, options: Mapping[str, Any]
    ) -> Deployment: ...


def parse_options(target: str, model: type[BaseModel], options: Mapping[str, Any]) -> Any:
    """`options` as `model`, for targets whose options are a pydantic model."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: {e['msg']}" for e in exc.errors()
        )
        known = ", ".join(model.model_fields) or "none"
        raise RegistryInputError(
            f"deployment target {target!r}: {problems} (its options: {known})"
        ) from None


def point_ref(
    manager: ModelLifecycleManager, version: ModelVersion, alias: str | None, *, why: str
) -> str:
    """The ref that names `version` once deployed: `alias` (moved onto it), else the stage it is
    in. A version in no stage and without an alias cannot be addressed: refused."""
    if alias:
        manager.set_alias(version.name, alias, version.version, why=why)
        return alias
    current = manager.store.get(version.name, version.version)
    if current.stage in (Stage.PRODUCTION, Stage.STAGING):
        return current.stage.value
    raise RegistryConflictError(
        f"{version.name} v{version.version} is in stage {current.stage.value!r}: promote it to "
        "staging or production first, or give the deployment an 'alias' to point at it"
    )


@cache
def _discovered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def target_names() -> list[str]:
    return sorted(_discovered())


def load_target(name: str) -> DeploymentTarget:
    """The target registered under `name`; RegistryInputError listing the known ones."""
    found = _discovered().get(name)
    if found is None:
        raise RegistryInputError(
            f"unknown deployment target {name!r}; known targets: "
            f"{', '.join(target_names()) or 'none'} (a package adds one in the entry-point "
            f"group {ENTRY_POINT_GROUP!r})"
        )
    target: DeploymentTarget = found.load()()
    return target
