"""Protected columns of a declared schema: a column declared with the groups fairness compares.

A declared schema names each column's type; a protected column is declared as an object instead,
``{"type": ..., "protected": ...}``, whose ``protected`` says which records form the monitored group, the rest
forming the reference group:

- ``integer`` or ``number``: ``{"below": x}`` (monitored: under x; reference: x and over) or ``{"at_least": x}``
  (monitored: x and over; reference: under x);
- ``string``: ``{"monitored": [values]}`` (reference: every other value);
- ``boolean``: ``{"monitored": true}`` or ``false`` (reference: the other).

So the two groups never overlap and every protected attribute is a column, whatever is declared. The credit
contract's groups are fixed (``PROTECTED_GROUPS`` in :mod:`utils.data`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from utils.contract import shown
from utils.subscriptions.errors import SubscriptionError

#: The declared column types whose groups are split at a threshold.
NUMERIC_TYPES = ("integer", "number")
#: Most values the monitored group of a string column may list, and the longest of them.
MAX_GROUP_VALUES, MAX_GROUP_TEXT = 100, 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FORMS = {
    "integer": '{"below": x} or {"at_least": x}',
    "number": '{"below": x} or {"at_least": x}',
    "string": '{"monitored": [values]}',
    "boolean": '{"monitored": true} or {"monitored": false}',
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_GROUP_TEXT and not _CONTROL.search(value)


def _protection(name: str, kind: str, protected: object) -> dict[str, Any]:
    """A protected column's groups, checked against its type."""
    given = protected if isinstance(protected, dict) else {}
    (key, value), *more = list(given.items()) or [(None, None)]
    if kind in NUMERIC_TYPES:
        valid = key in ("below", "at_least") and _is_number(value)
    elif kind == "string":
        valid = (
            key == "monitored"
            and isinstance(value, list)
            and 0 < len(value) <= MAX_GROUP_VALUES
            and len(set(map(str, value))) == len(value)
            and all(map(_is_text, value))
        )
    else:
        valid = key == "monitored" and isinstance(value, bool)
    if more or not valid:
        limits = f" (1 to {MAX_GROUP_VALUES} different strings)" if kind == "string" else ""
        raise SubscriptionError(
            f"column {name!r} is protected by {shown(protected)}; a protected {kind} column is {_FORMS[kind]}{limits}",
            field=name,
        )
    return {key: value}


def split_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A declared schema as its columns' types (a type, or a protected column's object) and its protected columns'
    groups, in column order. Types are checked by the caller.

    Raises:
        SubscriptionError: a protected column's object or groups at fault, naming the column.
    """
    types, protected = {}, {}
    for name, declared in schema.items():
        if not isinstance(declared, dict):
            types[name] = declared
            continue
        if sorted(declared) != ["protected", "type"]:
            raise SubscriptionError(
                f"column {name!r} is declared as {shown(declared)}: a type, or an object of exactly 'type' and "
                "'protected'",
                field=name,
            )
        types[name] = declared["type"]
        if isinstance(declared["type"], str) and declared["type"] in _FORMS:
            protected[name] = _protection(name, declared["type"], declared["protected"])
    return types, protected


def as_groups(schema: dict[str, str], protected: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Protected columns' groups as :mod:`utils.fairness` reads them: each attribute's monitored and reference
    group, ``{"below": x}``, ``{"at_least": x}``, a list of values or ``{"other_than": [values]}``."""
    groups = {}
    for attribute, (key, value) in ((a, next(iter(p.items()))) for a, p in protected.items()):
        if schema.get(attribute) in NUMERIC_TYPES:
            other = "at_least" if key == "below" else "below"
            groups[attribute] = {"monitored": {key: value}, "reference": {other: value}}
        elif isinstance(value, bool):
            groups[attribute] = {"monitored": [value], "reference": [not value]}
        else:
            groups[attribute] = {"monitored": list(value), "reference": {"other_than": list(value)}}
    return groups
