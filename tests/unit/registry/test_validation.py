"""Validation against gates (registered metrics and a held-out scorer), promotion that requires
a passing report, and deployment through the built-in targets, over a real SQLite registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from workbench.events.models import EventType
from workbench.registry.base import Stage
from workbench.registry.errors import (
    AliasNotFoundError,
    RegistryConflictError,
    RegistryInputError,
)

X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
Y = np.array([0, 0, 0, 1, 1, 1])


def _model(flip: bool = False) -> LogisticRegression:
    return LogisticRegression().fit(X, 1 - Y if flip else Y)


def accuracy(model: LogisticRegression) -> dict[str, float]:
    """A held-out scorer: the model's accuracy on the rows above."""
    return {"accuracy": float((model.predict(X) == Y).mean())}


def test_the_first_version_passes_champion_gates_with_a_reason(manager) -> None:
    lifecycle, events = manager
    lifecycle.register("fraud", _model(), metrics={"f1_score": 0.9})
    report = lifecycle.validate("fraud", 1, {"f1_score": ">= 0.8", "accuracy": "+0 vs champion"})
    assert not report.passed  # no accuracy was recorded at registration
    by_metric = {g["metric"]: g for g in report.gates}
    assert by_metric["f1_score"]["passed"] and "meets >= 0.8" in by_metric["f1_score"]["reason"]
    assert "no 'accuracy' metric" in by_metric["accuracy"]["reason"]
    assert report.champion_version is None and report.dataset.startswith("the metrics recorded")
    report = lifecycle.validate("fraud", 1, {"f1_score": "+0.01 vs champion"})
    assert report.passed and report.gates[0]["reason"] == "no champion to compare with"
    assert [e.type for e in events].count(EventType.MODEL_VALIDATED) == 2
    assert lifecycle.store.validations("fraud", 1)[-1] == report


def test_a_scorer_measures_challenger_and_champion_on_the_same_rows(manager) -> None:
    lifecycle, _ = manager
    lifecycle.register("fraud", _model())
    lifecycle.promote("fraud", 1)
    lifecycle.register("fraud", _model(flip=True))
    report = lifecycle.validate(
        "fraud", 2, {"accuracy": "-0.05 vs champion"}, scorer=accuracy, dataset="six rows"
    )
    assert (report.metrics, report.champion_metrics) == ({"accuracy": 0.0}, {"accuracy": 1.0})
    assert report.champion_version == 1 and report.dataset == "six rows"
    assert not report.passed and "champion 1" in report.gates[0]["reason"]


def test_promotion_can_require_a_passing_report(manager) -> None:
    lifecycle, _ = manager
    lifecycle.register("fraud", _model(), metrics={"f1_score": 0.7})
    with pytest.raises(RegistryConflictError, match="no validation report"):
        lifecycle.promote("fraud", 1, require_validation=True)
    lifecycle.validate("fraud", 1, {"f1_score": ">= 0.8"})
    with pytest.raises(RegistryConflictError, match=r"failed its validation.*f1_score"):
        lifecycle.promote("fraud", 1, require_validation=True)
    assert lifecycle.store.get("fraud", 1).stage is Stage.NONE
    lifecycle.validate("fraud", 1, {"f1_score": ">= 0.5"})
    lifecycle.promote("fraud", 1, require_validation=True)

    lifecycle.register("fraud", _model(), metrics={"f1_score": 0.9})
    lifecycle.register("fraud", _model(), metrics={"f1_score": 0.95})
    lifecycle.validate("fraud", 2, {"f1_score": "+0.1 vs champion"})  # against v1
    lifecycle.validate("fraud", 3, {"f1_score": "+0.1 vs champion"})
    lifecycle.promote("fraud", 3, require_validation=True)
    # v2's report compared it with v1, which is no longer production: stale
    with pytest.raises(RegistryConflictError, match="against v1 but production is now v3"):
        lifecycle.promote("fraud", 2, require_validation=True)
    assert lifecycle.store.resolve("fraud", "production").version == 3


def test_bad_validation_requests_change_nothing(manager) -> None:
    lifecycle, events = manager
    lifecycle.register("fraud", _model(), metrics={"f1_score": 0.9})
    with pytest.raises(RegistryInputError, match=r"invalid gate.*'f1_score'"):
        lifecycle.validate("fraud", 1, {"f1_score": "at least 0.8"})
    with pytest.raises(AliasNotFoundError):
        lifecycle.validate("fraud", 1, {"f1_score": "+0 vs champion"}, against="champ")
    assert lifecycle.store.validations("fraud", 1) == []
    assert [e.type for e in events] == [EventType.MODEL_REGISTERED]


def test_deploying_to_batch_points_a_ref_at_the_version(manager) -> None:
    lifecycle, events = manager
    lifecycle.register("fraud", _model())
    with pytest.raises(RegistryConflictError, match="promote it"):
        lifecycle.deploy("fraud", 1, "batch")
    deployed = lifecycle.deploy("fraud", 1, "batch", {"alias": "nightly"})
    assert (deployed.ref, deployed.address) == ("fraud@nightly", "fraud@nightly")
    assert lifecycle.store.resolve("fraud", "nightly").version == 1
    lifecycle.promote("fraud", 1)
    deployed = lifecycle.deploy("fraud", 1, "http")
    assert deployed.ref == "fraud@production" and "workbench serve" in deployed.details["serve"]
    assert [e.type for e in events].count(EventType.MODEL_DEPLOYED) == 2


@pytest.mark.parametrize(
    ("target", "options", "says"),
    [
        ("ftp", {}, "unknown deployment target 'ftp'; known targets: batch, http"),
        ("batch", {"port": 1}, "port: Extra inputs are not permitted"),
        ("batch", {"alias": "production"}, "is a stage name"),
        ("http", {"url": "localhost:80"}, "url: String should match"),
    ],
)
def test_bad_deployments_are_refused_before_anything_moves(manager, target, options, says):
    lifecycle, _ = manager
    lifecycle.register("fraud", _model())
    with pytest.raises(RegistryInputError, match=says):
        lifecycle.deploy("fraud", 1, target, options)
    assert lifecycle.store.history("fraud") == []
