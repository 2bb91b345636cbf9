"""FeatureHealth: learn a schema from the reference and name how features decayed."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import JsonValue

from silenttax._input import NUMERIC_KINDS, TEXT_KINDS, Table, partitions, to_table, wider_kind
from silenttax._merge import same_settings
from silenttax._state import State, Stateful, settings, with_policy
from silenttax.errors import InputError, NotFittedError
from silenttax.features._profile import (
    ColumnProfile,
    merge_profiles,
    profile_column,
)
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = ["FeatureHealth", "FeatureHealthState", "check_health"]

#: Share of current values with fewer decimals than the reference's typical count
#: from which a column "lost precision" (values were rounded).
ROUNDED_SHARE = 0.95

_DETECTOR = "features.FeatureHealth"


def _beyond_all(k: int, n: int, m: int) -> float:
    """P(the k largest of n + m exchangeable values are all among the m current ones):
    ``C(m, k) / C(n + m, k)`` (1 for k <= 0)."""
    if k <= 0:
        return 1.0
    if k > m:
        return 0.0
    log = (math.lgamma(m + 1) - math.lgamma(m - k + 1)) - (
        math.lgamma(n + m + 1) - math.lgamma(n + m - k + 1)
    )
    return math.exp(log)


def _rate_increase(k_ref: int, n_ref: int, k_cur: int, n_cur: int) -> tuple[float, float, float]:
    """(one-sided p-value that the current rate is higher, Cohen's h, current rate)."""
    from scipy.stats import norm

    p_r = k_ref / n_ref if n_ref else 0.0
    p_c = k_cur / n_cur if n_cur else 0.0
    pooled = (k_ref + k_cur) / max(n_ref + n_cur, 1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / max(n_ref, 1) + 1 / max(n_cur, 1)))
    p_value = 1.0 if se == 0 else float(norm.sf((p_c - p_r) / se))
    if se == 0 and p_c > p_r:
        p_value = 0.0
    h = 2 * math.asin(math.sqrt(p_c)) - 2 * math.asin(math.sqrt(p_r))
    return p_value, h, p_c


class FeatureHealthState(State):
    """JSON state of a fitted :class:`FeatureHealth`."""

    KIND: ClassVar[str] = "silenttax.feature_health"

    params: dict[str, JsonValue]
    """Constructor arguments."""
    profiles: dict[str, ColumnProfile]
    """Reference profile per column, in column order."""


class FeatureHealth(Stateful[FeatureHealthState]):
    """Catch "fat features": type decay, padding, nulls, precision, range and level changes.

    ``fit(reference)`` learns per column its kind, null and sentinel rates,
    numeric range and quantiles, decimal precision, levels and cardinality,
    and the patterns of its strings. ``check(current)`` reports relative to
    that schema, one finding per problem, each naming the column, what
    changed, the share of rows affected and an example value:

    ``feature.missing_column``, ``feature.unexpected_column``,
    ``feature.type_change``, ``feature.numeric_string`` (numbers as strings —
    plain, padded, decimal comma or thousands separators, said which),
    ``feature.whitespace``, ``feature.null_rate`` (None/NaN, empty strings and
    sentinels such as "N/A" or -999), ``feature.non_finite``,
    ``feature.out_of_range``, ``feature.precision`` (rounding or noise digits),
    ``feature.new_category``, ``feature.vanished_category``,
    ``feature.cardinality``, ``feature.constant``, plus one ``feature.ok`` per
    healthy column.

    Rate increases need both significance (one-sided two-proportion z-test,
    p < ``alpha``) and materiality (at least ``min_effect`` of rows more than in
    the reference, and Cohen's h >= 0.1), so a clean draw from the reference
    distribution stays quiet; an increase of ``critical_effect`` of the rows
    or more is CRITICAL.

    Args:
        columns: Only these columns (default: all).
        alpha: Significance level for rate increases (strict by default: many checks run).
        min_effect: Smallest increase in the share of rows affected that is material
            (0.01 = one percentage point).
        critical_effect: Increase in the share of rows affected that is CRITICAL
            (0.05: five more rows in a hundred reach the model broken).
        range_tolerance: How far past the reference's observed minimum and maximum
            (kept exactly) a value may lie before it is out of range, as a share of
            the reference's span on each side (0.05: 5%).
        max_levels: Levels kept per column.
        low_cardinality: Numeric columns with at most this many distinct reference
            values are treated as codes: new, vanished and exploding values are reported.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ref = {"price": np.round(rng.uniform(1, 100, 5000), 2)}
        >>> cur = {"price": [f" {p:.2f} " for p in rng.uniform(1, 100, 5000)]}
        >>> report = FeatureHealth().fit(ref).check(cur)
        >>> sorted(f.code for f in report.problems())
        ['feature.numeric_string', 'feature.type_change', 'feature.whitespace']
    """

    STATE: ClassVar[type[State]] = FeatureHealthState
    RENAMED: ClassVar[dict[str, str]] = {"min_share": "min_effect"}

    def __init__(
        self,
        *,
        columns: list[str] | None = None,
        alpha: float = 1e-3,
        min_effect: float = 0.01,
        critical_effect: float = 0.05,
        range_tolerance: float = 0.05,
        max_levels: int = 1000,
        low_cardinality: int = 20,
    ) -> None:
        if not 0 < alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
        if not 0 < min_effect <= critical_effect < 1:
            raise InputError(
                "need 0 < min_effect <= critical_effect < 1, got "
                f"min_effect={min_effect!r}, critical_effect={critical_effect!r}"
            )
        if not (0 <= range_tolerance and math.isfinite(range_tolerance)):
            raise InputError(
                f"range_tolerance must be a finite share >= 0, got {range_tolerance!r}"
            )
        self.columns = list(columns) if columns is not None else None
        self.alpha = alpha
        self.min_effect = min_effect
        self.critical_effect = critical_effect
        self.range_tolerance = float(range_tolerance)
        self.max_levels = max_levels
        self.low_cardinality = low_cardinality
        self._profiles: dict[str, ColumnProfile] | None = None

    # ----------------------------------------------------------------- fitting
    def _params(self) -> dict[str, JsonValue]:
        return {
            "columns": self.columns,  # type: ignore[dict-item]
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "critical_effect": self.critical_effect,
            "range_tolerance": self.range_tolerance,
            "max_levels": self.max_levels,
            "low_cardinality": self.low_cardinality,
        }

    def _profile(self, table: Table, *, current: bool = False) -> dict[str, ColumnProfile]:
        names = table.names if self.columns is None else [c for c in self.columns if c in table]
        profiles = {}
        for name in names:
            try:
                values = table.values_or_counts(name)
            except InputError:
                if not current:
                    raise
                # current data whose column now holds lists or dicts: a type change
                profiles[name] = ColumnProfile(kind="nested", rows=table.n_rows)
                continue
            profiles[name] = profile_column(values, table.kinds[name], max_levels=self.max_levels)
        return profiles

    def fit(self, reference: Any) -> Self:
        """Learn the schema from ``reference`` (replaces an earlier fit).

        A Dask dataframe is profiled one partition at a time and the profiles merged.
        """
        parts = partitions(reference)
        if parts is not None:
            self._profiles = None
            for part in parts:
                self.partial_fit(part)
            self._require()
            return self
        table = to_table(reference, argument="reference")
        if table.n_rows == 0:
            raise InputError("reference: has no rows")
        if self.columns is not None:
            missing = [c for c in self.columns if c not in table]
            if missing:
                raise InputError(f"reference: columns {missing} are not in the data")
        self._profiles = self._profile(table)
        return self

    def partial_fit(self, reference: Any) -> Self:
        """Add more reference rows (e.g. one partition at a time)."""
        if self._profiles is None:
            return self.fit(reference)
        table = to_table(reference, argument="reference")
        return self.merge(FeatureHealth(**self._params()).fit(table))  # type: ignore[arg-type]

    def merge(self, other: FeatureHealth) -> Self:
        """Combine with a FeatureHealth fitted on other partitions (same settings).

        A column that came as different kinds in the two merges as the wider kind
        (:func:`silenttax._input.wider_kind`: int and float as float, numbers and
        strings as ``object``), so a kind change between batches becomes a
        ``feature.type_change`` finding at check time, never an error.

        Raises:
            InputError: the settings differ (named).
        """
        if not isinstance(other, FeatureHealth):
            raise InputError(f"can only merge a FeatureHealth, got {type(other).__name__}")
        same_settings("FeatureHealth", self._params(), other._params())
        if other._profiles is None:
            return self
        if self._profiles is None:
            self._profiles = dict(other._profiles)
            return self
        merged = dict(self._profiles)
        for name, profile in other._profiles.items():
            mine = merged.get(name)
            if mine is not None and mine.kind != profile.kind:
                # one rule for every merge (batches, partitions, live windows): widen
                kind = wider_kind(mine.kind, profile.kind)
                mine = mine.model_copy(update={"kind": kind})
                profile = profile.model_copy(update={"kind": kind})
            merged[name] = (
                profile
                if mine is None
                else merge_profiles(mine, profile, max_levels=self.max_levels)
            )
        self._profiles = merged
        return self

    @property
    def profiles(self) -> dict[str, ColumnProfile]:
        """The learnt schema, per column."""
        return dict(self._require())

    def _require(self) -> dict[str, ColumnProfile]:
        if self._profiles is None:
            raise NotFittedError("FeatureHealth is not fitted: call fit(reference) first")
        return self._profiles

    def state(self) -> FeatureHealthState:
        """JSON-serializable state."""
        return FeatureHealthState(params=self._params(), profiles=self._require())

    @classmethod
    def from_state(cls, state: FeatureHealthState) -> Self:
        """Rebuild from :meth:`state`."""
        saved = dict(state.params)
        saved.pop("range_quantiles", None)  # files before range_tolerance: the default
        health = cls(**settings(cls, saved))
        health._profiles = dict(state.profiles)
        return health

    # ------------------------------------------------------------------- check
    def check(self, current: Any) -> Report:
        """Compare ``current`` with the learnt schema.

        The same as :func:`check_health` with this FeatureHealth as the reference.
        ``current`` is data, or a FeatureHealth with the same settings fitted on the
        current data: profiles merge, so replicas or windows fitted apart are judged
        together (``reference.check(FeatureHealth().fit(a).merge(b_health))``).

        Raises:
            NotFittedError: before :meth:`fit` (of either).
            InputError: ``current`` has no rows, or is a FeatureHealth with other settings.
        """
        self._require()
        if isinstance(current, FeatureHealth):
            same_settings("FeatureHealth", self._params(), current._params())
            profiles = current._require()
            return self._judge(profiles, max((p.rows for p in profiles.values()), default=0))
        table = to_table(current, argument="current")
        if table.n_rows == 0:
            raise InputError("current: has no rows")
        return self._judge(self._profile(table, current=True), table.n_rows)

    def _judge(self, profiles: dict[str, ColumnProfile], n_rows: int) -> Report:
        """Findings on current column profiles (made with this object's settings)."""
        reference = self._require()
        findings: list[Finding] = []
        for name, ref in reference.items():
            cur = profiles.get(name)
            if cur is None:
                findings.append(
                    self._f(
                        "feature.missing_column",
                        Severity.CRITICAL,
                        name,
                        f"column '{name}' ({ref.kind}) is missing",
                        share=1.0,
                    )
                )
                continue
            column = self._column(name, ref, cur)
            if not any(f.severity >= Severity.WARNING for f in column):
                column.append(
                    self._f(
                        "feature.ok",
                        Severity.OK,
                        name,
                        f"'{name}' ({cur.kind}) matches the reference schema",
                    )
                )
            findings.extend(column)
        if self.columns is None:
            findings.extend(
                self._f(
                    "feature.unexpected_column",
                    Severity.INFO,
                    name,
                    f"column '{name}' ({profile.kind}) is not in the reference schema",
                    share=1.0,
                )
                for name, profile in profiles.items()
                if name not in reference
            )
        return Report(
            findings=findings,
            source="features.check_health",
            context={"columns": len(reference), "current_rows": n_rows},
        )

    def _f(
        self,
        code: str,
        severity: Severity,
        column: str,
        message: str,
        *,
        share: float | None = None,
        baseline: float | None = None,
        example: str | None = None,
        recommendation: str | None = None,
        threshold: float | None = None,
        p_value: float | None = None,
        effect_size: float | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> Finding:
        if example is not None:
            message += f" (e.g. {example!r})"
        return make_finding(
            code,
            severity=severity,
            subject=column,
            message=message,
            metric="share" if share is not None else None,
            value=share,
            baseline=baseline,
            threshold=threshold,
            p_value=p_value,
            effect_size=effect_size,
            evidence={"example": example, **(evidence or {})},
            recommendation=recommendation,
            detector=_DETECTOR,
        )

    def _increase(
        self,
        code: str,
        column: str,
        what: str,
        k_ref: int,
        n_ref: int,
        k_cur: int,
        n_cur: int,
        *,
        example: str | None = None,
        recommendation: str | None = None,
        detail: str = "",
    ) -> Finding | None:
        """A finding when a rate rose significantly and materially; None otherwise."""
        if n_cur == 0 or k_cur == 0:
            return None
        p_value, h, rate = _rate_increase(k_ref, n_ref, k_cur, n_cur)
        base = k_ref / n_ref if n_ref else 0.0
        if p_value >= self.alpha or rate - base < self.min_effect or h < 0.1:
            return None
        severity = Severity.CRITICAL if rate - base >= self.critical_effect else Severity.WARNING
        return self._f(
            code,
            severity,
            column,
            f"'{column}': {what} in {rate:.1%} of rows (reference {base:.1%}){detail}",
            share=rate,
            baseline=base,
            threshold=base + self.min_effect,
            p_value=p_value,
            effect_size=h,
            example=example,
            recommendation=recommendation,
        )

    def _column(self, name: str, ref: ColumnProfile, cur: ColumnProfile) -> list[Finding]:
        out: list[Finding] = []
        ref_numeric, cur_numeric = ref.kind in NUMERIC_KINDS, cur.kind in NUMERIC_KINDS
        ref_text, cur_text = ref.kind in TEXT_KINDS, cur.kind in TEXT_KINDS | {"object"}
        if ref.kind != cur.kind:
            numeric_to_text = ref_numeric and not cur_numeric
            severity = (
                Severity.CRITICAL
                if numeric_to_text and not cur.numeric_strings
                else Severity.WARNING
            )
            if {ref.kind, cur.kind} == {"string", "categorical"}:
                severity = Severity.INFO
            out.append(
                self._f(
                    "feature.type_change",
                    severity,
                    name,
                    f"'{name}' changed type: {ref.kind} -> {cur.kind}",
                    share=1.0,
                    example=cur.examples.get("value"),
                    recommendation="Fix the type at the source; implicit casts cost time and hide "
                    "errors.",
                    evidence={"from": ref.kind, "to": cur.kind},
                )
            )
        present = cur.present
        if cur_text and present:
            share = cur.numeric_strings / present
            ref_share = ref.numeric_strings / ref.present if ref_text and ref.present else 0.0
            if (ref_numeric and share > 0) or (
                share - ref_share >= self.min_effect and share >= 0.5
            ):
                forms = []
                if cur.padded:
                    forms.append("padded with whitespace")
                if cur.decimal_comma:
                    forms.append(f"decimal comma in {cur.decimal_comma / present:.0%}")
                if cur.thousands:
                    forms.append(f"thousands separators in {cur.thousands / present:.0%}")
                how = f" ({'; '.join(forms)})" if forms else ""
                out.append(
                    self._f(
                        "feature.numeric_string",
                        Severity.WARNING,
                        name,
                        f"'{name}': {share:.0%} of values are numbers arriving as strings{how}",
                        share=share,
                        baseline=ref_share,
                        example=cur.examples.get("padded")
                        or cur.examples.get("decimal_comma")
                        or cur.examples.get("thousands")
                        or cur.examples.get("number"),
                        recommendation="Send numbers as numbers: parsing strings per request is "
                        "the "
                        "silent cost, and locale formats ('3,14') parse wrong.",
                        evidence={
                            "padded": cur.padded,
                            "decimal_comma": cur.decimal_comma,
                            "thousands": cur.thousands,
                        },
                    )
                )
        if cur_text:
            ref_padded = ref.padded if ref_text else 0
            found = self._increase(
                "feature.whitespace",
                name,
                "leading/trailing whitespace",
                ref_padded,
                max(ref.present, 1),
                cur.padded,
                max(present, 1),
                example=cur.examples.get("padded"),
                recommendation="Strip at the source; padded values become new categories.",
            )
            if found:
                out.append(found)
        out.extend(self._missingness(name, ref, cur))
        if ref.numbers is not None and cur.numbers is not None and (ref_numeric or not ref_text):
            out.extend(self._numeric(name, ref, cur))
        same_family = ref_numeric == cur_numeric
        # Levels matter for labels and for few-valued numbers (codes), not for measurements.
        few_values = ref.distinct <= (self.low_cardinality if ref_numeric else self.max_levels)
        if ref.levels and same_family and few_values:
            out.extend(self._levels(name, ref, cur))
        if cur.present and cur.distinct == 1 and ref.distinct > 1:
            value = next(iter(cur.levels), cur.examples.get("value"))
            out.append(
                self._f(
                    "feature.constant",
                    Severity.WARNING,
                    name,
                    f"'{name}' became constant: every present value is the same "
                    f"(reference had {ref.distinct if ref.distinct <= self.max_levels else 'many'} "
                    "distinct values)",
                    share=1.0,
                    example=value,
                    recommendation="A constant feature carries no signal: check the upstream join "
                    "or default.",
                )
            )
        return out

    def _missingness(self, name: str, ref: ColumnProfile, cur: ColumnProfile) -> list[Finding]:
        out = []
        parts = []
        if cur.nulls:
            parts.append(f"None/NaN {cur.nulls / cur.rows:.1%}")
        if cur.empty:
            parts.append(f"empty strings {cur.empty / cur.rows:.1%}")
        for value, n in sorted(cur.sentinels.items(), key=lambda kv: -kv[1])[:3]:
            parts.append(f"{value!r} {n / cur.rows:.1%}")
        example = None if not cur.sentinels else max(cur.sentinels, key=lambda k: cur.sentinels[k])
        found = self._increase(
            "feature.null_rate",
            name,
            "missing values",
            ref.missing_like,
            ref.rows,
            cur.missing_like,
            cur.rows,
            example=example,
            detail=f": {', '.join(parts)}" if parts else "",
            recommendation="Find why values go missing; imputation hides it from model metrics.",
        )
        if found:
            out.append(found)
        if cur.non_finite:
            found = self._increase(
                "feature.non_finite",
                name,
                "infinite values",
                ref.non_finite,
                ref.rows,
                cur.non_finite,
                cur.rows,
                example="inf",
                recommendation="An upstream division by zero or overflow: fix it before the model.",
            )
            if found:
                out.append(found)
        return out

    def _numeric(self, name: str, ref: ColumnProfile, cur: ColumnProfile) -> list[Finding]:
        out: list[Finding] = []
        r, c = ref.numbers, cur.numbers
        assert r is not None and c is not None
        if r.count and c.count:
            found = self._range(name, r, c)
            if found:
                out.append(found)
        ref_dec, cur_dec = np.asarray(ref.decimals), np.asarray(cur.decimals)
        if ref_dec.sum() and cur_dec.sum():
            out.extend(self._precision(name, ref_dec, cur_dec, ref, cur))
        return out

    def _range(self, name: str, r: Any, c: Any) -> Finding | None:
        """``feature.out_of_range``: current values past the reference's observed minimum
        and maximum (plus ``range_tolerance`` of its span), judged by the exact
        exchangeability bound (no change: the current and reference values are one
        sample, and a current value lands above all n reference values with
        probability m / (n + m), k of them with C(m, k) / C(n + m, k))."""
        lo, hi = float(r.min), float(r.max)
        pad = self.range_tolerance * ((hi - lo) if hi > lo else max(abs(hi), 1.0))
        low, high = lo - pad, hi + pad
        cur_values = c.values()
        with np.errstate(invalid="ignore"):
            outside = int(np.count_nonzero((cur_values < low) | (cur_values > high)))
        if not outside:
            return None
        n, m = int(r.count), int(c.count)
        share = outside / m
        p_value = min(1.0, 2.0 * _beyond_all(math.ceil(outside / 2), n, m))
        if p_value >= self.alpha or share < self.min_effect:
            return None
        with np.errstate(over="ignore"):  # a distance past the float range is inf
            far = cur_values[np.argmax(np.abs(cur_values - (lo / 2 + hi / 2)))]
        severity = Severity.CRITICAL if share >= self.critical_effect else Severity.WARNING
        return self._f(
            "feature.out_of_range",
            severity,
            name,
            f"'{name}': values outside the reference's range [{lo:.6g}, {hi:.6g}] "
            f"(+-{self.range_tolerance:.0%} of its span) in {share:.1%} of rows",
            share=share,
            baseline=0.0,
            threshold=self.min_effect,
            p_value=p_value,
            example=f"{far:g}",
            recommendation="Check units and upstream changes; clip or reject at the edge.",
            evidence={
                "reference_min": lo,
                "reference_max": hi,
                "low": low,
                "high": high,
                "outside": outside,
            },
        )

    def _precision(
        self, name: str, ref_dec: Any, cur_dec: Any, ref: ColumnProfile, cur: ColumnProfile
    ) -> list[Finding]:
        ref_share = ref_dec / ref_dec.sum()
        cur_share = cur_dec / cur_dec.sum()
        ref_max = int(np.flatnonzero(ref_share >= 0.001).max()) if ref_share.any() else 0
        ref_typical = int(np.searchsorted(np.cumsum(ref_share), 0.5))
        cur_typical = int(np.searchsorted(np.cumsum(cur_share), 0.5))
        noisy = float(cur_share[ref_max + 1 :].sum())
        example = cur.examples.get("precise") or cur.examples.get("value")
        # significant as well as material: with no change the reference and current values
        # are one exchangeable sample, and k current values carry more decimals than all n
        # reference ones with probability at most C(m, k) / C(n + m, k) (ties only lower
        # it), so a 5-value reference that never showed a 16th digit is no verdict
        n, m = int(ref_dec.sum()), int(cur_dec.sum())
        p_noise = _beyond_all(int(cur_dec[ref_max + 1 :].sum()), n, m)
        if ref_max < 16 and noisy >= max(self.min_effect, 0.05) and p_noise < self.alpha:
            return [
                self._f(
                    "feature.precision",
                    Severity.WARNING,
                    name,
                    f"'{name}': {noisy:.0%} of values carry more than the {ref_max} decimal places "
                    "seen in the reference (noise digits)",
                    share=noisy,
                    p_value=p_noise,
                    example=example,
                    recommendation="Round at the source or find the float conversion that adds "
                    "noise.",
                    evidence={
                        "reference_max_decimals": ref_max,
                        "current_typical": cur_typical,
                        "reference_values": n,
                    },
                )
            ]
        if ref_typical > 0 and cur_typical < ref_typical:
            # rounding collapses the digits: (nearly) every value below the reference's
            # typical count. Shortest float reprs vary by a digit or two from value to
            # value, which moves a median but never empties the upper counts.
            rounded = float(cur_share[:ref_typical].sum())
            # a reference value has fewer decimals than its typical count with probability
            # at most 1/2, so (no change) as many current ones below it is a binomial tail
            from scipy.stats import binom

            below = int(cur_dec[:ref_typical].sum())
            p_rounded = float(binom.sf(below - 1, m, 0.5))
            if rounded >= ROUNDED_SHARE and p_rounded < self.alpha:
                return [
                    self._f(
                        "feature.precision",
                        Severity.WARNING,
                        name,
                        f"'{name}' lost precision: typically {cur_typical} decimal places, "
                        f"{ref_typical} in the reference (values rounded)",
                        share=rounded,
                        p_value=p_rounded,
                        example=example,
                        recommendation="Find where the values are rounded (a format or type "
                        "change).",
                        evidence={"reference_typical": ref_typical, "current_typical": cur_typical},
                    )
                ]
        return []

    def _levels(self, name: str, ref: ColumnProfile, cur: ColumnProfile) -> list[Finding]:
        out: list[Finding] = []
        present = max(cur.present, 1)
        ref_present = max(ref.present, 1)
        id_like = ref.distinct > 0.5 * ref_present  # identifiers: new values are normal
        capped = ref.other_levels > 0
        if not id_like and not capped:
            missing_like = set(cur.sentinels) | {""}
            new = {
                k: n
                for k, n in cur.levels.items()
                if k not in ref.levels and k.strip() not in missing_like and k not in missing_like
            }
            share = sum(new.values()) / present
            if new and share >= self.min_effect:
                top = sorted(new, key=lambda k: -new[k])[:5]
                out.append(
                    self._f(
                        "feature.new_category",
                        Severity.WARNING if share >= 0.05 else Severity.INFO,
                        name,
                        f"'{name}': {len(new)} new value(s) in {share:.1%} of rows: "
                        + ", ".join(repr(k) for k in top),
                        share=share,
                        example=top[0],
                        recommendation="Unseen categories reach the model as unknowns: map or "
                        "retrain.",
                        evidence={"new": {k: new[k] for k in top}},
                    )
                )
            gone = {
                k: n / ref_present
                for k, n in ref.levels.items()
                if k not in cur.levels
                and n / ref_present >= self.min_effect
                and n / ref_present * present >= 10
            }
            if gone:
                top = sorted(gone, key=lambda k: -gone[k])[:5]
                out.append(
                    self._f(
                        "feature.vanished_category",
                        Severity.WARNING,
                        name,
                        f"'{name}': {len(gone)} value(s) that made up "
                        f"{sum(gone.values()):.1%} of the "
                        "reference no longer appear: " + ", ".join(repr(k) for k in top),
                        share=sum(gone.values()),
                        example=top[0],
                        recommendation="A category vanished: check upstream filters and mappings.",
                        evidence={"vanished": {k: gone[k] for k in top}},
                    )
                )
        if not id_like:
            ratio = cur.distinct / max(ref.distinct, 1)
            if cur.distinct > 2 * ref.distinct and cur.distinct - ref.distinct >= 10:
                out.append(
                    self._f(
                        "feature.cardinality",
                        Severity.WARNING,
                        name,
                        f"'{name}': {cur.distinct} distinct values vs {ref.distinct} in the "
                        f"reference ({ratio:.1f}x)",
                        share=None,
                        recommendation="A cardinality explosion: free text or IDs leaking into a "
                        "categorical feature?",
                        evidence={"distinct": cur.distinct, "reference_distinct": ref.distinct},
                    )
                )
        return out


def check_health(
    current: Any,
    reference: FeatureHealth | FeatureHealthState,
    *,
    alpha: float | None = None,
    min_effect: float | None = None,
    critical_effect: float | None = None,
) -> Report:
    """Judge current data, or its profiles, against a reference schema under a policy (pure).

    ``current`` is data (profiled with the reference's settings) or a
    FeatureHealth (or its state) fitted on the current data with the same
    settings, for instance the merge of every partition's. The policy defaults
    to the reference's settings; a keyword given here replaces it.
    ``FeatureHealth.check`` is this function with the object as the reference.

    Args:
        current: Data, a FeatureHealth or its state.
        reference: The fitted reference or its state.
        alpha: Significance level for rate increases.
        min_effect: Smallest material increase in the share of rows affected.
        critical_effect: Increase in the share of rows affected that is CRITICAL.

    Raises:
        InputError: bad arguments, different profiling settings, or a policy out of range.
        NotFittedError: the reference or the current FeatureHealth is not fitted.

    Examples:
        >>> reference = FeatureHealth().fit({"age": [30.0, 41.0, 52.0] * 400})
        >>> today = FeatureHealth().fit({"age": [30.0, None, 52.0] * 400})
        >>> check_health(today.state(), reference.state()).worst.value
        'critical'
        >>> check_health(today.state(), reference.state(), critical_effect=0.5).worst.value
        'warning'
    """
    policy = {"alpha": alpha, "min_effect": min_effect, "critical_effect": critical_effect}
    judge = with_policy(FeatureHealth, reference, policy, role="reference")
    if isinstance(current, FeatureHealthState):
        current = FeatureHealth.from_state(current)
    if not isinstance(current, FeatureHealth):
        return judge.check(current)
    profiling = ("columns", "range_tolerance", "max_levels", "low_cardinality")
    same_settings(
        "FeatureHealth",
        {k: v for k, v in judge._params().items() if k in profiling},
        {k: v for k, v in current._params().items() if k in profiling},
    )
    profiles = current._require()
    rows = max((p.rows for p in profiles.values()), default=0)
    if rows == 0:
        raise InputError("current: has no rows")
    return judge._judge(dict(profiles), rows)
