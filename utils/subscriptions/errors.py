"""The error of a subscription that cannot be made or found."""

from __future__ import annotations


class SubscriptionError(ValueError):
    """A subscription that cannot be made or found: the message names the field at fault."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.field = field
        self.status = status
