"""Time in one spelling: every moment the project stores or compares is a timezone-aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def utc_now() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(UTC)


def as_utc(moment: str | datetime | pd.Timestamp) -> datetime:
    """A moment as a timezone-aware UTC datetime: text in ISO 8601; a naive moment is taken as UTC."""
    if isinstance(moment, datetime) and not isinstance(moment, pd.Timestamp):
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    stamp = pd.Timestamp(moment)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def as_utc_or_none(moment: str | datetime | pd.Timestamp | None) -> datetime | None:
    """:func:`as_utc`, passing None through (an open end of a window)."""
    return None if moment is None else as_utc(moment)
