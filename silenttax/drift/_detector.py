"""DriftDetector: calibrated, effect-aware drift verdicts from a mergeable reference summary."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections import Counter
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, JsonValue

from silenttax._input import NUMERIC_KINDS, TEXT_KINDS, Table, partitions, to_table
from silenttax._merge import same_settings
from silenttax._parse import parse_numbers
from silenttax._state import State, Stateful, settings, with_policy
from silenttax._summary import (
    K_MAX,
    CategoricalSummary,
    NumericSummary,
    Summary,
    histogram,
    merge_summaries,
    summarize_labels,
    summarize_numbers,
)
from silenttax.drift import _stattests as st
from silenttax.drift._compare import SUMMARY_TESTS, wasserstein_sd
from silenttax.drift._findings import (
    all_null,
    dataset,
    missing,
    retyped,
    summarised_as,
    test_finding,
)
from silenttax.drift._policy import (
    _DISTANCES,
    _EFFECT_NAMES,
    _LABEL_TESTS,
    _NUMERIC_TESTS,
    DEFAULT_TESTS,
    Family,
    _Candidate,
    decide,
)
from silenttax.errors import InputError, NotFittedError, SchemaMismatchError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = [
    "DriftDetector",
    "DriftDetectorState",
    "DriftWindow",
    "check_drift",
]


class DriftWindow(State):
    """Current data summarised on a fitted reference's grid: mergeable, then judged.

    What :meth:`DriftDetector.window` returns for one batch, partition or
    replica; windows of the same detector merge exactly (``a.merge(b)``), and
    ``detector.check(window)`` judges the merged window with the findings of
    checking all the data at once. Small (the summaries, not the rows), plain
    JSON: what a partition sends back in a scale-out check.
    """

    KIND: ClassVar[str] = "silenttax.drift_window"

    params: dict[str, JsonValue]
    """The settings of the detector whose grid this is (must match to merge or judge)."""
    summaries: dict[str, Summary] = Field(default_factory=dict)
    """Per reference column: the current values' summary."""
    rows: int = 0
    """Rows summarised."""
    columns: list[str] = Field(default_factory=list)
    """Columns the data had (reference columns or not)."""
    coercions: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)
    """Per column: how its values were brought to the reference's kind."""

    def merge(self, other: DriftWindow) -> DriftWindow:
        """Both windows as one (a new snapshot; counts add up exactly).

        Raises:
            InputError: ``other`` is not a DriftWindow or was made with other settings.
        """
        if not isinstance(other, DriftWindow):
            raise InputError(f"can only merge a DriftWindow, got {type(other).__name__}")
        same_settings("DriftWindow", self.params, other.params)
        summaries = dict(self.summaries)
        for name, summary in other.summaries.items():
            mine = summaries.get(name)
            summaries[name] = summary if mine is None else merge_summaries(mine, summary)
        coercions: dict[str, dict[str, Any]] = {k: dict(v) for k, v in self.coercions.items()}
        for name, how in other.coercions.items():
            mine_how = coercions.get(name)
            coercions[name] = dict(how) if mine_how is None else _merge_how(mine_how, dict(how))
        return DriftWindow(
            params=self.params,
            summaries=summaries,
            rows=self.rows + other.rows,
            columns=sorted(set(self.columns) | set(other.columns)),
            coercions=coercions,
        )


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
    window_columns: list[str] = Field(default_factory=list)
    """Columns the window's data had (reference columns or not)."""
    window_coercions: dict[str, dict[str, JsonValue]] = Field(default_factory=dict)
    """Per column: how the window's values were brought to the reference's kind."""


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
        self._window: DriftWindow | None = None

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
        self,
        values: npt.NDArray[Any] | Counter[Any],
        kind: str,
        like: NumericSummary | CategoricalSummary | None,
    ) -> NumericSummary | CategoricalSummary:
        if isinstance(values, Counter):  # a label column counted by its dataframe library
            return summarize_labels(values, max_levels=self.max_levels)
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
        self.reset_window()
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
            summary = self._summarize(table.values_or_counts(name), kind, None)
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
            for name, kind in other._kinds.items():
                was = self._kinds.get(name, kind)
                if was != kind and not {was, kind} <= NUMERIC_KINDS:
                    raise SchemaMismatchError(
                        f"cannot merge: column {name!r} is {was} in one and {kind} in the other"
                    )
            for name, summary in other._reference.items():
                mine = self._reference.get(name)
                self._reference[name] = summary if mine is None else merge_summaries(mine, summary)
                kind = other._kinds[name]
                was = self._kinds.setdefault(name, kind)
                if was != kind:  # numbers of two kinds: the wider one (bool < int < float)
                    self._kinds[name] = max(was, kind, key=_WIDTH.__getitem__)
            self._rows += other._rows
        if other._window is not None:
            self._add_window(other._window)
        return self

    def _add_window(self, window: DriftWindow) -> None:
        self._window = window if self._window is None else self._window.merge(window)

    def window(self, current: Any) -> DriftWindow:
        """``current`` summarised on this reference's grid, as a mergeable snapshot (for a
        partition, a batch or a replica); ``check(window)`` judges it.

        Examples:
            >>> import numpy as np
            >>> rng = np.random.default_rng(0)
            >>> detector = DriftDetector().fit({"x": rng.normal(0, 1, 4000)})
            >>> a = detector.window({"x": rng.normal(1, 1, 2000)})
            >>> b = detector.window({"x": rng.normal(1, 1, 2000)})
            >>> detector.check(a.merge(b)).filter(code="drift.numeric")[0].severity.value
            'critical'
        """
        return self._make_window(to_table(current, argument="current"))

    def _make_window(self, table: Table) -> DriftWindow:
        summaries, rows, columns, how = self._current(table)
        return DriftWindow(
            params=self._params(),
            summaries=summaries,
            rows=rows,
            columns=sorted(columns),
            coercions=how,
        )

    def update(self, batch: Any) -> Self:
        """Add rows to the current window (for streaming use, or one partition at a time);
        check it with ``check()``. A window merges exactly: checking the merged window
        of several batches gives the findings of checking them concatenated."""
        self._add_window(self._make_window(to_table(batch, argument="batch")))
        return self

    def _current(
        self, table: Table
    ) -> tuple[
        dict[str, NumericSummary | CategoricalSummary], int, set[str], dict[str, dict[str, Any]]
    ]:
        """Summaries of current data on the reference's grid, its rows and columns, and
        how each column had to be read."""
        reference = self._require()
        summaries: dict[str, NumericSummary | CategoricalSummary] = {}
        coercions: dict[str, dict[str, Any]] = {}
        for name in reference:
            if name not in table:
                continue
            summaries[name], how = self._summarize_current(table, name)
            if how is not None:
                coercions[name] = how
        return summaries, table.n_rows, set(table.names), coercions

    def _summarize_current(
        self, table: Table, name: str
    ) -> tuple[NumericSummary | CategoricalSummary, dict[str, Any] | None]:
        """Column ``name`` of current data, brought to the reference's kind and grid."""
        if table.kinds[name] in TEXT_KINDS and self._kinds[name] in TEXT_KINDS | {"object"}:
            return self._summarize(table.level_counts(name), "string", None), None
        kind, unreadable = table.kinds[name], False
        try:
            raw = table[name]
        except InputError:  # nested values (lists, dicts): none reads as the reference's kind
            raw, kind, unreadable = np.full(table.n_rows, None, dtype=object), "object", True
        values, how = self._coerce(raw, kind, self._kinds[name])
        if unreadable:
            how = {"from": "nested values", "to": self._kinds[name], "parsed_share": 0.0}
        target = self._target_kind(kind, self._kinds[name])
        return self._summarize(values, target, self._require()[name]), how

    def reset_window(self) -> None:
        """Forget the rows added with :meth:`update`."""
        self._window = None

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
        w = self._window
        return DriftDetectorState(
            params=self._params(),
            kinds=self._kinds,
            reference=self._require(),
            window=None if w is None else w.summaries,
            rows=self._rows,
            window_rows=0 if w is None else w.rows,
            window_columns=[] if w is None else w.columns,
            window_coercions={} if w is None else w.coercions,
        )

    @classmethod
    def from_state(cls, state: DriftDetectorState) -> Self:
        """Rebuild a detector from :meth:`state`."""
        detector = cls(**settings(cls, state.params))
        detector._reference = dict(state.reference)
        detector._kinds = dict(state.kinds)
        detector._rows = state.rows
        if state.window is not None:
            detector._window = DriftWindow(
                params=detector._params(),
                summaries=state.window,
                rows=state.window_rows,
                # saved before columns were kept: the window's own columns
                columns=state.window_columns or sorted(state.window),
                coercions=state.window_coercions,
            )
        return detector

    # ------------------------------------------------------------------- check
    @staticmethod
    def _target_kind(current: str, reference: str) -> str:
        if reference == "datetime":
            return reference
        if reference in NUMERIC_KINDS:
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
        if reference == "datetime":  # read as dates where they are (NaT elsewhere)
            stamps = _as_datetimes(values)
            present = int(sum(v is not None and v == v for v in values.tolist()))
            share = int((~np.isnat(stamps)).sum()) / present if present else 0.0
            return stamps, {"from": current, "to": reference, "parsed_share": share}
        if current == "datetime":  # dates are neither numbers nor the reference's labels
            stamps = values.astype("datetime64[ns]")
            if ref_numeric:
                return np.full(values.size, np.nan), {
                    "from": current, "to": reference, "parsed_share": 0.0,
                }  # fmt: skip
            labels = np.array(np.datetime_as_string(stamps), dtype=object)
            labels[np.isnat(stamps)] = None
            return labels, {"from": current, "to": reference, "parsed_share": 0.0}
        if ref_numeric and not cur_numeric:
            parsed = parse_numbers(values)
            present = int(sum(v is not None for v in values.tolist()))
            share = parsed.parsed / present if present else 0.0
            return parsed.values, {
                "from": current,
                "to": reference,
                "parsed_share": share,
                "present": present,
                "parsed": parsed.parsed,
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
        # codes repeat: few distinct values *and* each seen about twice or more; a small
        # sample of measurements (every value distinct) stays continuous
        if (
            summary.scale == K_MAX
            and summary.distinct <= self.low_cardinality
            and summary.count >= 2 * summary.distinct
        ):
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

    def check(self, current: Any = None) -> Report:
        """Test ``current`` — data, or a :class:`DriftWindow` of it — (or the window built
        with :meth:`update`) against the reference.

        The same as :func:`check_drift` with this detector as the reference.

        Raises:
            NotFittedError: before :meth:`fit`.
            InputError: ``current`` has no rows (or there is no window to check).
        """
        self._require()
        if isinstance(current, DriftWindow):
            return self._judge_drift_window(current)
        return self._judge_data(current) if current is not None else self._judge_window()

    def _judge_drift_window(self, window: DriftWindow) -> Report:
        # The grid must match; the policy (alpha, thresholds) may be the caller's own.
        same_settings(
            "DriftWindow",
            {k: v for k, v in self._params().items() if k not in _POLICY},
            {k: v for k, v in window.params.items() if k not in _POLICY},
        )
        if window.rows == 0:
            raise InputError("current: has no rows")
        how = {k: dict(v) for k, v in window.coercions.items()}
        return self._judge(dict(window.summaries), window.rows, set(window.columns), how)

    def _judge_window(self) -> Report:
        self._require()
        if self._window is None:
            raise InputError("current: nothing to check; pass data or call update() first")
        return self._judge_drift_window(self._window)

    def _judge_data(self, current: Any) -> Report:
        table = to_table(current, argument="current")
        if table.n_rows == 0:
            raise InputError("current: has no rows")
        summaries, rows, columns, coercions = self._current(table)
        return self._judge(summaries, rows, columns, coercions)

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
        changed = [summarised_as(name, how) for name, how in sorted(retyped.items())]
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
                findings.append(missing(name))
                continue
            cur = summaries[name]
            if name in coercions:
                findings.append(retyped(name, coercions[name]))
            if family == "skipped":
                findings.append(
                    make_finding(
                        "drift.skipped",
                        severity=Severity.INFO,
                        subject=name,
                        message=f"'{name}' is a {self._kinds[name]} column: not tested for drift",
                        detector="drift.DriftDetector",
                    )
                )
                continue
            if cur.count == 0:
                findings.append(all_null(name, ref, cur))
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
                        detector="drift.DriftDetector",
                    )
                )
                continue
            small = min(ref.count, cur.count)
            if small < MIN_VALUES:
                side = "reference" if ref.count <= cur.count else "current"
                findings.append(
                    make_finding(
                        "drift.skipped",
                        severity=Severity.INFO,
                        subject=name,
                        message=(
                            f"'{name}': {small} {side} values, fewer than the {MIN_VALUES} a "
                            "distribution test needs to tell a change from sampling noise; "
                            "not tested (collect more rows to decide)"
                        ),
                        metric="values",
                        value=float(small),
                        threshold=float(MIN_VALUES),
                        detector="drift.DriftDetector",
                    )
                )
                continue
            if family == "boolean" and not (_binary(ref) and _binary(cur)):
                if not _binary(cur):
                    findings.append(_no_longer_boolean(name, cur))
                family = "discrete"
            tested = self._distribution(name, family, ref, cur)
            candidates.append(dataclasses.replace(tested, histogram=histogram(ref, cur)))
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
        verdicts = decide(
            candidates,
            alpha=self.alpha,
            correction=self.correction,
            min_effect=self.min_effect,
            critical_effect=self.critical_effect,
        )
        findings.extend(test_finding(v, self.correction) for v in verdicts)
        findings.insert(
            0,
            dataset(
                findings,
                columns=len(reference),
                rows=n_rows,
                reference_rows=self._rows,
                correction=self.correction,
                alpha=self.alpha,
            ),
        )
        return Report(
            findings=findings,
            source="drift.check_drift",
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
                column=name,
                kind="distribution",
                family=effect_key,
                result=result,
                effect=abs(result.effect_size),
                effect_name=effect_name,
                code="drift.categorical",
            )
        assert isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary)
        applies, fn = SUMMARY_TESTS[test]
        result = fn(ref, cur, self.bins) if applies == "numeric_binned" else fn(ref, cur)
        code = "drift.boolean" if family == "boolean" else "drift.numeric"
        if test in _DISTANCES:
            return _Candidate(
                column=name,
                kind="distribution",
                family=test,
                result=result,
                effect=abs(result.effect_size),
                effect_name=result.effect,
                code=code,
            )
        if family == "continuous":
            effect = wasserstein_sd(ref, cur)
            return _Candidate(
                column=name,
                kind="distribution",
                family=family,
                result=result,
                effect=effect,
                effect_name=_EFFECT_NAMES[family],
                code=code,
            )
        return _Candidate(
            column=name,
            kind="distribution",
            family=family,
            result=result,
            effect=abs(result.effect_size),
            effect_name=_EFFECT_NAMES.get(family, result.effect),
            code=code,
        )

    def _rate(
        self,
        name: str,
        what: Literal["null_rate", "non_finite"],
        k_ref: int,
        n_ref: int,
        k_cur: int,
        n_cur: int,
    ) -> _Candidate:
        result = st.proportion_from_counts(k_ref, n_ref, k_cur, n_cur)
        code = "drift.null_rate" if what == "null_rate" else "drift.non_finite"
        return _Candidate(
            column=name,
            kind=what,
            family="missing",
            result=result,
            effect=abs(result.effect_size),
            effect_name="|Cohen's h|",
            code=code,
        )


_POLICY = frozenset({"alpha", "correction", "min_effect", "critical_effect"})


def _merge_how(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two partitions' descriptions of how one column was read, as one (counts add up)."""
    if "present" not in a or "present" not in b or a["from"] != b["from"]:
        return a if a.get("present", 0) >= b.get("present", 0) else b
    out = dict(a)
    for key in ("present", "parsed", "padded", "decimal_comma", "thousands"):
        out[key] = a.get(key, 0) + b.get(key, 0)
    out["parsed_share"] = out["parsed"] / out["present"] if out["present"] else 0.0
    out["example"] = a.get("example") or b.get("example")
    return out


_WIDTH = {"bool": 0, "int": 1, "float": 2}


def _as_datetimes(values: npt.NDArray[Any]) -> npt.NDArray[np.datetime64]:
    """Each value read as a date and time (NaT where it is not one)."""
    out = np.full(values.size, np.datetime64("NaT"), dtype="datetime64[ns]")
    with warnings.catch_warnings():  # numpy's deprecation of time zones in strings
        warnings.simplefilter("ignore")
        for i, value in enumerate(values.tolist()):
            if isinstance(value, str | np.datetime64) or hasattr(value, "isoformat"):
                try:
                    out[i] = np.datetime64(value, "ns")
                except (TypeError, ValueError, OverflowError):
                    continue
    return out


MIN_VALUES = 20
"""Fewest non-null values per side for a column's drift tests: below it no test at the
default alpha can tell a material change (0.05-0.1 on each family's effect scale) from
sampling noise, and chi-square's expected counts are too small to trust."""


def _binary(summary: NumericSummary | CategoricalSummary) -> bool:
    """Whether a summary holds only 0 and 1 (what a boolean reference is tested with)."""
    if not isinstance(summary, NumericSummary) or summary.count == 0:
        return True
    return (
        summary.min in (0.0, 1.0)
        and summary.max in (0.0, 1.0)
        and summary.scale == K_MAX
        and summary.distinct <= 2
    )


def _no_longer_boolean(name: str, cur: NumericSummary | CategoricalSummary) -> Finding:
    assert isinstance(cur, NumericSummary)
    return make_finding(
        "drift.type_change",
        severity=Severity.WARNING,
        subject=name,
        message=(
            f"'{name}' was boolean in the reference and now holds other numbers "
            f"({cur.min:.6g} to {cur.max:.6g}); tested as a discrete column"
        ),
        metric="current_max",
        value=cur.max,
        evidence={"from": "bool", "to": "numbers", "min": cur.min, "max": cur.max},
        recommendation="Fix the type upstream: silenttax.features.FeatureHealth names the decay.",
        detector="drift.DriftDetector",
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
    - a :class:`DriftWindow` made by the reference (``reference.window(data)``),
      for instance the merge of every partition's;
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
        return with_policy(DriftDetector, current, policy)._judge_window()
    judge = with_policy(DriftDetector, reference, policy, role="reference")
    if isinstance(current, DriftDetector):
        current = current.state()
    if isinstance(current, DriftDetectorState):
        return judge._judge_summaries(current)
    if isinstance(current, DriftWindow):
        return judge._judge_drift_window(current)
    return judge._judge_data(current)
