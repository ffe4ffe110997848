"""One contract for every deployment target: the built-in ones found through the entry-point
group, and the in-memory one. A deployed version is addressable by the ref the target returns;
bad options and unaddressable versions are refused before anything moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from workbench.registry.artifacts import ArtifactStore
from workbench.registry.deployment import DeploymentTarget, load_target
from workbench.registry.errors import RegistryConflictError, RegistryInputError
from workbench.registry.manager import ModelLifecycleManager
from workbench.registry.memory_store import MemoryRegistryStore
from workbench.registry.targets import MemoryTarget


@pytest.fixture(params=["batch", "http", "memory"])
def target(request: pytest.FixtureRequest) -> DeploymentTarget:
    return MemoryTarget() if request.param == "memory" else load_target(request.param)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ModelLifecycleManager]:
    lifecycle = ModelLifecycleManager(MemoryRegistryStore(), ArtifactStore(tmp_path), who="ci")
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    for _ in range(2):
        lifecycle.register("churn", model)
    yield lifecycle


def test_a_promoted_version_is_addressed_by_its_stage(target, manager) -> None:
    manager.promote("churn", 2, "staging")
    deployed = target.deploy(manager, manager.store.get("churn", 2), {})
    assert (deployed.target, deployed.name, deployed.version) == (target.name, "churn", 2)
    assert deployed.ref == "churn@staging"
    name, ref = deployed.ref.split("@")
    assert manager.store.resolve(name, ref).version == 2


def test_an_alias_is_moved_onto_the_version(target, manager) -> None:
    manager.set_alias("churn", "live", 1)
    deployed = target.deploy(manager, manager.store.get("churn", 2), {"alias": "live"})
    assert deployed.ref == "churn@live"
    assert manager.store.resolve("churn", "live").version == 2
    assert manager.store.history("churn")[-1].alias_changes[0].from_version == 1


def test_a_version_nothing_can_address_is_refused(target, manager) -> None:
    with pytest.raises(RegistryConflictError, match="in stage 'none'"):
        target.deploy(manager, manager.store.get("churn", 1), {})
    assert manager.store.history("churn") == []


def test_bad_options_are_refused_by_name(target, manager) -> None:
    for options, says in (({"alias": "bad alias!"}, "alias"), ({"nope": 1}, "nope")):
        with pytest.raises(RegistryInputError, match=says):
            target.check_options(options)
        with pytest.raises(RegistryInputError, match=f"{target.name!r}"):
            target.deploy(manager, manager.store.get("churn", 1), options)
    assert manager.store.history("churn") == []
