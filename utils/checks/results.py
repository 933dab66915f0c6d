"""What every model check returns, the thresholds they use (defaults in one place), and the report of a run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class CheckThresholds:
    """Every threshold of the model checks; override one with ``CheckThresholds(invariance_epsilon=0.02)``.

    Why each default is what it is: ``docs/model-checks.md``.
    """

    #: Share of the clear-cut applicants (``data/model_checks.csv``) that must get their expected decision.
    min_functionality_share: float = 1.0
    #: A change of probability of ``Risk`` up to this counts as "no change" (invariance, directional checks).
    invariance_epsilon: float = 0.05
    #: Largest share of applicants whose probability moves by more than the epsilon when an irrelevant field changes.
    invariance_max_share: float = 0.05
    #: Factor applied to the amount or duration of a loan in the directional checks (1.5: 50 % more).
    directional_factor: float = 1.5
    #: Largest share of applicants whose probability of ``Risk`` falls by more than the epsilon for a larger loan.
    directional_max_share: float = 0.05
    #: Smallest mean rise of the probability of ``Risk`` for a larger loan: the direction must show, not just hold.
    directional_min_mean_rise: float = 0.005
    #: Relative change of every numeric input in the robustness check (0.05: ±5 %).
    robustness_change: float = 0.05
    #: Largest share of decisions that flip under those changes.
    robustness_max_flip_share: float = 0.10
    #: Largest fall of ROC AUC in any protected group or slice, against the champion.
    regression_max_auc_drop: float = 0.05
    #: Largest fall of the favourable (``No Risk``) rate in any protected group or slice, against the champion.
    regression_max_favourable_drop: float = 0.10
    #: Fewest rows a protected group or a ``LoanPurpose`` slice needs to be compared (else it is listed, not judged).
    regression_min_rows: int = 200
    #: Share of the loss curve, at its end, that must decline or be flat.
    convergence_tail_share: float = 0.25
    #: Largest rise of the validation loss across that part, relative to its mean (the fitted line's rise).
    convergence_max_rise: float = 0.05

    def __post_init__(self):
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"threshold {item.name} must be a number of at least 0, got {value!r}")
        for name in ("min_functionality_share", "convergence_tail_share"):
            if getattr(self, name) > 1:
                raise ValueError(f"threshold {name} is a share: at most 1, got {getattr(self, name)!r}")
        if self.directional_factor <= 1:
            raise ValueError(f"threshold directional_factor must be above 1, got {self.directional_factor!r}")

    @classmethod
    def parse(cls, assignments: list[str]) -> CheckThresholds:
        """Thresholds from ``name=value`` texts (the command line's ``--threshold``), the rest at their defaults.

        Raises:
            ValueError: an unknown name or a value that is not a number.
        """
        known = {item.name: item.type for item in fields(cls)}
        values: dict[str, float] = {}
        for text in assignments:
            name, _, value = text.partition("=")
            if name not in known:
                raise ValueError(f"unknown threshold {name!r}; expected one of {', '.join(known)}")
            try:
                values[name] = int(value) if known[name] == "int" else float(value)
            except ValueError:
                raise ValueError(f"threshold {name}: {value!r} is not a number") from None
        return cls(**values)


#: The documented defaults.
DEFAULT_THRESHOLDS = CheckThresholds()


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one model check.

    ``threshold`` and ``value`` are compared by ``operator`` (``"<="`` or ``">="``); ``status`` is ``passed``,
    ``failed`` or ``skipped`` (the check could not be judged, say why in ``details["reason"]``).
    """

    name: str
    measures: str
    threshold: float | None
    operator: str
    value: float | None
    status: str
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def as_dict(self) -> dict:
        """The result as plain JSON-ready values (numpy numbers, NaN and frames converted)."""
        return _plain(asdict(self))


def judged(name: str, measures: str, value: float, operator: str, threshold: float, **details) -> CheckResult:
    """A result whose status follows from comparing ``value`` with ``threshold`` (NaN fails)."""
    value = float(value)
    holds = value <= threshold if operator == "<=" else value >= threshold
    status = PASSED if holds and math.isfinite(value) else FAILED
    return CheckResult(name, measures, threshold, operator, value, status, details)


def skipped(name: str, measures: str, reason: str, **details) -> CheckResult:
    """A result that could not be judged, and why."""
    return CheckResult(name, measures, None, "", None, SKIPPED, {"reason": reason, **details})


def failed(name: str, measures: str, reason: str, **details) -> CheckResult:
    """A result that failed without a measured value (the model could not be loaded or scored), and why."""
    return CheckResult(name, measures, None, "", None, FAILED, {"reason": reason, **details})


@dataclass(frozen=True)
class CheckReport:
    """The results of the model checks on one model: ``passed`` unless one of them failed."""

    model_id: str
    champion_id: str | None
    test_rows: int
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return not any(result.failed for result in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if result.failed]

    def result(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        for item in self.results:
            if item.name == name:
                return item
        raise KeyError(f"no check named {name!r}; the checks are {', '.join(r.name for r in self.results)}")

    def table(self) -> pd.DataFrame:
        """One row per check: its name, threshold, measured value and result (the reason where it has one)."""
        rows = [
            {
                "check": r.name,
                "threshold": f"{r.operator} {r.threshold:g}" if r.threshold is not None else "",
                "value": round(r.value, 4) if r.value is not None else None,
                "result": r.status,
                "note": r.details.get("reason", ""),
            }
            for r in self.results
        ]
        return pd.DataFrame(rows, columns=["check", "threshold", "value", "result", "note"])

    def as_dict(self) -> dict:
        """The report as plain JSON-ready values."""
        return {
            "model_id": self.model_id,
            "champion_id": self.champion_id,
            "test_rows": self.test_rows,
            "passed": self.passed,
            "results": [result.as_dict() for result in self.results],
        }


def _plain(value):
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, pd.DataFrame):
        return _plain(value.to_dict(orient="records"))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
