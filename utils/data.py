"""The German credit data: its contract, a loader, and a seeded generator.

The contract (column order, types, category domains, label values) follows the
public IBM "German credit risk" sample used by the original workshop, so any CSV
with the same columns goes through the same code. The generator produces data of
the same shape whose difficulty matches the public sample (a logistic regression
reaches a test ROC AUC of about 0.86), and can add covariate drift and label bias
for the monitoring parts of the workshop.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "Risk"
FAVOURABLE = "No Risk"
UNFAVOURABLE = "Risk"
#: Order of the probability pair in every prediction the project makes.
CLASS_ORDER = (FAVOURABLE, UNFAVOURABLE)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "CheckingStatus": ("0_to_200", "greater_200", "less_0", "no_checking"),
    "CreditHistory": (
        "all_credits_paid_back",
        "credits_paid_to_date",
        "no_credits",
        "outstanding_credit",
        "prior_payments_delayed",
    ),
    "LoanPurpose": (
        "appliances",
        "business",
        "car_new",
        "car_used",
        "education",
        "furniture",
        "other",
        "radio_tv",
        "repairs",
        "retraining",
        "vacation",
    ),
    "ExistingSavings": ("100_to_500", "500_to_1000", "greater_1000", "less_100", "unknown"),
    "EmploymentDuration": ("1_to_4", "4_to_7", "greater_7", "less_1", "unemployed"),
    "Sex": ("female", "male"),
    "OthersOnLoan": ("co-applicant", "guarantor", "none"),
    "OwnsProperty": ("car_other", "real_estate", "savings_insurance", "unknown"),
    "InstallmentPlans": ("bank", "none", "stores"),
    "Housing": ("free", "own", "rent"),
    "Job": ("management_self-employed", "skilled", "unemployed", "unskilled"),
    "Telephone": ("none", "yes"),
    "ForeignWorker": ("no", "yes"),
}

#: Integer columns and the range seen in the public sample.
NUMERIC_RANGES: dict[str, tuple[int, int]] = {
    "LoanDuration": (4, 64),
    "LoanAmount": (250, 11676),
    "InstallmentPercent": (1, 6),
    "CurrentResidenceDuration": (1, 6),
    "Age": (19, 74),
    "ExistingCreditsCount": (1, 4),
    "Dependents": (1, 2),
}

#: The 20 features in contract order.
FEATURES: tuple[str, ...] = (
    "CheckingStatus",
    "LoanDuration",
    "CreditHistory",
    "LoanPurpose",
    "LoanAmount",
    "ExistingSavings",
    "EmploymentDuration",
    "InstallmentPercent",
    "Sex",
    "OthersOnLoan",
    "CurrentResidenceDuration",
    "OwnsProperty",
    "Age",
    "InstallmentPlans",
    "Housing",
    "ExistingCreditsCount",
    "Job",
    "Dependents",
    "Telephone",
    "ForeignWorker",
)
COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)
CATEGORICAL_FEATURES = tuple(c for c in FEATURES if c in CATEGORIES)
NUMERIC_FEATURES = tuple(c for c in FEATURES if c in NUMERIC_RANGES)

#: Monitored and reference groups of the original workshop's fairness configuration.
PROTECTED_GROUPS = {
    "Sex": {"monitored": "female", "reference": "male"},
    "Age": {"monitored": (18, 25), "reference": (26, 75)},
}


class DataError(ValueError):
    """Input data that cannot be read as credit data."""


def load_credit_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a credit CSV as it is, without coercing types.

    A column holding text where numbers belong stays text, so that validation can
    report it by column instead of the reader failing on the first bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path}: the file is empty") from error
    except pd.errors.ParserError as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from error
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no rows")
    return frame


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` as CSV atomically: a reader sees the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes: the data lineage recorded with every model, and the model file's own check."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _choice(rng: np.random.Generator, column: str, weights: dict[str, float], n: int) -> np.ndarray:
    values = list(CATEGORIES[column])
    p = np.array([weights[v] for v in values], dtype=float)
    return rng.choice(values, size=n, p=p / p.sum())


def _effects(frame: pd.DataFrame, column: str, effects: dict[str, float]) -> np.ndarray:
    return frame[column].map(effects).fillna(0.0).to_numpy(dtype=float)


def _risk_logit(frame: pd.DataFrame) -> np.ndarray:
    """The generator's ground truth: log-odds of ``Risk`` for each applicant."""
    logit = (
        _effects(
            frame,
            "CheckingStatus",
            {"less_0": 1.1, "0_to_200": 0.6, "greater_200": -0.3, "no_checking": -1.1},
        )
        + _effects(
            frame,
            "CreditHistory",
            {
                "all_credits_paid_back": 0.9,
                "no_credits": 1.0,
                "outstanding_credit": -0.6,
                "prior_payments_delayed": 0.4,
            },
        )
        + _effects(
            frame,
            "ExistingSavings",
            {"less_100": 0.4, "100_to_500": 0.2, "500_to_1000": -0.3, "greater_1000": -0.7, "unknown": -0.5},
        )
        + _effects(
            frame,
            "EmploymentDuration",
            {"unemployed": 0.5, "less_1": 0.3, "1_to_4": 0.1, "4_to_7": -0.3, "greater_7": -0.2},
        )
        + _effects(
            frame,
            "LoanPurpose",
            {
                "car_used": -0.6,
                "radio_tv": -0.2,
                "education": 0.4,
                "business": 0.2,
                "vacation": 0.3,
                "retraining": -0.3,
            },
        )
        + _effects(frame, "OthersOnLoan", {"guarantor": -0.6, "co-applicant": 0.3})
        + _effects(frame, "OwnsProperty", {"real_estate": -0.4, "unknown": 0.5})
        + _effects(frame, "InstallmentPlans", {"bank": 0.4, "stores": 0.3})
        + _effects(frame, "Housing", {"rent": 0.3, "free": 0.2})
        + _effects(frame, "Job", {"unemployed": 0.4, "management_self-employed": 0.1})
        + _effects(frame, "ForeignWorker", {"yes": 0.3})
        # The public sample is "biased training" data: women were refused more often.
        + _effects(frame, "Sex", {"female": 0.25})
    )
    duration = frame["LoanDuration"].to_numpy(dtype=float)
    amount = frame["LoanAmount"].to_numpy(dtype=float)
    age = frame["Age"].to_numpy(dtype=float)
    logit += 0.035 * (duration - 20) + 0.00012 * (amount - 3000)
    logit += 0.15 * (frame["InstallmentPercent"].to_numpy(dtype=float) - 3)
    logit += -0.02 * (age - 35) + 0.3 * (age < 25)
    # Non-linear: long loans on thin savings are much riskier than either alone.
    logit += 0.6 * ((duration > 36) & (frame["ExistingSavings"] == "less_100").to_numpy())
    return 1.45 * logit - 2.0


# How the generator draws each field that it does not derive from others (None), in contract order: category
# weights, or the probabilities of the integer values 1, 2, ...
_DRAWS: dict[str, dict[str, float] | list[float] | None] = {
    "CheckingStatus": {"less_0": 0.27, "0_to_200": 0.27, "greater_200": 0.06, "no_checking": 0.40},
    "LoanDuration": None,
    "CreditHistory": {
        "all_credits_paid_back": 0.05,
        "credits_paid_to_date": 0.53,
        "no_credits": 0.04,
        "outstanding_credit": 0.29,
        "prior_payments_delayed": 0.09,
    },
    "LoanPurpose": {
        "appliances": 0.07,
        "business": 0.10,
        "car_new": 0.20,
        "car_used": 0.10,
        "education": 0.05,
        "furniture": 0.16,
        "other": 0.03,
        "radio_tv": 0.18,
        "repairs": 0.04,
        "retraining": 0.03,
        "vacation": 0.04,
    },
    "LoanAmount": None,
    "ExistingSavings": {
        "less_100": 0.55,
        "100_to_500": 0.11,
        "500_to_1000": 0.07,
        "greater_1000": 0.06,
        "unknown": 0.21,
    },
    "EmploymentDuration": None,
    "InstallmentPercent": [0.13, 0.23, 0.16, 0.25, 0.15, 0.08],
    "Sex": {"male": 0.62, "female": 0.38},
    "OthersOnLoan": {"none": 0.90, "co-applicant": 0.04, "guarantor": 0.06},
    "CurrentResidenceDuration": [0.13, 0.30, 0.15, 0.25, 0.12, 0.05],
    "OwnsProperty": {"real_estate": 0.28, "savings_insurance": 0.23, "car_other": 0.33, "unknown": 0.16},
    "Age": None,
    "InstallmentPlans": {"none": 0.81, "bank": 0.14, "stores": 0.05},
    "Housing": {"own": 0.71, "rent": 0.18, "free": 0.11},
    "ExistingCreditsCount": [0.63, 0.33, 0.03, 0.01],
    "Job": {"skilled": 0.63, "unskilled": 0.20, "management_self-employed": 0.15, "unemployed": 0.02},
    "Dependents": [0.85, 0.15],
    "Telephone": {"none": 0.60, "yes": 0.40},
    "ForeignWorker": {"yes": 0.96, "no": 0.04},
}
# Length of employment grows with age: weights for applicants under 27, and for the others.
_EMPLOYMENT_BY_AGE = (
    {"less_1": 0.30, "1_to_4": 0.45, "4_to_7": 0.12, "greater_7": 0.03, "unemployed": 0.10},
    {"less_1": 0.12, "1_to_4": 0.30, "4_to_7": 0.20, "greater_7": 0.32, "unemployed": 0.06},
)


def generate_credit_data(
    n_rows: int = 5000,
    seed: int = 42,
    *,
    drift: float = 0.0,
    bias: float = 0.0,
    bias_group: str = "Sex",
) -> pd.DataFrame:
    """Generate applicants and their outcomes in the contract's schema.

    Args:
        n_rows: number of rows.
        seed: random seed; the same arguments always give the same rows.
        drift: 0 (none) to 1 (strong) covariate drift: larger and longer loans and
            more applicants aged 19-25, as a changing market would bring.
        bias: 0 (none) to 1 (all) share of the monitored group's favourable outcomes
            turned into ``Risk``: labels biased against that group.
        bias_group: ``"Sex"`` (monitored group ``female``) or ``"Age"`` (18-25).
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be between 0 and 1, got {drift}")
    if not 0.0 <= bias <= 1.0:
        raise ValueError(f"bias must be between 0 and 1, got {bias}")
    if bias_group not in PROTECTED_GROUPS:
        raise ValueError(f"bias_group must be one of {sorted(PROTECTED_GROUPS)}, got {bias_group!r}")

    rng = np.random.default_rng(seed)
    n = n_rows
    age = 19 + rng.gamma(shape=2.0, scale=8.5, size=n)
    young = rng.random(n) < 0.5 * drift
    age[young] = rng.uniform(19, 26, size=young.sum())
    age = np.clip(np.round(age), *NUMERIC_RANGES["Age"]).astype(int)

    duration = np.exp(rng.normal(np.log(18) + 0.35 * drift, 0.5, size=n))
    duration = np.clip(np.round(duration), *NUMERIC_RANGES["LoanDuration"]).astype(int)
    amount = 250 + duration * np.exp(rng.normal(np.log(110) + 0.5 * drift, 0.5, size=n))
    amount = np.clip(np.round(amount), *NUMERIC_RANGES["LoanAmount"]).astype(int)

    employment = np.where(
        age < 27,
        _choice(rng, "EmploymentDuration", _EMPLOYMENT_BY_AGE[0], n),
        _choice(rng, "EmploymentDuration", _EMPLOYMENT_BY_AGE[1], n),
    )

    drawn = {"LoanDuration": duration, "LoanAmount": amount, "EmploymentDuration": employment, "Age": age}
    for column, weights in _DRAWS.items():  # in contract order: the order of the random draws is part of the data
        if column in drawn:
            continue
        if column in CATEGORIES:
            drawn[column] = _choice(rng, column, weights, n)
        else:
            drawn[column] = rng.choice(np.arange(1, len(weights) + 1), size=n, p=weights)
    frame = pd.DataFrame({column: drawn[column] for column in _DRAWS})
    risk = rng.random(n) < 1.0 / (1.0 + np.exp(-_risk_logit(frame)))
    monitored = in_monitored_group(frame, bias_group)
    risk |= monitored & ~risk & (rng.random(n) < bias)
    frame[LABEL] = np.where(risk, UNFAVOURABLE, FAVOURABLE)
    return frame


def in_monitored_group(frame: pd.DataFrame, attribute: str) -> np.ndarray:
    """Boolean mask of the rows in the monitored group of ``attribute`` (Sex or Age)."""
    group = PROTECTED_GROUPS[attribute]["monitored"]
    if attribute == "Age":
        low, high = group
        return frame["Age"].between(low, high).to_numpy()
    return (frame[attribute] == group).to_numpy()


def main(argv: list[str] | None = None) -> None:
    """Command line: write a generated data set as CSV."""
    parser = argparse.ArgumentParser(description="Generate German-credit-style data as CSV.")
    parser.add_argument("output", type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--drift", type=float, default=0.0)
    parser.add_argument("--bias", type=float, default=0.0)
    parser.add_argument("--bias-group", choices=sorted(PROTECTED_GROUPS), default="Sex")
    args = parser.parse_args(argv)
    frame = generate_credit_data(args.rows, args.seed, drift=args.drift, bias=args.bias, bias_group=args.bias_group)
    write_csv(frame, args.output)
    print(f"wrote {len(frame)} rows to {args.output}")


if __name__ == "__main__":
    main()
