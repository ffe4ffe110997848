"""JSON forms of versions and transitions, shared by the SQLite and Redis stores (and the
memory store, so a caller never shares a dict with it). A version's JSON leaves out its name
and number: the key or row it is stored under holds those, so they can never disagree."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from workbench.registry.base import (
    AliasChange,
    ModelDraft,
    ModelVersion,
    Stage,
    Transition,
    ValidationReport,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def draft_json(draft: ModelDraft, created_at: float) -> str:
    """A new version's JSON: stage none, no aliases. TypeError if a field is not JSON."""
    return _dumps(
        {
            "stage": Stage.NONE.value,
            "aliases": [],
            "artifact_path": draft.artifact_path,
            "checksum": draft.checksum,
            "flavor": draft.flavor,
            "signature": draft.signature,
            "metrics": {k: float(v) for k, v in draft.metrics.items()},
            "params": draft.params,
            "lineage": draft.lineage,
            "created_at": float(created_at),
            "created_by": draft.created_by,
        }
    )


def version_json(mv: ModelVersion) -> str:
    return _dumps(
        {
            "stage": mv.stage.value,
            "aliases": list(mv.aliases),
            "artifact_path": mv.artifact_path,
            "checksum": mv.checksum,
            "flavor": mv.flavor,
            "signature": mv.signature,
            "metrics": mv.metrics,
            "params": mv.params,
            "lineage": mv.lineage,
            "created_at": mv.created_at,
            "created_by": mv.created_by,
        }
    )


def load_version(name: str, version: int, text: str | bytes) -> ModelVersion:
    d = json.loads(text)
    return ModelVersion(
        name=name,
        version=version,
        stage=Stage(d["stage"]),
        aliases=tuple(d["aliases"]),
        artifact_path=d["artifact_path"],
        checksum=d["checksum"],
        flavor=d["flavor"],
        signature=d["signature"],
        metrics=d["metrics"],
        params=d["params"],
        lineage=d["lineage"],
        created_at=d["created_at"],
        created_by=d["created_by"],
    )


def transition_json(t: Transition) -> str:
    return _dumps(
        {
            "name": t.name,
            "version": t.version,
            "from_stage": t.from_stage.value,
            "to_stage": t.to_stage.value,
            "alias_changes": [[c.alias, c.from_version, c.to_version] for c in t.alias_changes],
            "who": t.who,
            "why": t.why,
            "at": t.at,
        }
    )


def load_transition(text: str | bytes) -> Transition:
    d = json.loads(text)
    return Transition(
        name=d["name"],
        version=d["version"],
        from_stage=Stage(d["from_stage"]),
        to_stage=Stage(d["to_stage"]),
        alias_changes=tuple(AliasChange(a, f, t) for a, f, t in d["alias_changes"]),
        who=d["who"],
        why=d["why"],
        at=d["at"],
    )


def validation_json(report: ValidationReport) -> str:
    """TypeError or ValueError when a field is not plain JSON (NaN metrics are refused)."""
    return json.dumps(asdict(report), separators=(",", ":"), sort_keys=True, allow_nan=False)


def load_validation(text: str | bytes) -> ValidationReport:
    return ValidationReport(**json.loads(text))
