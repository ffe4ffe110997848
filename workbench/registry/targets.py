"""The built-in deployment targets.

* `batch`: the version becomes addressable as `name@ref` for `batch_inference` tasks
  (`model: "fraud@production"`), ref being its stage or the alias given.
* `http`: the same ref, followed by `workbench serve name@ref`; given the server's `url`, the
  deployment waits until the server reports the new version (it reloads when the ref moves).
* `MemoryTarget`: records deployments in memory, for tests and notebooks.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workbench.registry.base import ModelVersion
from workbench.registry.deployment import Deployment, DeploymentError, parse_options, point_ref
from workbench.registry.rules import check_alias

if TYPE_CHECKING:
    from workbench.registry.manager import ModelLifecycleManager


class RefOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str | None = Field(
        None, description="Point this alias at the version; default: address it by its stage."
    )

    @field_validator("alias")
    @classmethod
    def _alias_name(cls, alias: str | None) -> str | None:
        return None if alias is None else check_alias(alias)


class HttpOptions(RefOptions):
    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="A running `workbench serve` for the ref: wait until it serves the version.",
    )
    wait_s: float = Field(30.0, gt=0, le=3600, description="How long to wait for the server.")


class RefTarget:
    """What the built-in targets share: options checked by a pydantic model, then a ref (the
    alias given, or the version's stage) that names the version."""

    name = "ref"
    options_model: type[RefOptions] = RefOptions

    def check_options(self, options: Mapping[str, Any]) -> RefOptions:
        parsed: RefOptions = parse_options(self.name, self.options_model, options)
        return parsed

    def _point(
        self, manager: ModelLifecycleManager, version: ModelVersion, options: Mapping[str, Any]
    ) -> tuple[Any, str]:
        """The parsed options and `name@ref`, once the ref names the version."""
        opts = self.check_options(options)
        ref = point_ref(manager, version, opts.alias, why=f"deployed to {self.name}")
        return opts, f"{version.name}@{ref}"


class BatchTarget(RefTarget):
    name = "batch"

    def deploy(
        self, manager: ModelLifecycleManager, version: ModelVersion, options: Mapping[str, Any]
    ) -> Deployment:
        _, address = self._point(manager, version, options)
        use = f'batch_inference with model: "{address}"'
        return _deployment(self.name, version, address, address, use=use)


class HttpTarget(RefTarget):
    name = "http"
    options_model = HttpOptions

    def deploy(
        self, manager: ModelLifecycleManager, version: ModelVersion, options: Mapping[str, Any]
    ) -> Deployment:
        opts, served = self._point(manager, version, options)
        if opts.url is None:
            serve = f"workbench serve {served} --port 8080 (it follows {served})"
            return _deployment(self.name, version, served, served, serve=serve)
        url = opts.url.rstrip("/")
        waited = _wait_until_served(url, version, opts.wait_s)
        return _deployment(self.name, version, served, url, waited_s=round(waited, 3))


class MemoryTarget(BatchTarget):
    """Records what it deployed; points refs the way `batch` does."""

    name = "memory"

    def __init__(self) -> None:
        self.deployed: list[Deployment] = []

    def deploy(
        self, manager: ModelLifecycleManager, version: ModelVersion, options: Mapping[str, Any]
    ) -> Deployment:
        deployment = super().deploy(manager, version, options)
        self.deployed.append(deployment)
        return deployment


def _deployment(
    target: str, version: ModelVersion, ref: str, address: str, **details: Any
) -> Deployment:
    return Deployment(target, version.name, version.version, ref, address, details)


def _wait_until_served(url: str, version: ModelVersion, wait_s: float) -> float:
    """Poll the server's /metadata until it reports `version`; seconds waited."""
    started = time.monotonic()
    seen = "no answer"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/metadata", timeout=2.0) as response:
                meta = json.loads(response.read())
            if meta.get("name") == version.name and meta.get("version") == version.version:
                return time.monotonic() - started
            seen = f"{meta.get('name')} v{meta.get('version')}"
        except (OSError, ValueError) as exc:  # URLError is an OSError; bad JSON a ValueError
            seen = f"no answer ({exc})"
        if time.monotonic() - started > wait_s:
            raise DeploymentError(
                f"the server at {url} still serves {seen} after {wait_s:g}s, not "
                f"{version.name} v{version.version}; is it `workbench serve` for that model's "
                "ref, and reachable from here?"
            )
        time.sleep(0.2)
