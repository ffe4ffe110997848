"""What each registry operation does, as pure functions of one model's state.

A store loads a `ModelState` inside its atomic section, asks a rule for a `Change`, and writes
the change before leaving the section. A rule raises before returning anything, so a refused
call never writes: bad input changes nothing in any store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from workbench.registry.base import AliasChange, ModelVersion, Stage, Transition
from workbench.registry.errors import (
    AliasNotFoundError,
    RegistryConflictError,
    RegistryInputError,
    VersionNotFoundError,
)

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}")
# Starts with a letter or '_', so never all digits: "3" always means version 3.
ALIAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
STAGE_NAMES = frozenset(s.value for s in Stage)


@dataclass
class ModelState:
    name: str
    versions: dict[int, ModelVersion]
    # Versions in the order they became production (the top is the current one): rollback
    # pops it. Kept apart from the history so rollback never has to replay the log.
    production: list[int]


@dataclass
class Change:
    versions: dict[int, ModelVersion]  # only the versions it rewrites
    production: list[int]  # the whole new stack
    transitions: list[Transition]


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or MODEL_NAME.fullmatch(name) is None:
        raise RegistryInputError(
            f"invalid model name {name!r}: use 1 to 128 characters from A-Z a-z 0-9 _ . - /, "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or alias.lower() in STAGE_NAMES:
        raise RegistryInputError(
            f"alias {alias!r} is a stage name ({', '.join(sorted(STAGE_NAMES))}); stages are "
            "set with transition(). Choose another alias, such as 'champion'."
        )
    if ALIAS_NAME.fullmatch(alias) is None:
        raise RegistryInputError(
            f"invalid alias {alias!r}: use 1 to 64 characters from A-Z a-z 0-9 _ -, starting "
            "with a letter or '_' (all digits would read as a version number)"
        )
    return alias


def check_who(who: str) -> str:
    if not isinstance(who, str) or not who.strip():
        raise RegistryInputError("who must name the person or service making the change")
    return who


def parse_stage(stage: Stage | str) -> Stage:
    try:
        return Stage(stage)
    except ValueError:
        raise RegistryInputError(
            f"unknown stage {stage!r}; stages: {', '.join(s.value for s in Stage)}"
        ) from None


def require(state: ModelState, version: int) -> ModelVersion:
    found = state.versions.get(version) if isinstance(version, int) else None
    if found is None:
        raise VersionNotFoundError(state.name, version, state.versions)
    return found


def aliases(state: ModelState) -> dict[str, int]:
    return {a: mv.version for mv in state.versions.values() for a in mv.aliases}


def current_production(state: ModelState) -> ModelVersion | None:
    return next((v for v in state.versions.values() if v.stage is Stage.PRODUCTION), None)


def resolve(state: ModelState, ref: str) -> ModelVersion:
    ref = str(ref)
    if ref.isdigit():
        return require(state, int(ref))
    if ref.lower() in STAGE_NAMES:
        stage = Stage(ref.lower())
        in_stage = [v for v in state.versions.values() if v.stage is stage]
        if in_stage:  # several may be staging: the newest one wins
            return max(in_stage, key=lambda v: v.version)
    elif ref in (known := aliases(state)):
        return state.versions[known[ref]]
    raise AliasNotFoundError(state.name, ref, aliases(state))


def _move(
    mv: ModelVersion, to: Stage, who: str, why: str, at: float
) -> tuple[ModelVersion, Transition]:
    t = Transition(mv.name, mv.version, mv.stage, to, (), who, why, at)
    return replace(mv, stage=to), t


def transition(
    state: ModelState,
    version: int,
    to_stage: Stage | str,
    *,
    who: str,
    why: str,
    archive_previous: bool,
    at: float,
) -> Change:
    to, mv = parse_stage(to_stage), require(state, version)
    check_who(who)
    change = Change({}, list(state.production), [])
    if mv.stage is to:  # idempotent: a retried call must not archive what it promoted
        return change
    if to is Stage.PRODUCTION:
        previous = current_production(state)
        if previous is not None:
            demoted = Stage.ARCHIVED if archive_previous else Stage.NONE
            new, t = _move(previous, demoted, who, why, at)
            change.versions[new.version] = new
            change.transitions.append(t)
        if change.production[-1:] != [version]:  # demoted and re-promoted: one entry
            change.production.append(version)
    new, t = _move(mv, to, who, why, at)
    change.versions[version] = new
    change.transitions.append(t)
    return change


def _without(mv: ModelVersion, alias: str) -> ModelVersion:
    return replace(mv, aliases=tuple(a for a in mv.aliases if a != alias))


def set_alias(
    state: ModelState, alias: str, version: int, *, who: str, why: str, at: float
) -> Change:
    check_alias(alias)
    target = require(state, version)
    check_who(who)
    change = Change({}, list(state.production), [])
    old = aliases(state).get(alias)
    if old == version:
        return change
    if old is not None:
        holder = state.versions[old]
        change.versions[old] = _without(holder, alias)
    change.versions[version] = replace(target, aliases=(*target.aliases, alias))
    move = (AliasChange(alias, old, version),)
    change.transitions.append(
        Transition(state.name, version, target.stage, target.stage, move, who, why, at)
    )
    return change


def remove_alias(state: ModelState, alias: str, *, who: str, why: str, at: float) -> Change:
    check_alias(alias)
    check_who(who)
    known = aliases(state)
    if alias not in known:
        raise AliasNotFoundError(state.name, alias, known)
    holder = state.versions[known[alias]]
    new = _without(holder, alias)
    move = (AliasChange(alias, holder.version, None),)
    t = Transition(state.name, holder.version, holder.stage, holder.stage, move, who, why, at)
    return Change({holder.version: new}, list(state.production), [t])


def rollback(state: ModelState, *, who: str, why: str, at: float) -> Change:
    check_who(who)
    current = current_production(state)
    if current is None:
        raise RegistryConflictError(
            f"model {state.name!r} has no production version to roll back from; promote one "
            "with transition(..., 'production')"
        )
    stack = list(state.production)
    while stack and stack[-1] == current.version:
        stack.pop()
    if not stack:
        raise RegistryConflictError(
            f"model {state.name!r} cannot roll back: version {current.version} is the first "
            "version it ever had in production"
        )
    down, t_down = _move(current, Stage.ARCHIVED, who, why, at)
    up, t_up = _move(state.versions[stack[-1]], Stage.PRODUCTION, who, why, at)
    return Change({down.version: down, up.version: up}, stack, [t_down, t_up])


def apply(state: ModelState, change: Change) -> ModelState:
    return ModelState(state.name, {**state.versions, **change.versions}, change.production)
