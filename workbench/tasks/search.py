"""The search space in Optuna's terms: sampling a dimension, its extremes (checked before any
trial runs), and the sampler and pruner a configuration names. Shared by the study optimizer and
the `hyperparameter_tuning` task type."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from workbench.spec.models import HyperparameterConfig, SearchDimension

if TYPE_CHECKING:
    import optuna


def suggest(trial: optuna.trial.Trial, name: str, dim: SearchDimension) -> Any:
    if dim.type == "categorical":
        return trial.suggest_categorical(name, dim.choices or [])
    assert dim.min is not None and dim.max is not None
    if dim.type == "integer":
        step = int(dim.step) if dim.step else 1
        return trial.suggest_int(name, int(dim.min), int(dim.max), step=step, log=dim.log)
    return trial.suggest_float(name, dim.min, dim.max, step=dim.step, log=dim.log)


def corner(dim: SearchDimension, which: str) -> Any:
    if dim.type == "categorical":
        return (dim.choices or [None])[0 if which == "min" else -1]
    value = dim.min if which == "min" else dim.max
    return int(value) if dim.type == "integer" and value is not None else value


def make_sampler(config: HyperparameterConfig) -> Any:
    import optuna

    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=config.seed)
    if config.sampler == "grid":
        return _grid_sampler()(_grid(config), seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed)


def trial_budget(config: HyperparameterConfig) -> int:
    """max_trials, but no more than a grid has points (more would only repeat them)."""
    if config.sampler != "grid":
        return config.max_trials
    return min(config.max_trials, math.prod(len(v) for v in _grid(config).values()))


def _grid(config: HyperparameterConfig) -> dict[str, list[Any]]:
    """Every point of each dimension: a categorical one's choices, a numeric one's steps."""
    return {
        name: list(dim.choices or []) if dim.type == "categorical" else _grid_values(dim)
        for name, dim in config.search_space.items()
    }


def _grid_sampler() -> type:
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        """Optuna's grid sampler calls Study.stop() when the grid is done, which only works
        inside study.optimize(); trials here are asked and told, and trial_budget ends them."""

        def after_trial(self, *args: Any) -> None:
            return None

    return Grid


def _grid_values(dim: SearchDimension) -> list[Any]:
    assert dim.min is not None and dim.max is not None
    if dim.type == "integer":
        step = int(dim.step or 1)
        return list(range(int(dim.min), int(dim.max) + 1, step))
    spacing = dim.step or (dim.max - dim.min) / 4
    count = round((dim.max - dim.min) / spacing)
    return [dim.min + i * spacing for i in range(count + 1)]


# Training's steps are boosting rounds, or the percent of a forest grown: judged from 20 on.
TRAINING_WARMUP_STEPS = 20


def make_pruner(name: str, warmup_steps: int = TRAINING_WARMUP_STEPS) -> Any:
    """median: stop a trial whose intermediate value is worse than the median of earlier
    trials at the same step, once 2 trials have ended and past `warmup_steps` (a slow
    learner looks hopeless in its first rounds); hyperband: successive halving over the
    steps; none: never prune."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup_steps)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()
