"""The protected groups of a declared schema: for each protected attribute, its monitored and reference group.

A group of a numeric column (``integer``, ``number``) is an inclusive range ``[low, high]``; a group of a
``string`` or ``boolean`` column is one value or a list of values. The two groups of an attribute do not overlap.
The credit contract's groups are fixed (``PROTECTED_GROUPS`` in :mod:`utils.data`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from utils.contract import shown
from utils.subscriptions.errors import SubscriptionError

#: The declared column types whose groups are ranges.
NUMERIC_TYPES = ("integer", "number")
#: Most values a group of a string or boolean column may list, and the longest string value.
MAX_GROUP_VALUES, MAX_GROUP_TEXT = 100, 200
_SIDES = ("monitored", "reference")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _error(message: str, field: str) -> SubscriptionError:
    return SubscriptionError(message, field=field)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_value(value: object, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    return isinstance(value, str) and 0 < len(value) <= MAX_GROUP_TEXT and not _CONTROL.search(value)


def _group(attribute: str, side: str, kind: str, value: object) -> list:
    """One group, checked against its column's type: ``[low, high]`` or the list of its values."""
    where = f"groups.{attribute}.{side}"
    if kind in NUMERIC_TYPES:
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)) and value[0] <= value[1]):
            raise _error(
                f"{where} is {shown(value)}; column {attribute!r} is of type {kind}, so a group is a range "
                "[low, high] of two numbers, low first",
                where,
            )
        return list(value)
    values = value if isinstance(value, list) else [value]
    if not 0 < len(values) <= MAX_GROUP_VALUES or not all(_is_value(v, kind) for v in values):
        text = "true or false" if kind == "boolean" else f"strings of 1 to {MAX_GROUP_TEXT} characters"
        raise _error(
            f"{where} is {shown(value)}; column {attribute!r} is of type {kind}, so a group is one value or a list "
            f"of 1 to {MAX_GROUP_VALUES} values ({text})",
            where,
        )
    return list(dict.fromkeys(values))


def _overlap(kind: str, monitored: list, reference: list) -> bool:
    if kind in NUMERIC_TYPES:
        return monitored[0] <= reference[1] and reference[0] <= monitored[1]
    return bool(set(monitored) & set(reference))


def check_groups(schema: dict[str, str], protected: tuple[str, ...], groups: object) -> dict[str, dict[str, list]]:
    """The groups of each protected attribute of a declared ``schema``, checked: every protected attribute has a
    monitored and a reference group, of its column's type, not overlapping; no other attribute has groups.

    Raises:
        SubscriptionError: what is wrong, naming the field (``groups.<attribute>.<side>``).
    """
    groups = {} if groups is None else groups
    if not isinstance(groups, dict):
        raise _error("groups is an object: protected attribute to its monitored and reference groups", "groups")
    extra = [name for name in groups if name not in protected]
    if extra:
        raise _error(f"groups names {shown(extra[0])}, which is no protected attribute", "groups")
    checked = {}
    for attribute in protected:
        given = groups.get(attribute)
        if not isinstance(given, dict) or sorted(given) != sorted(_SIDES):
            raise _error(
                f"protected attribute {attribute!r} needs its groups: an object with exactly 'monitored' and "
                "'reference' (a range [low, high] for a numeric column, else a value or a list of values)",
                f"groups.{attribute}",
            )
        kind = schema[attribute]
        sides = {side: _group(attribute, side, kind, given[side]) for side in _SIDES}
        if _overlap(kind, sides["monitored"], sides["reference"]):
            raise _error(f"the monitored and reference groups of {attribute!r} overlap", f"groups.{attribute}")
        checked[attribute] = sides
    return checked


def as_groups(schema: dict[str, str], stored: dict[str, dict[str, list]]) -> dict[str, dict[str, Any]]:
    """Stored groups as :mod:`utils.fairness` reads them: a numeric range as a tuple, values as a list."""
    return {
        attribute: {
            side: tuple(value) if schema.get(attribute) in NUMERIC_TYPES else list(value)
            for side, value in sides.items()
        }
        for attribute, sides in stored.items()
    }
