"""DriftDetector: calibrated, effect-aware drift verdicts from a mergeable reference summary."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import JsonValue

from silenttax._input import NUMERIC_KINDS, Table, partitions, to_table
from silenttax._merge import same_settings
from silenttax._parse import parse_numbers
from silenttax._state import State, Stateful, settings, with_policy
from silenttax._summary import (
    K_MAX,
    CategoricalSummary,
    NumericSummary,
    Summary,
    merge_summaries,
    summarize_labels,
    summarize_numbers,
)
from silenttax.drift import _stattests as st
from silenttax.drift._compare import SUMMARY_TESTS, wasserstein_sd
from silenttax.errors import InputError, NotFittedError, SchemaMismatchError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = [
    "DEFAULT_CRITICAL",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_TESTS",
    "DriftDetector",
    "DriftDetectorState",
    "check_drift",
]

Family = Literal["continuous", "discrete", "boolean", "categorical", "skipped"]

#: The test each column family gets with ``tests="auto"``.
DEFAULT_TESTS: dict[str, str] = {
    "continuous": "ks",
    "discrete": "chi2",
    "boolean": "proportion_z",
    "categorical": "chi2",
}
#: Smallest material effect per family (WARNING needs significance *and* this).
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "continuous": 0.05,  # Wasserstein / reference sd: the distribution moved 5% of an sd
    "discrete": 0.05,  # total variation: 5% of the mass moved between values
    "categorical": 0.05,  # total variation between level shares
    "boolean": 0.1,  # |Cohen's h|
    "missing": 0.1,  # |Cohen's h| of the null (or non-finite) rate
    "psi": 0.1,
    "jensen_shannon": 0.1,
    "hellinger": 0.1,
    "wasserstein": 0.05,
}
#: Effect at which a significant change is CRITICAL.
DEFAULT_CRITICAL: dict[str, float] = {
    "continuous": 0.5,
    "discrete": 0.25,
    "categorical": 0.25,
    "boolean": 0.5,
    "missing": 0.5,
    "psi": 0.25,
    "jensen_shannon": 0.3,
    "hellinger": 0.3,
    "wasserstein": 0.5,
}
_DISTANCES = frozenset({"psi", "jensen_shannon", "hellinger", "wasserstein"})
_NUMERIC_TESTS = frozenset(
    {
        "ks",
        "wasserstein",
        "psi",
        "jensen_shannon",
        "hellinger",
        "anderson_darling",
        "cramer_von_mises",
        "z_test",
        "chi2",
        "proportion_z",
    }
)
_LABEL_TESTS = frozenset({"chi2", "psi", "jensen_shannon", "hellinger"})
_EFFECT_NAMES = {
    "continuous": "Wasserstein distance in reference sd",
    "discrete": "total variation distance",
    "categorical": "total variation distance",
    "boolean": "|Cohen's h|",
}


_METRICS = {
    "Wasserstein distance in reference sd": "wasserstein_sd",
    "total variation distance": "tv_distance",
    "|Cohen's h|": "cohens_h",
}


def _metric_name(effect_name: str) -> str:
    """The finding's ``metric``: a short name of the effect its ``value`` holds."""
    known = _METRICS.get(effect_name)
    return (
        known
        or "_".join("".join(ch if ch.isalnum() else " " for ch in effect_name).split()).lower()
    )


def adjust(p_values: list[float], method: str) -> list[float]:
    """Holm (family-wise) or Benjamini-Hochberg (``"fdr"``) adjusted p-values.

    Examples:
        >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03], "holm")]
        [0.03, 0.06, 0.06]
        >>> [round(p, 3) for p in adjust([0.01, 0.04, 0.03], "fdr")]
        [0.03, 0.04, 0.04]
    """
    m = len(p_values)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p_values[i]))
            adjusted[i] = running
    elif method == "fdr":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, min(1.0, m * p_values[i] / (rank + 1)))
            adjusted[i] = running
    else:
        adjusted = [min(1.0, p) for p in p_values]
    return adjusted


class DriftDetectorState(State):
    """JSON state of a fitted :class:`DriftDetector`."""

    KIND: ClassVar[str] = "silenttax.drift_detector"

    params: dict[str, JsonValue]
    """Constructor arguments."""
    kinds: dict[str, str]
    """Logical kind of each reference column."""
    reference: dict[str, Summary]
    """Reference summary per column."""
    window: dict[str, Summary] | None = None
    """Current window accumulated with ``update()``, if any."""
    rows: int = 0
    """Reference rows."""
    window_rows: int = 0
    """Rows in the window."""


class _Candidate:
    """One test awaiting the multiple-testing adjustment."""

    __slots__ = ("code", "column", "effect", "effect_name", "family", "kind", "p_value", "result")

    def __init__(
        self,
        column: str,
        kind: str,
        family: str,
        result: st.DriftResult,
        effect: float,
        effect_name: str,
        code: str,
    ) -> None:
        self.code = code
        self.column = column
        self.kind = kind  # "distribution", "null_rate", "non_finite"
        self.family = family
        self.result = result
        self.effect = effect
        self.effect_name = effect_name
        self.p_value = result.p_value


class DriftDetector(Stateful[DriftDetectorState]):
    """Detect input drift column by column, with calibrated and material verdicts.

    ``fit(reference)`` keeps a bounded, exactly mergeable summary per column
    (dyadic histograms for numbers, level counts for labels; see
    :mod:`silenttax.drift`), not the raw data. ``check(current)`` tests every
    column with the test for its family and reports one ``drift.*`` finding
    per column, plus findings for null-rate and non-finite-rate changes,
    missing or retyped columns, and a dataset summary.

    **Calibration.** All p-values of one check (distributions, null rates,
    non-finite rates) form one family, adjusted with Holm (``correction="holm"``,
    the default) or Benjamini-Hochberg (``"fdr"``). With Holm, under no drift the
    chance that any column is reported at WARNING or above is at most ``alpha``.

    **Materiality.** A column is WARNING only when its change is significant
    *and* at least ``min_effect`` on its family's effect scale (see
    :data:`DEFAULT_MIN_EFFECT`): large samples do not turn immaterial changes
    into alarms. Significant but immaterial changes are INFO. CRITICAL when the
    effect reaches :data:`DEFAULT_CRITICAL`.

    ========== ===================================== ================= ============ ==========
    family     columns                               default test      effect       WARNING at
    ========== ===================================== ================= ============ ==========
    continuous numbers with > ``low_cardinality``    ``ks``            Wasserstein  0.05 sd
               distinct values                                         / ref. sd
    discrete   numbers with few distinct values      ``chi2``          total var.   0.05
    boolean    booleans                              ``proportion_z``  abs Cohen h  0.1
    categorical strings, categoricals, mixed         ``chi2``          total var.   0.05
    ========== ===================================== ================= ============ ==========

    Args:
        alpha: Dataset-level false-alarm rate.
        tests: ``"auto"``, one test name for every column it applies to, or a
            dict column -> test (``ks``, ``wasserstein``, ``psi``,
            ``jensen_shannon``, ``hellinger``, ``anderson_darling``,
            ``cramer_von_mises``, ``z_test``, ``chi2``, ``proportion_z``).
        correction: ``"holm"`` (family-wise), ``"fdr"`` or ``"none"``.
        min_effect: Override of the materiality thresholds: one number for all
            families, or a dict keyed by family, test or column name.
        critical_effect: Override of the CRITICAL thresholds, same forms.
        columns: Only these columns (default: all).
        exact: Keep the raw reference values and use scipy's exact tests
            (state grows with the data).
        budget: Buckets per numeric column (the summary stays under ~64 KiB).
        max_levels: Levels kept per label column.
        low_cardinality: Numeric columns with at most this many distinct
            reference values are tested as discrete.
        bins: Bins for ``psi``/``jensen_shannon``/``hellinger`` on numbers.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ref = {"age": rng.normal(40, 10, 20_000), "plan": rng.choice(["a", "b"], 20_000)}
        >>> cur = {"age": rng.normal(50, 10, 20_000), "plan": rng.choice(["a", "b"], 20_000)}
        >>> report = DriftDetector().fit(ref).check(cur)
        >>> [(f.subject, f.severity.value) for f in report.filter(code="drift.numeric")]
        [('age', 'critical')]
        >>> report.filter(subject="plan")[0].severity.value
        'ok'
    """

    STATE: ClassVar[type[State]] = DriftDetectorState

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        tests: str | dict[str, str] = "auto",
        correction: Literal["holm", "fdr", "none"] = "holm",
        min_effect: float | dict[str, float] | None = None,
        critical_effect: float | dict[str, float] | None = None,
        columns: list[str] | None = None,
        exact: bool = False,
        budget: int = 4096,
        max_levels: int = 1000,
        low_cardinality: int = 20,
        bins: int = 10,
    ) -> None:
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
        if correction not in ("holm", "fdr", "none"):
            raise InputError(f"correction must be 'holm', 'fdr' or 'none', got {correction!r}")
        known = _NUMERIC_TESTS | {"auto"}
        chosen = tests.values() if isinstance(tests, dict) else [tests]
        for name in chosen:
            if name not in known:
                raise InputError(f"tests: unknown test {name!r}; choose from {sorted(known)}")
        if budget < 64 or max_levels < 2 or bins < 2 or low_cardinality < 1:
            raise InputError("need budget >= 64, max_levels >= 2, bins >= 2, low_cardinality >= 1")
        self.alpha = alpha
        self.tests = tests
        self.correction = correction
        self.min_effect = min_effect
        self.critical_effect = critical_effect
        self.columns = list(columns) if columns is not None else None
        self.exact = exact
        self.budget = budget
        self.max_levels = max_levels
        self.low_cardinality = low_cardinality
        self.bins = bins
        self._reference: dict[str, NumericSummary | CategoricalSummary] | None = None
        self._kinds: dict[str, str] = {}
        self._rows = 0
        self._window: dict[str, NumericSummary | CategoricalSummary] | None = None
        self._window_rows = 0

    # ----------------------------------------------------------------- fitting
    def _params(self) -> dict[str, JsonValue]:
        return {
            "alpha": self.alpha,
            "tests": self.tests,  # type: ignore[dict-item]
            "correction": self.correction,
            "min_effect": self.min_effect,  # type: ignore[dict-item]
            "critical_effect": self.critical_effect,  # type: ignore[dict-item]
            "columns": self.columns,  # type: ignore[dict-item]
            "exact": self.exact,
            "budget": self.budget,
            "max_levels": self.max_levels,
            "low_cardinality": self.low_cardinality,
            "bins": self.bins,
        }

    def _select(self, table: Table, argument: str) -> list[str]:
        if self.columns is None:
            return list(table.names)
        missing = [c for c in self.columns if c not in table]
        if missing and argument == "reference":
            raise InputError(f"reference: columns {missing} are not in the data")
        return [c for c in self.columns if c in table]

    def _summarize(
        self, values: npt.NDArray[Any], kind: str, like: NumericSummary | CategoricalSummary | None
    ) -> NumericSummary | CategoricalSummary:
        if kind in NUMERIC_KINDS or kind == "datetime":
            if kind == "datetime":
                stamps = values.astype("datetime64[ns]")
                numbers = stamps.astype(np.int64).astype(np.float64)
                numbers[np.isnat(stamps)] = np.nan
            else:
                numbers = values.astype(np.float64, copy=False)
            scale = like.scale if isinstance(like, NumericSummary) else None
            budget = self.budget if like is None else self.budget * 4
            return summarize_numbers(numbers, budget=budget, exact=self.exact, scale=scale)
        return summarize_labels(values, max_levels=self.max_levels)

    def fit(self, reference: Any) -> Self:
        """Summarize ``reference`` (any supported table); replaces an earlier fit.

        A Dask dataframe is summarized one partition at a time (and the
        partition summaries merged exactly), so it never has to fit in memory.
        """
        self._reference, self._kinds, self._rows = None, {}, 0
        self._window, self._window_rows = None, 0
        parts = partitions(reference)
        for part in parts if parts is not None else [reference]:
            self.partial_fit(part)
        if not self._rows:
            self._reference = None
            raise InputError("reference: has no rows")
        return self

    def partial_fit(self, reference: Any) -> Self:
        """Add more reference rows (e.g. one partition or batch at a time)."""
        table = to_table(reference, argument="reference")
        names = self._select(table, "reference")
        if self._reference is None:
            self._reference, self._kinds = {}, {}
        for name in names:
            kind = table.kinds[name]
            summary = self._summarize(table[name], kind, None)
            if name in self._reference:
                if self._kinds[name] != kind and not {self._kinds[name], kind} <= NUMERIC_KINDS:
                    raise SchemaMismatchError(
                        f"reference: column {name!r} was {self._kinds[name]} and is now {kind}"
                    )
                summary = merge_summaries(self._reference[name], summary)
            self._reference[name] = summary
            self._kinds.setdefault(name, kind)
        self._rows += table.n_rows
        return self

    def merge(self, other: DriftDetector) -> Self:
        """Combine with a detector fitted on other partitions (same settings).

        Numeric summaries merge exactly: the result equals fitting on all the
        data at once. Windows accumulated with :meth:`update` are merged too.
        """
        if not isinstance(other, DriftDetector):
            raise InputError(f"can only merge a DriftDetector, got {type(other).__name__}")
        same_settings("DriftDetector", self._params(), other._params())
        if other._reference is None:
            return self
        if self._reference is None:
            self._reference, self._kinds, self._rows = (
                dict(other._reference),
                dict(other._kinds),
                other._rows,
            )
        else:
            for name, summary in other._reference.items():
                mine = self._reference.get(name)
                self._reference[name] = summary if mine is None else merge_summaries(mine, summary)
                self._kinds.setdefault(name, other._kinds[name])
            self._rows += other._rows
        if other._window is not None:
            self._window = self._merge_window(self._window, other._window)
            self._window_rows += other._window_rows
        return self

    @staticmethod
    def _merge_window(
        mine: dict[str, NumericSummary | CategoricalSummary] | None,
        theirs: dict[str, NumericSummary | CategoricalSummary],
    ) -> dict[str, NumericSummary | CategoricalSummary]:
        if mine is None:
            return dict(theirs)
        out = dict(mine)
        for name, summary in theirs.items():
            out[name] = summary if name not in out else merge_summaries(out[name], summary)
        return out

    def update(self, batch: Any) -> Self:
        """Add rows to the current window (for streaming use); check it with ``check()``."""
        reference = self._require()
        table = to_table(batch, argument="batch")
        window = self._window or {}
        for name in reference:
            if name not in table:
                continue
            summary, _ = self._summarize_current(table, name)
            window[name] = summary if name not in window else merge_summaries(window[name], summary)
        self._window = window
        self._window_rows += table.n_rows
        return self

    def _summarize_current(
        self, table: Table, name: str
    ) -> tuple[NumericSummary | CategoricalSummary, dict[str, Any] | None]:
        """Column ``name`` of current data, brought to the reference's kind and grid."""
        values, how = self._coerce(table[name], table.kinds[name], self._kinds[name])
        kind = self._target_kind(table.kinds[name], self._kinds[name])
        return self._summarize(values, kind, self._require()[name]), how

    def reset_window(self) -> None:
        """Forget the rows added with :meth:`update`."""
        self._window, self._window_rows = None, 0

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return self._reference is not None

    @property
    def reference(self) -> dict[str, NumericSummary | CategoricalSummary]:
        """The reference summary per column (read-only view)."""
        return dict(self._require())

    def _require(self) -> dict[str, NumericSummary | CategoricalSummary]:
        if self._reference is None:
            raise NotFittedError("DriftDetector is not fitted: call fit(reference) first")
        return self._reference

    # ------------------------------------------------------------------- state
    def state(self) -> DriftDetectorState:
        """JSON-serializable state (settings, reference summaries, window)."""
        return DriftDetectorState(
            params=self._params(),
            kinds=self._kinds,
            reference=self._require(),
            window=self._window,
            rows=self._rows,
            window_rows=self._window_rows,
        )

    @classmethod
    def from_state(cls, state: DriftDetectorState) -> Self:
        """Rebuild a detector from :meth:`state`."""
        detector = cls(**settings(cls, state.params))
        detector._reference = dict(state.reference)
        detector._kinds = dict(state.kinds)
        detector._rows = state.rows
        detector._window = dict(state.window) if state.window is not None else None
        detector._window_rows = state.window_rows
        return detector

    # ------------------------------------------------------------------- check
    @staticmethod
    def _target_kind(current: str, reference: str) -> str:
        if reference in NUMERIC_KINDS or reference == "datetime":
            return reference if current in NUMERIC_KINDS or current == reference else "float"
        return reference

    def _coerce(
        self, values: npt.NDArray[Any], current: str, reference: str
    ) -> tuple[npt.NDArray[Any], dict[str, Any] | None]:
        """Bring ``values`` to the reference's kind; describe what had to be done."""
        ref_numeric = reference in NUMERIC_KINDS
        cur_numeric = current in NUMERIC_KINDS
        if ref_numeric == cur_numeric and (reference == "datetime") == (current == "datetime"):
            return values, None
        if ref_numeric and not cur_numeric:
            parsed = parse_numbers(values)
            present = int(sum(v is not None for v in values.tolist()))
            share = parsed.parsed / present if present else 0.0
            return parsed.values, {
                "from": current,
                "to": reference,
                "parsed_share": share,
                "padded": parsed.padded,
                "decimal_comma": parsed.decimal_comma,
                "thousands": parsed.thousands,
                "example": next(iter(parsed.examples.values()), None),
            }
        if not ref_numeric and cur_numeric:
            labels = np.array(
                [None if math.isnan(v) else f"{v:g}" for v in values.tolist()], dtype=object
            )
            return labels, {"from": current, "to": reference, "parsed_share": 1.0}
        return values, {"from": current, "to": reference, "parsed_share": 0.0}

    def _family(self, name: str) -> Family:
        kind = self._kinds[name]
        summary = self._require()[name]
        if kind == "datetime":
            return "skipped"
        if kind == "bool":
            return "boolean"
        if isinstance(summary, CategoricalSummary):
            return "categorical"
        if summary.scale == K_MAX and summary.distinct <= self.low_cardinality:
            return "discrete"
        return "continuous"

    def _test_for(self, name: str, family: Family) -> str:
        chosen = self.tests.get(name, "auto") if isinstance(self.tests, dict) else self.tests
        if chosen == "auto":
            return DEFAULT_TESTS[family]
        if family == "categorical" and chosen not in _LABEL_TESTS:
            return DEFAULT_TESTS[family]
        if family == "boolean" and chosen not in {"proportion_z", "chi2"}:
            return DEFAULT_TESTS[family]
        return chosen

    def _threshold(
        self,
        override: float | dict[str, float] | None,
        defaults: dict[str, float],
        name: str,
        key: str,
    ) -> float:
        if isinstance(override, int | float):
            return float(override)
        if isinstance(override, dict):
            for candidate in (name, key):
                if candidate in override:
                    return float(override[candidate])
        return defaults[key]

    def check(self, current: Any = None) -> Report:
        """Test ``current`` (or the window built with :meth:`update`) against the reference.

        The same as :func:`check_drift` with this detector as the reference.

        Raises:
            NotFittedError: before :meth:`fit`.
            InputError: ``current`` has no rows (or there is no window to check).
        """
        self._require()
        return self._judge_data(current) if current is not None else self._judge_window()

    def _judge_window(self) -> Report:
        self._require()
        if self._window is None:
            raise InputError("current: nothing to check; pass data or call update() first")
        return self._judge(dict(self._window), self._window_rows, set(self._window), {})

    def _judge_data(self, current: Any) -> Report:
        reference = self._require()
        table = to_table(current, argument="current")
        if table.n_rows == 0:
            raise InputError("current: has no rows")
        summaries: dict[str, NumericSummary | CategoricalSummary] = {}
        coercions: dict[str, dict[str, Any]] = {}
        for name in reference:
            if name not in table:
                continue
            summaries[name], how = self._summarize_current(table, name)
            if how is not None:
                coercions[name] = how
        return self._judge(summaries, table.n_rows, set(table.names), coercions)

    def _judge_summaries(self, current: DriftDetectorState) -> Report:
        """Judge another detector's reference summaries (of the current data) as the window."""
        summaries: dict[str, NumericSummary | CategoricalSummary] = {}
        retyped: dict[str, dict[str, Any]] = {}
        for name, summary in current.reference.items():
            mine = self._kinds.get(name)
            if mine is None or _same_family(mine, current.kinds[name]):
                summaries[name] = summary
            else:
                retyped[name] = {"from": current.kinds[name], "to": mine}
        report = self._judge(summaries, current.rows, set(current.reference), {})
        if not retyped:
            return report
        changed = [
            make_finding(
                "drift.type_change",
                severity=Severity.CRITICAL,
                subject=name,
                message=(
                    f"'{name}' was summarised as {how['from']} instead of {how['to']}: not "
                    "tested (summaries of another kind cannot be converted; check the raw "
                    "data to test it after conversion)"
                ),
                evidence=how,
                detector="DriftDetector",
            )
            for name, how in sorted(retyped.items())
        ]
        kept = [
            f for f in report if not (f.code == "drift.missing_column" and f.subject in retyped)
        ]
        return Report(findings=kept + changed, source=report.source, context=report.context)

    def _judge(
        self,
        summaries: dict[str, NumericSummary | CategoricalSummary],
        n_rows: int,
        present: set[str],
        coercions: dict[str, dict[str, Any]],
    ) -> Report:
        reference = self._require()
        findings: list[Finding] = []
        candidates: list[_Candidate] = []
        for name, ref in reference.items():
            family = self._family(name)
            if name not in present or name not in summaries:
                findings.append(self._missing(name))
                continue
            cur = summaries[name]
            if name in coercions:
                findings.append(self._retyped(name, coercions[name]))
            if family == "skipped":
                findings.append(
                    make_finding(
                        "drift.skipped",
                        severity=Severity.INFO,
                        subject=name,
                        message=f"'{name}' is a {self._kinds[name]} column: not tested for drift",
                        detector="DriftDetector",
                    )
                )
                continue
            if cur.count == 0:
                findings.append(self._all_null(name, ref, cur))
                continue
            if ref.count == 0:
                findings.append(
                    make_finding(
                        "drift.all_null",
                        severity=Severity.WARNING,
                        subject=name,
                        message=(
                            f"'{name}' was entirely missing in the reference and now has values"
                        ),
                        metric="non_null_rows",
                        value=float(cur.count),
                        detector="DriftDetector",
                    )
                )
                continue
            candidates.append(self._distribution(name, family, ref, cur))
            if ref.nulls or cur.nulls:
                candidates.append(
                    self._rate(name, "null_rate", ref.nulls, ref.rows, cur.nulls, cur.rows)
                )
            if isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary):
                ref_inf, cur_inf = ref.pos_inf + ref.neg_inf, cur.pos_inf + cur.neg_inf
                if ref_inf or cur_inf:
                    candidates.append(
                        self._rate(name, "non_finite", ref_inf, ref.rows, cur_inf, cur.rows)
                    )
        findings.extend(self._decide(candidates))
        findings.insert(0, self._dataset(findings, n_rows))
        return Report(
            findings=findings,
            source="DriftDetector.check",
            context={
                "alpha": self.alpha,
                "correction": self.correction,
                "reference_rows": self._rows,
                "current_rows": n_rows,
                "columns": len(reference),
                "tests": len(candidates),
            },
        )

    # ------------------------------------------------------------- test runner
    def _distribution(
        self,
        name: str,
        family: Family,
        ref: NumericSummary | CategoricalSummary,
        cur: NumericSummary | CategoricalSummary,
    ) -> _Candidate:
        test = self._test_for(name, family)
        if isinstance(ref, CategoricalSummary) and isinstance(cur, CategoricalSummary):
            key = "chi2_labels" if test == "chi2" else f"{test}_labels"
            result = SUMMARY_TESTS[key][1](ref, cur)
            effect_key = test if test in _DISTANCES else family
            effect_name = "total variation distance" if test == "chi2" else result.effect
            return _Candidate(
                name,
                "distribution",
                effect_key,
                result,
                abs(result.effect_size),
                effect_name,
                "drift.categorical",
            )
        assert isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary)
        applies, fn = SUMMARY_TESTS[test]
        result = fn(ref, cur, self.bins) if applies == "numeric_binned" else fn(ref, cur)
        code = "drift.boolean" if family == "boolean" else "drift.numeric"
        if test in _DISTANCES:
            return _Candidate(
                name, "distribution", test, result, abs(result.effect_size), result.effect, code
            )
        if family == "continuous":
            effect = wasserstein_sd(ref, cur)
            return _Candidate(
                name, "distribution", family, result, effect, _EFFECT_NAMES[family], code
            )
        return _Candidate(
            name,
            "distribution",
            family,
            result,
            abs(result.effect_size),
            _EFFECT_NAMES.get(family, result.effect),
            code,
        )

    def _rate(
        self, name: str, what: str, k_ref: int, n_ref: int, k_cur: int, n_cur: int
    ) -> _Candidate:
        result = st.proportion_from_counts(k_ref, n_ref, k_cur, n_cur)
        code = "drift.null_rate" if what == "null_rate" else "drift.non_finite"
        return _Candidate(
            name, what, "missing", result, abs(result.effect_size), "|Cohen's h|", code
        )

    def _decide(self, candidates: list[_Candidate]) -> list[Finding]:
        tested = [c for c in candidates if c.p_value is not None]
        adjusted = adjust(
            [float(c.p_value) for c in tested if c.p_value is not None], self.correction
        )
        adj = {id(c): a for c, a in zip(tested, adjusted, strict=True)}
        findings = []
        for c in candidates:
            floor = self._threshold(self.min_effect, DEFAULT_MIN_EFFECT, c.column, c.family)
            critical = self._threshold(self.critical_effect, DEFAULT_CRITICAL, c.column, c.family)
            p_adj = adj.get(id(c))
            significant = p_adj is None or p_adj < self.alpha
            if significant and c.effect >= critical:
                severity = Severity.CRITICAL
            elif significant and c.effect >= floor:
                severity = Severity.WARNING
            elif significant and p_adj is not None:
                severity = Severity.INFO
            else:
                severity = Severity.OK
            findings.append(self._finding(c, severity, p_adj, floor))
        return findings

    def _finding(
        self, c: _Candidate, severity: Severity, p_adj: float | None, floor: float
    ) -> Finding:
        r = c.result
        code = c.code
        p_text = ""
        if r.p_value is not None:
            p_text = f" (p = {r.p_value:.2g}"
            if p_adj is not None and self.correction != "none":
                p_text += f", {self.correction}-adjusted {p_adj:.2g}"
            p_text += ")"
        if c.kind == "distribution":
            what = f"{r.method} {r.statistic:.4g}{p_text}; effect {c.effect:.3g} ({c.effect_name})"
        else:
            rate_r, rate_c = r.details["rate_reference"], r.details["rate_current"]
            label = "missing" if c.kind == "null_rate" else "non-finite"
            what = f"{label} rate {rate_r:.2%} -> {rate_c:.2%}{p_text}"
        verdict = {
            Severity.OK: "no drift",
            Severity.INFO: f"detectable but below the {floor:g} materiality threshold",
            Severity.WARNING: "drifted",
            Severity.CRITICAL: "drifted strongly",
        }[severity]
        recommendation = None
        if severity >= Severity.WARNING:
            recommendation = (
                f"Check the source of '{c.column}' (pipeline change, upstream schema, new "
                "traffic); retrain or recalibrate if the shift is real."
                if c.kind == "distribution"
                else f"Find why '{c.column}' is "
                f"{'missing' if c.kind == 'null_rate' else 'non-finite'} more often; imputation "
                "hides it from the model's metrics."
            )
        adjusted = p_adj is not None and self.correction != "none"
        evidence: dict[str, Any] = {
            "test": r.method,
            "statistic": r.statistic,
            "p_value_raw": r.p_value,
            "p_value_adjustment": self.correction if adjusted else "none",
            "n_reference": r.n_reference,
            "n_current": r.n_current,
            "p_value_adjusted": p_adj,
            "effect": c.effect_name,
            "test_effect": r.effect_size,
            **r.details,
        }
        # value and threshold are like for like (the effect and its materiality floor);
        # p_value is the one the verdict used (adjusted across the check's tests)
        return make_finding(
            code,
            severity=severity,
            subject=c.column,
            message=f"'{c.column}': {what}: {verdict}",
            metric=_metric_name(c.effect_name),
            value=c.effect,
            threshold=floor,
            p_value=p_adj if adjusted else r.p_value,
            effect_size=c.effect,
            evidence=evidence,
            recommendation=recommendation,
            detector="DriftDetector",
        )

    def _missing(self, name: str) -> Finding:
        return make_finding(
            "drift.missing_column",
            severity=Severity.CRITICAL,
            subject=name,
            message=f"column '{name}' is in the reference but missing from the current data",
            recommendation=(
                "Restore the column upstream; the model is receiving a default or failing."
            ),
            detector="DriftDetector",
        )

    def _retyped(self, name: str, how: dict[str, Any]) -> Finding:
        share = how["parsed_share"]
        if how["from"] in NUMERIC_KINDS or share >= 0.99:
            severity = Severity.WARNING
            message = (
                f"'{name}' arrived as {how['from']} instead of {how['to']}; "
                f"{share:.0%} of values could be read as {how['to']}, tested after conversion"
            )
        else:
            severity = Severity.CRITICAL
            message = (
                f"'{name}' arrived as {how['from']} instead of {how['to']}; only {share:.0%} of "
                "values could be converted"
            )
        if how.get("example"):
            message += f" (e.g. {how['example']!r})"
        return make_finding(
            "drift.type_change",
            severity=severity,
            subject=name,
            message=message,
            metric="parsed_share",
            value=share,
            evidence={
                k: v for k, v in how.items() if isinstance(v, str | int | float | type(None))
            },
            recommendation=(
                "Fix the type upstream: silenttax.features.FeatureHealth names the decay."
            ),
            detector="DriftDetector",
        )

    def _all_null(
        self,
        name: str,
        ref: NumericSummary | CategoricalSummary,
        cur: NumericSummary | CategoricalSummary,
    ) -> Finding:
        return make_finding(
            "drift.all_null",
            severity=Severity.CRITICAL,
            subject=name,
            message=(
                f"'{name}' has no usable value in the current data ({cur.rows} rows, all missing "
                f"or non-finite; reference null rate {ref.nulls / max(ref.rows, 1):.1%})"
            ),
            metric="usable_rows",
            value=0.0,
            baseline=float(ref.count),
            recommendation="The feature is gone: the model sees only imputed values.",
            detector="DriftDetector",
        )

    def _dataset(self, findings: list[Finding], n_rows: int) -> Finding:
        columns = [f for f in findings if f.code != "drift.dataset"]
        drifted = sorted({f.subject for f in columns if f.severity >= Severity.WARNING})
        worst = max((f.severity for f in columns), default=Severity.OK)
        total = len(self._require())
        message = (
            f"{len(drifted)} of {total} columns drifted"
            + (f": {', '.join(drifted[:8])}{' ...' if len(drifted) > 8 else ''}" if drifted else "")
            + f" ({n_rows} current rows vs {self._rows} reference rows, {self.correction} at "
            f"alpha {self.alpha:g})"
        )
        return make_finding(
            "drift.dataset",
            severity=worst,
            subject="dataset",
            message=message,
            metric="drifted_columns",
            value=float(len(drifted)),
            threshold=0.0,
            evidence={"drifted": drifted, "columns": total},
            detector="DriftDetector",
        )


def _same_family(a: str, b: str) -> bool:
    """Whether summaries of two column kinds compare (numbers with numbers)."""
    return a == b or (a in NUMERIC_KINDS and b in NUMERIC_KINDS)


def check_drift(
    current: Any,
    reference: DriftDetector | DriftDetectorState | None = None,
    *,
    alpha: float | None = None,
    correction: Literal["holm", "fdr", "none"] | None = None,
    min_effect: float | dict[str, float] | None = None,
    critical_effect: float | dict[str, float] | None = None,
) -> Report:
    """Judge current data, or its snapshot, against a reference under a policy (pure).

    ``current`` is one of:

    - data (any dataframe or dict of columns), summarised on the reference's grid;
    - a detector (or its state) fitted on the current data with the same settings,
      for instance the merge of every partition's or replica's; its reference
      summaries are what is judged;
    - with ``reference=None``, a fitted detector (or state) whose :meth:`~DriftDetector.update`
      window is judged against its own reference.

    The policy defaults to the reference detector's settings; a keyword given
    here replaces it. ``DriftDetector.check`` is this function with the
    detector as the reference.

    Args:
        current: Data, a detector or a detector's state.
        reference: The fitted reference detector or its state.
        alpha: Dataset-level false-alarm rate.
        correction: ``"holm"``, ``"fdr"`` or ``"none"``.
        min_effect: Materiality threshold(s), as for :class:`DriftDetector`.
        critical_effect: CRITICAL threshold(s), same forms.

    Raises:
        InputError: bad arguments or a policy value out of range.
        NotFittedError: the reference is not fitted.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> settings = {"columns": ["age"]}
        >>> reference = DriftDetector(**settings).fit({"age": rng.normal(40, 10, 20_000)})
        >>> today = DriftDetector(**settings).fit({"age": rng.normal(41, 10, 20_000)})
        >>> check_drift(today.state(), reference.state()).filter(code="drift.numeric")[0].severity
        <Severity.WARNING: 'warning'>
        >>> check_drift(today.state(), reference.state(), min_effect=0.2)[1].severity
        <Severity.INFO: 'info'>
    """
    policy = {
        "alpha": alpha,
        "correction": correction,
        "min_effect": min_effect,
        "critical_effect": critical_effect,
    }
    if reference is None:
        if not isinstance(current, DriftDetector | DriftDetectorState):
            raise InputError(
                "reference: needed unless current is a detector (or its state) with a window"
            )
        state = current.state() if isinstance(current, DriftDetector) else current
        return with_policy(DriftDetector, state, policy)._judge_window()
    if isinstance(reference, DriftDetector):
        reference = reference.state()
    if not isinstance(reference, DriftDetectorState):
        raise InputError(
            f"reference must be a DriftDetector or its state, got {type(reference).__name__}"
        )
    judge = with_policy(DriftDetector, reference, policy)
    if isinstance(current, DriftDetector):
        current = current.state()
    if isinstance(current, DriftDetectorState):
        return judge._judge_summaries(current)
    return judge._judge_data(current)
