"""Built-in datasets: a synthetic fraud generator and scikit-learn's bundled (offline) sets,
plus reading CSV/Parquet files by suffix."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import DataError

FRAUD_DATASET = "synthetic_fraud"

_CATEGORIES = {
    # name: (share of transactions, median amount, how strongly fraudsters favour it)
    "grocery": (0.22, 45.0, -0.6),
    "gas_station": (0.12, 40.0, -0.3),
    "restaurant": (0.15, 35.0, -0.4),
    "retail": (0.14, 60.0, 0.0),
    "pharmacy": (0.06, 25.0, -0.5),
    "entertainment": (0.08, 50.0, 0.1),
    "travel": (0.06, 350.0, 0.7),
    "electronics": (0.08, 180.0, 1.1),
    "jewelry": (0.03, 250.0, 1.3),
    "online_gaming": (0.06, 30.0, 1.4),
}
_COUNTRIES = {
    # name: (share of transactions, how strongly fraudsters favour it)
    "US": (0.80, 0.0),
    "CA": (0.05, 0.3),
    "GB": (0.04, 0.4),
    "DE": (0.03, 0.4),
    "MX": (0.03, 0.8),
    "FR": (0.02, 0.4),
    "BR": (0.01, 1.2),
    "NG": (0.01, 1.8),
    "RU": (0.01, 1.8),
}
# How often a fraudulent transaction shows each tell-tale sign.
_SIGNAL = 0.85
# Hour of day: most card activity is in the daytime; fraudsters favour the night.
_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5, 7, 7, 6.5, 5.5, 4, 3, 2]
)


def _skewed_choice(
    rng: np.random.Generator, flagged: np.ndarray, weights: np.ndarray, risk: np.ndarray
) -> np.ndarray:
    """Draw one index per row: by `weights`, or for flagged rows by weights tilted towards the
    risky choices."""
    risky = weights * np.exp(2 * risk)
    return np.where(
        flagged,
        rng.choice(len(weights), size=len(flagged), p=risky / risky.sum()),
        rng.choice(len(weights), size=len(flagged), p=weights / weights.sum()),
    )


def synthetic_fraud(n_rows: int = 20000, fraud_rate: float = 0.02, seed: int = 0) -> pd.DataFrame:
    """Card transactions, ~`fraud_rate` of them fraudulent. Fraudulent rows tend to show
    tell-tale signs (risky merchants and countries, unusual amounts, card not present, night
    hours, far from home, many recent transactions, new accounts), each only most of the time,
    so the classes overlap. Deterministic for a seed; ~0.5% duplicate rows and ~1% missing
    values in a few columns so that dedupe and imputation have work to do."""
    if n_rows < 10:
        raise DataError(f"synthetic_fraud: n_rows must be at least 10, got {n_rows}")
    if not 0 < fraud_rate < 0.5:
        raise DataError(f"synthetic_fraud: fraud_rate must be in (0, 0.5), got {fraud_rate}")
    rng = np.random.default_rng(seed)
    n_dupes = round(n_rows * 0.005)
    n = n_rows - n_dupes
    is_fraud = np.zeros(n, dtype=np.int64)
    is_fraud[rng.choice(n, size=max(1, round(n * fraud_rate)), replace=False)] = 1
    fraud = is_fraud == 1

    def signal(share: float) -> np.ndarray:
        # Fraudsters show each tell-tale sign only some of the time, so classes overlap.
        return fraud & (rng.random(n) < share)

    names = list(_CATEGORIES)
    cat_idx = _skewed_choice(
        rng,
        signal(_SIGNAL),
        np.array([v[0] for v in _CATEGORIES.values()]),
        np.array([v[2] for v in _CATEGORIES.values()]),
    )
    median_amount = np.array([v[1] for v in _CATEGORIES.values()])[cat_idx]
    amount = median_amount * rng.lognormal(np.where(signal(_SIGNAL), 1.2, 0.0), 0.7, size=n)
    amount = np.round(amount, 2) + 0.5

    countries = list(_COUNTRIES)
    country_idx = _skewed_choice(
        rng,
        signal(_SIGNAL),
        np.array([v[0] for v in _COUNTRIES.values()]),
        np.array([v[1] for v in _COUNTRIES.values()]),
    )
    online = np.isin(cat_idx, [names.index("online_gaming"), names.index("electronics")])
    p_present = np.where(signal(_SIGNAL), 0.1, np.where(online, 0.3, 0.85))
    card_present = (rng.random(n) < p_present).astype(np.int64)
    night = _HOUR_WEIGHTS * np.where(np.arange(24) <= 4, 6.0, 1.0)
    hour = np.where(
        signal(_SIGNAL),
        rng.choice(24, size=n, p=night / night.sum()),
        rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()),
    )
    customer_age = np.clip(rng.normal(np.where(signal(0.3), 68, 44), 15, size=n), 18, 90).round()
    account_age_days = rng.gamma(1.6, np.where(signal(_SIGNAL), 60, 500), size=n)
    account_age_days = np.clip(account_age_days, 1, 9000).round().astype(np.int64)
    distance = np.round(rng.lognormal(np.where(signal(_SIGNAL), 4.0, 1.6), 1.2, size=n), 1)
    velocity = rng.poisson(np.where(signal(_SIGNAL), 6.0, 2.0), size=n)

    df = pd.DataFrame(
        {
            "transaction_id": [f"TX{seed % 1000:03d}{i:08d}" for i in range(n)],
            "amount": amount,
            "merchant_category": pd.array([names[i] for i in cat_idx], dtype="str"),
            "country": pd.array([countries[i] for i in country_idx], dtype="str"),
            "card_present": card_present,
            "hour": hour.astype(np.int64),
            "customer_age": customer_age,
            "account_age_days": account_age_days,
            "distance_from_home_km": distance,
            "transactions_last_24h": velocity.astype(np.int64),
            "is_fraud": is_fraud,
        }
    )
    # Values lost upstream (not informative about fraud): gaps for imputation to fill.
    for column, share in (
        ("customer_age", 0.01),
        ("distance_from_home_km", 0.015),
        ("merchant_category", 0.005),
    ):
        df.loc[rng.random(n) < share, column] = np.nan
    # Replayed records: exact copies of existing rows, shuffled in.
    if n_dupes:
        dupes = df.iloc[rng.choice(n, size=n_dupes, replace=False)]
        df = pd.concat([df, dupes], ignore_index=True)
        df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    return df


def _sklearn_loader(name: str, label_names: bool) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        frame: pd.DataFrame = bunch.frame.copy()
        if label_names:
            # Readable class names instead of 0..n-1, e.g. 'setosa', 'malignant'.
            names = np.asarray(bunch.target_names, dtype=object)
            frame["target"] = pd.array(names[frame["target"].to_numpy()], dtype="str")
        return frame

    load.__doc__ = f"scikit-learn's bundled {name} dataset (no download)."
    return load


BUILTIN_DATASETS: dict[str, Callable[..., pd.DataFrame]] = {
    FRAUD_DATASET: synthetic_fraud,
    "sklearn:breast_cancer": _sklearn_loader("breast_cancer", label_names=True),
    "sklearn:iris": _sklearn_loader("iris", label_names=True),
    "sklearn:wine": _sklearn_loader("wine", label_names=True),
    "sklearn:diabetes": _sklearn_loader("diabetes", label_names=False),
    "sklearn:digits": _sklearn_loader("digits", label_names=False),
}


def dataset_option_names(name: str) -> list[str]:
    """The options `load_builtin(name, **options)` accepts; DataError for an unknown name."""
    return list(inspect.signature(_loader(name)).parameters)


def _loader(name: str) -> Callable[..., pd.DataFrame]:
    try:
        return BUILTIN_DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown built-in dataset {name!r}; known datasets: {', '.join(BUILTIN_DATASETS)}. "
            "Or give a CSV/Parquet file with 'dataset_path'."
        ) from None


def load_builtin(name: str, **options: Any) -> pd.DataFrame:
    """A built-in dataset by name, e.g. 'synthetic_fraud' (options: n_rows, fraud_rate, seed)
    or 'sklearn:iris'."""
    loader = _loader(name)
    accepted = dataset_option_names(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"dataset {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'no options'}"
        )
    return loader(**options)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (.csv, .csv.gz, ...) or Parquet (.parquet, .pq) file, chosen by suffix."""
    name = path.name.lower()
    if not path.exists():
        raise DataError(f"data file {path} does not exist; check the path in the spec")
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if ".csv" in name or name.endswith(".tsv"):
            return pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    raise DataError(f"cannot read {path}: unsupported file type; use a .csv or .parquet file")


def write_fraud_csv(path: str | Path, n_rows: int = 20000, seed: int = 0) -> Path:
    """Write the synthetic fraud dataset to a CSV file (for example workflows); returns it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    synthetic_fraud(n_rows=n_rows, seed=seed).to_csv(target, index=False)
    return target
