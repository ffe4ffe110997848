"""The lifecycle manager over a real SQLite store and artifact folder: register with lineage,
promote, roll back, load verified, one event per change."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from workbench.events.models import EventType
from workbench.registry.base import Stage
from workbench.registry.errors import ModelNotFoundError, RegistryConflictError


def _model(c: float) -> LogisticRegression:
    return LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


def test_register_promote_roll_back_and_load(manager) -> None:
    lifecycle, events = manager
    lineage = {"workflow_id": "fraud", "execution_id": "fraud-1", "task_id": "train"}
    first = lifecycle.register("fraud", _model(1.0), metrics={"f1_score": 0.8}, lineage=lineage)
    second = lifecycle.register("fraud", _model(0.1), metrics={"f1_score": 0.85})
    assert (first.version, second.version) == (1, 2)
    assert first.flavor == "sklearn" and first.lineage == lineage and first.created_by == "ana"
    assert first.checksum.startswith("sha256:")

    lifecycle.promote("fraud", 1, why="first model")
    moved = lifecycle.promote("fraud", 2, why="better f1")
    assert [(t.version, t.to_stage) for t in moved] == [(1, Stage.ARCHIVED), (2, Stage.PRODUCTION)]
    version, model = lifecycle.load("fraud", "production")
    assert version.version == 2 and model.C == 0.1

    lifecycle.rollback("fraud", why="2 misbehaves")
    version, model = lifecycle.load("fraud")
    assert version.version == 1 and model.C == 1.0
    assert lifecycle.store.get("fraud", 2).stage is Stage.ARCHIVED

    kinds = [e.type for e in events]
    assert kinds.count(EventType.MODEL_REGISTERED) == 2
    transitions = [e for e in events if e.type is EventType.MODEL_TRANSITION]
    assert [e.data["why"] for e in transitions][-1] == "2 misbehaves"
    assert all(e.data["who"] == "ana" for e in transitions)


def test_bad_requests_change_nothing(manager) -> None:
    lifecycle, events = manager
    with pytest.raises(ModelNotFoundError):
        lifecycle.load("nope")
    lifecycle.register("fraud", _model(1.0))
    with pytest.raises(RegistryConflictError):
        lifecycle.rollback("fraud")  # nothing in production
    assert [e.type for e in events] == [EventType.MODEL_REGISTERED]


def test_a_tampered_artifact_is_refused(manager, tmp_path: Path) -> None:
    from workbench.registry.artifact_errors import ArtifactIntegrityError

    lifecycle, _ = manager
    version = lifecycle.register("fraud", _model(1.0))
    lifecycle.promote("fraud", version.version)
    path = next((tmp_path / "cache" / "registry").rglob("*.pkl"))
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ArtifactIntegrityError):
        lifecycle.load("fraud")
