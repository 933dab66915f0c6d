"""The German credit data: its contract, a loader, and a seeded generator.

The contract (column order, types, category domains, label values) follows the
public IBM "German credit risk" sample used by the original workshop, so any CSV
with the same columns goes through the same code. The generator reproduces the
public sample's measured profile (shares and risk rates per category, numbers by
outcome, how the columns overlap, exact duplicate rows; a logistic regression
reaches a test ROC AUC of about 0.86 on its data, as on the sample's), and can add
covariate drift and label bias for the monitoring parts of the workshop.
:func:`describe_training_data` sums up a data set in one computed sentence.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from utils.choices import FOUR_FIFTHS_RULE as FOUR_FIFTHS_RULE  # re-exported; defined there for the command lines

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

#: The physically plausible range of each integer column: scoring refuses a value outside it, and scores (and
#: flags) one inside it but outside the training data's range. Months for LoanDuration, years for Age, a
#: currency amount above 0 for LoanAmount, small codes or counts for the others (docs/serving.md).
CONTRACT_RANGES: dict[str, tuple[int, int]] = {
    "LoanDuration": (1, 120),
    "LoanAmount": (1, 1_000_000),
    "InstallmentPercent": (1, 10),
    "CurrentResidenceDuration": (1, 10),
    "Age": (18, 100),
    "ExistingCreditsCount": (1, 10),
    "Dependents": (0, 10),
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

#: Numeric fields along which the risk rises in the data (refused applicants ask for larger and longer loans): a
#: model's probability of ``Risk`` must not fall as they grow (the directional model check), and gradient boosting
#: is trained with that as a monotonic constraint.
RISK_RISES_WITH: tuple[str, ...] = ("LoanAmount", "LoanDuration")
#: Fields the models do not use: whether a telephone is registered in the applicant's name says nothing about
#: repaying a loan, though in the data it travels with risk (the invariance model check holds a model to that).
UNUSED_FEATURES: tuple[str, ...] = ("Telephone",)

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


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file of its own in the same folder: a reader sees the
    old file or the whole new one, also when two writers write at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes: the data lineage recorded with every model, and the model file's own check."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: The public sample's profile, which the generator reproduces. For each category column (values in contract
#: order) and each small integer column (values 1, 2, ...): the share of rows with each value and the share of
#: ``Risk`` among them.
_PROFILE: dict[str, tuple[tuple[float, float], ...]] = {
    "CheckingStatus": ((0.261, 0.218), (0.061, 0.416), (0.280, 0.093), (0.399, 0.566)),
    "CreditHistory": ((0.154, 0.068), (0.298, 0.214), (0.023, 0.0), (0.188, 0.660), (0.337, 0.403)),
    "LoanPurpose": (
        *((0.112, 0.512), (0.029, 0.356), (0.189, 0.125), (0.162, 0.248), (0.033, 0.419), (0.171, 0.333)),
        *((0.023, 0.646), (0.151, 0.432), (0.057, 0.565), (0.033, 0.256), (0.041, 0.283)),
    ),
    "ExistingSavings": ((0.227, 0.328), (0.216, 0.480), (0.112, 0.525), (0.371, 0.138), (0.075, 0.619)),
    "EmploymentDuration": ((0.294, 0.239), (0.280, 0.411), (0.186, 0.710), (0.181, 0.082), (0.059, 0.030)),
    "InstallmentPercent": (
        (0.103, 0.064),
        (0.238, 0.148),
        (0.327, 0.311),
        (0.241, 0.502),
        (0.087, 0.761),
        (0.004, 0.944),
    ),
    "Sex": ((0.379, 0.296), (0.621, 0.357)),
    "OthersOnLoan": ((0.143, 0.678), (0.022, 0.718), (0.835, 0.265)),
    "CurrentResidenceDuration": (
        (0.128, 0.059),
        (0.249, 0.147),
        (0.335, 0.349),
        (0.216, 0.550),
        (0.071, 0.751),
        (0.001, 1.0),
    ),
    "OwnsProperty": ((0.308, 0.434), (0.217, 0.052), (0.332, 0.255), (0.143, 0.731)),
    "InstallmentPlans": ((0.093, 0.176), (0.703, 0.386), (0.203, 0.227)),
    "Housing": ((0.148, 0.712), (0.639, 0.321), (0.213, 0.112)),
    "ExistingCreditsCount": ((0.569, 0.178), (0.396, 0.516), (0.035, 0.810), (0.001, 1.0)),
    "Job": ((0.128, 0.392), (0.680, 0.346), (0.057, 0.224), (0.135, 0.264)),
    "Dependents": ((0.835, 0.286), (0.165, 0.578)),
    "Telephone": ((0.588, 0.194), (0.412, 0.534)),
    "ForeignWorker": ((0.025, 0.561), (0.975, 0.328)),
}
_RISK_SHARE = 0.334
#: Quantiles of the wide integer columns by outcome, at the probabilities of ``_QUANTILE_LEVELS``: the sample's
#: minimum, p10, p25, p50, p75, p90, a p98 that gives the sample's mean, and its maximum.
_QUANTILE_LEVELS = (0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 0.98, 1.0)
_QUANTILES: dict[str, dict[str, tuple[int, ...]]] = {
    "LoanDuration": {FAVOURABLE: (4, 4, 10, 17, 25, 32, 36, 64), UNFAVOURABLE: (4, 15, 22, 29, 35, 41, 50, 64)},
    "LoanAmount": {
        FAVOURABLE: (250, 250, 574, 2324, 4212, 5835, 7000, 11676),
        UNFAVOURABLE: (250, 1908, 3317, 5189, 6694, 7928, 9600, 11676),
    },
    "Age": {FAVOURABLE: (19, 19, 25, 32, 39, 45, 52, 74), UNFAVOURABLE: (22, 30, 36, 43, 50, 55, 63, 74)},
}
# How strongly each column follows the applicant's latent risk within an outcome (the sample's columns are
# correlated with each other beyond what the outcome explains): the column that separates the outcomes most
# loads 0.7, the others less, by (their strength / its strength) ** 0.3. And the one strong tie of two categories.
_LATENT_LOADING = 0.7
_LOADING_POWER = 0.3
_TIES = {"Job": ("InstallmentPlans", 0.97)}
_DUPLICATE_SHARE = 18 / 5000  # extra copies of rows, as in the public sample


def _risk_strength(column: str) -> float:
    """How much the risk rate varies over a column's values (the correlation ratio; 0.45 for the wide columns)."""
    if column in _QUANTILES:
        return 0.45
    shares, rates = np.array(_PROFILE[column]).T
    return float(np.sqrt(shares @ (rates - _RISK_SHARE) ** 2 / (_RISK_SHARE * (1 - _RISK_SHARE))))


def _column_values(column: str) -> np.ndarray:
    if column in CATEGORIES:
        return np.array(CATEGORIES[column], dtype=object)
    return np.arange(1, len(_PROFILE[column]) + 1)


def _rank_levels(scores: np.ndarray) -> np.ndarray:
    """Scores replaced by their evenly spaced rank levels in (0, 1): exact quantiles, whatever the draw."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(len(scores))
    return (ranks + 0.5) / max(len(scores), 1)


def _value_at(column: str, levels: np.ndarray, outcome: str) -> np.ndarray:
    """The column's values at quantile ``levels`` of its distribution among applicants with ``outcome``."""
    if column in _QUANTILES:
        return np.round(np.interp(levels, _QUANTILE_LEVELS, _QUANTILES[column][outcome])).astype(int)
    shares, rates = np.array(_PROFILE[column]).T
    weights = shares * (rates if outcome == UNFAVOURABLE else 1 - rates)
    order = np.argsort(rates, kind="stable")  # from the safest value to the riskiest
    bounds = np.cumsum(weights[order]) / weights.sum()
    return _column_values(column)[order][np.minimum(np.searchsorted(bounds, levels), len(order) - 1)]


def _draw_applicants(rng: np.random.Generator, risk: np.ndarray) -> pd.DataFrame:
    """Features for applicants of known outcome: each column from its distribution given the outcome, all of them
    tied to one latent risk score within each outcome (a Gaussian copula), so the columns overlap as they do in
    the sample."""
    n = len(risk)
    latent = rng.standard_normal(n)
    top = max(_risk_strength(column) for column in FEATURES)
    scores, columns = {}, {}
    for column in FEATURES:
        loading = _LATENT_LOADING * (_risk_strength(column) / top) ** _LOADING_POWER
        scores[column] = loading * latent + np.sqrt(1 - loading**2) * rng.standard_normal(n)
        if column in _TIES:
            other, tie = _TIES[column]
            scores[column] = tie * scores[other] + np.sqrt(1 - tie**2) * rng.standard_normal(n)
        values = np.empty(n, dtype=_column_values(column).dtype if column not in _QUANTILES else int)
        for outcome, rows in ((UNFAVOURABLE, risk), (FAVOURABLE, ~risk)):
            values[rows] = _value_at(column, _rank_levels(scores[column][rows]), outcome)
        columns[column] = values
    return pd.DataFrame(columns)


def _add_drift(rng: np.random.Generator, frame: pd.DataFrame, drift: float) -> None:
    """Covariate drift in place: larger and longer loans, and more applicants aged 19-25."""
    young = rng.random(len(frame)) < 0.5 * drift
    young_ages = rng.integers(19, 26, size=len(frame))
    frame["Age"] = np.where(young, young_ages, frame["Age"])
    for column, growth in (("LoanAmount", 0.5), ("LoanDuration", 0.3)):
        grown = np.round(frame[column].to_numpy() * (1 + growth * drift))
        frame[column] = np.clip(grown, *NUMERIC_RANGES[column]).astype(int)


def _add_duplicates(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Overwrite a few rows with exact copies of others (two copies of each source row), so that the extra copies
    (with those the draw made by chance) are the sample's share of the rows."""
    extra = int(round(_DUPLICATE_SHARE * len(frame))) - int(frame.duplicated().sum())
    if extra <= 0:
        return frame
    rows = rng.permutation(len(frame))
    sources, targets = rows[: (extra + 1) // 2], rows[len(rows) - extra :]
    picked = np.arange(len(frame))
    picked[targets] = np.resize(sources, extra)
    return frame.iloc[picked].reset_index(drop=True)


def generate_credit_data(
    n_rows: int = 5000,
    seed: int = 42,
    *,
    drift: float = 0.0,
    bias: float = 0.0,
    bias_group: str = "Sex",
) -> pd.DataFrame:
    """Generate applicants and their outcomes in the contract's schema, with the public sample's profile.

    The outcome is drawn first (a third of the rows are ``Risk``), then each feature from its distribution given
    the outcome, so every category's share and risk rate and every number's percentiles by outcome are the
    sample's; a shared latent score makes the features overlap as much as the sample's do. A few rows are exact
    copies of others, at the sample's rate (the knobs then shift each copy on its own draw).

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
    risk = np.zeros(n_rows, dtype=bool)
    risk[rng.permutation(n_rows)[: int(round(_RISK_SHARE * n_rows))]] = True
    frame = _draw_applicants(rng, risk)
    frame[LABEL] = np.where(risk, UNFAVOURABLE, FAVOURABLE)
    frame = _add_duplicates(rng, frame)  # before the knobs, which then leave the same rows as copies
    _add_drift(rng, frame, drift)
    biased = in_monitored_group(frame, bias_group) & (rng.random(n_rows) < bias)
    frame[LABEL] = np.where(biased, UNFAVOURABLE, frame[LABEL])
    return frame


def in_monitored_group(frame: pd.DataFrame, attribute: str) -> np.ndarray:
    """Boolean mask of the rows in the monitored group of ``attribute`` (Sex or Age)."""
    group = PROTECTED_GROUPS[attribute]["monitored"]
    if attribute == "Age":
        low, high = group
        return frame["Age"].between(low, high).to_numpy()
    return (frame[attribute] == group).to_numpy()


def describe_training_data(frame: pd.DataFrame) -> str:
    """One sentence on a labelled data set, computed from it: rows, exact duplicate rows, the share of ``Risk`` and
    the favourable rate of each monitored group beside its reference group's."""
    extra = int(frame.duplicated().sum())
    copies = (
        "none of them an exact copy of another" if extra == 0 else f"{extra:,} of them exact copies of earlier rows"
    )
    sentence = f"{len(frame):,} rows ({copies}); {(frame[LABEL] == UNFAVOURABLE).mean():.1%} of them `Risk`"
    rates = [
        " vs ".join(_favourable_rate(frame, attribute, groups[role]) for role in ("monitored", "reference"))
        for attribute, groups in PROTECTED_GROUPS.items()
    ]
    return f"{sentence}; favourable (`No Risk`) rates: {', '.join(rates)}."


def _favourable_rate(frame: pd.DataFrame, attribute: str, group: str | tuple[int, int]) -> str:
    """``"<group> <favourable rate>"``, e.g. ``"ages 18-25 0.931"``."""
    if attribute == "Age":
        name, members = f"ages {group[0]}-{group[1]}", frame["Age"].between(*group)
    else:
        name, members = str(group), frame[attribute] == group
    if not members.any():
        return f"{name} (none)"
    return f"{name} {(frame.loc[members, LABEL] == FAVOURABLE).mean():.3f}"


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
