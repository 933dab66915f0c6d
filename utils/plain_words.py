"""The contract's fields and values in plain words, for the loan officer's form and the dashboard.

Each field has a label and, for numbers, a unit (:data:`FIELD_WORDS`); :func:`shown_value` writes a value with its
unit or a category in words (``less_0`` -> ``below 0``); :func:`reasons` turns an explanation's contributions into
short sentences such as "Checking account: no checking account (lowered the risk)".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from utils.data import CATEGORIES, UNFAVOURABLE


@dataclass(frozen=True)
class FieldWords:
    label: str
    unit: str = ""


#: Every field of the contract: its label, and the unit of a number.
FIELD_WORDS: dict[str, FieldWords] = {
    "CheckingStatus": FieldWords("Checking account balance", "DM"),
    "LoanDuration": FieldWords("Loan duration", "months"),
    "CreditHistory": FieldWords("Credit history"),
    "LoanPurpose": FieldWords("Loan purpose"),
    "LoanAmount": FieldWords("Loan amount", "DM"),
    "ExistingSavings": FieldWords("Savings", "DM"),
    "EmploymentDuration": FieldWords("Employed for", "years"),
    "InstallmentPercent": FieldWords("Instalment rate", "class: 1 = smallest share of income"),
    "Sex": FieldWords("Sex"),
    "OthersOnLoan": FieldWords("Other parties on the loan"),
    "CurrentResidenceDuration": FieldWords("At current address for", "years"),
    "OwnsProperty": FieldWords("Most valuable property"),
    "Age": FieldWords("Age", "years"),
    "InstallmentPlans": FieldWords("Other instalment plans"),
    "Housing": FieldWords("Housing"),
    "ExistingCreditsCount": FieldWords("Credits at this bank", "count"),
    "Job": FieldWords("Job"),
    "Dependents": FieldWords("People the applicant supports", "count"),
    "Telephone": FieldWords("Telephone in own name"),
    "ForeignWorker": FieldWords("Foreign worker"),
}

#: Units written after a value (a count or a class reads best as the number alone).
_VALUE_UNITS = ("DM", "months", "years")
#: Category values that read badly with underscores alone.
_VALUE_WORDS = {
    "no_checking": "no checking account",
    "less_0": "below 0",
    "0_to_200": "0 to 200",
    "greater_200": "over 200",
    "less_100": "below 100",
    "100_to_500": "100 to 500",
    "500_to_1000": "500 to 1,000",
    "greater_1000": "over 1,000",
    "less_1": "under 1",
    "1_to_4": "1 to 4",
    "4_to_7": "4 to 7",
    "greater_7": "over 7",
    "car_other": "car or other",
    "management_self-employed": "management or self-employed",
    "radio_tv": "radio or TV",
    "car_new": "new car",
    "car_used": "used car",
}


def label(field: str) -> str:
    """The field's label with its unit: ``Loan duration (months)``."""
    words = FIELD_WORDS[field]
    return f"{words.label} ({words.unit})" if words.unit else words.label


def shown_value(field: str, value: object) -> str:
    """A value in words: numbers with their unit, categories without underscores (units of ranges appended)."""
    words = FIELD_WORDS.get(field, FieldWords(field))
    if field in CATEGORIES:
        text = _VALUE_WORDS.get(str(value), str(value).replace("_", " "))
        ranged = any(ch.isdigit() for ch in text) and words.unit
        return f"{text} {words.unit}" if ranged else text
    return f"{value} {words.unit}" if words.unit in _VALUE_UNITS else str(value)


def reasons(contributions: pd.DataFrame, decision: str, *, top: int = 3) -> list[dict]:
    """The ``top`` features that pushed most towards ``decision``, as plain sentences.

    ``contributions`` is :attr:`utils.explain.Explanation.contributions` (indexed by feature, with ``value`` and
    ``contribution`` to the log-odds of ``Risk``). Each reason holds ``field``, ``label``, ``value`` (in words),
    ``contribution`` and ``text``.
    """
    towards = 1.0 if decision == UNFAVOURABLE else -1.0
    pushing = contributions[contributions["contribution"] * towards > 0]
    ordered = pushing.reindex(pushing["contribution"].abs().sort_values(ascending=False, kind="stable").index)
    effect = "raised the risk" if towards > 0 else "lowered the risk"
    found = []
    for field, row in ordered.head(top).iterrows():
        value = shown_value(str(field), row["value"])
        text = f"{FIELD_WORDS[str(field)].label}: {value} ({effect})"
        found.append(
            {
                "field": field,
                "label": label(str(field)),
                "value": value,
                "contribution": row["contribution"],
                "text": text,
            }
        )
    return found


def change_sentence(changes: pd.DataFrame) -> str:
    """A counterfactual's changes as one sentence: ``Loan duration 36 months -> 12 months; Savings ...``."""
    parts = [
        f"{FIELD_WORDS[str(f)].label}: {shown_value(str(f), r['before'])} → {shown_value(str(f), r['after'])}"
        for f, r in changes.iterrows()
    ]
    return "; ".join(parts)
