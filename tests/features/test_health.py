from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from silenttax.errors import InputError, NotFittedError
from silenttax.features import FeatureHealth
from silenttax.report import Severity

N = 4000


def reference(seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.integers(18, 90, N),
        "price": np.round(rng.lognormal(3, 1, N), 2),
        "country": rng.choice(["DE", "FR", "IT", "ES"], N, p=[0.4, 0.3, 0.2, 0.1]),
        "score": rng.normal(0, 1, N),
        "rating": rng.integers(1, 6, N).astype(float),
        "member": rng.random(N) < 0.3,
    }


def codes(report, column: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {f.code for f in report.problems(Severity.INFO) if f.subject == column}


@pytest.mark.parametrize("seed", range(5))
def test_a_clean_draw_stays_quiet(seed: int) -> None:
    report = FeatureHealth().fit(reference(100)).check(reference(seed))
    assert report.worst < Severity.WARNING, str(report.problems())
    assert {f.code for f in report} == {"feature.ok"}


def case(**changes: object) -> dict[str, object]:
    data = reference(1)
    data.update(changes)
    return data


def check(current: dict[str, object]):  # type: ignore[no-untyped-def]
    return FeatureHealth().fit(reference(0)).check(current)


def test_missing_and_unexpected_columns() -> None:
    data = case(extra=np.zeros(N))
    del data["score"]
    report = check(data)
    missing = report.filter(code="feature.missing_column")[0]
    assert missing.subject == "score" and missing.severity is Severity.CRITICAL
    assert report.filter(code="feature.unexpected_column")[0].subject == "extra"


def test_type_change_int_to_float() -> None:
    report = check(case(age=reference(1)["age"].astype(float) + 0.5))  # type: ignore[attr-defined]
    finding = report.filter(code="feature.type_change")[0]
    assert finding.subject == "age" and "int -> float" in finding.message


@pytest.mark.parametrize(
    ("values", "form"),
    [
        ([f"{a}" for a in range(N)], ""),
        ([f"  {a} " for a in range(N)], "padded with whitespace"),
        ([f"{a},5" for a in range(N)], "decimal comma"),
        ([f"{a * 1000:,}.5" for a in range(N)], "thousands separators"),
    ],
)
def test_numbers_arriving_as_strings_say_which_form(values: list[str], form: str) -> None:
    report = check(case(age=values))
    finding = report.filter(code="feature.numeric_string")[0]
    assert finding.subject == "age" and finding.value == 1.0
    assert form in finding.message
    assert finding.evidence["example"] in values
    assert report.filter(code="feature.type_change")[0].severity is Severity.WARNING


def test_whitespace_in_strings() -> None:
    country = np.array(reference(1)["country"], dtype=object)
    country[:800] = [f"{c} " for c in country[:800]]
    finding = check(case(country=country)).filter(code="feature.whitespace")[0]
    assert finding.subject == "country" and finding.value == pytest.approx(0.2)
    assert finding.evidence["example"].endswith(" ")


def test_null_rate_counts_none_empty_and_sentinels() -> None:
    country = np.array(reference(1)["country"], dtype=object)
    country[:200], country[200:400], country[400:800] = None, "", "N/A"
    finding = check(case(country=country)).filter(code="feature.null_rate")[0]
    assert finding.value == pytest.approx(0.2)
    assert "None/NaN 5.0%" in finding.message and "empty strings 5.0%" in finding.message
    assert "'N/A' 10.0%" in finding.message
    price = reference(1)["price"].copy()  # type: ignore[attr-defined]
    price[:300] = -999.0
    sentinel = check(case(price=price)).filter(code="feature.null_rate")[0]
    assert sentinel.subject == "price" and "'-999'" in sentinel.message


def test_non_finite() -> None:
    score = reference(1)["score"].copy()  # type: ignore[attr-defined]
    score[:100] = np.inf
    finding = check(case(score=score)).filter(code="feature.non_finite")[0]
    assert finding.value == pytest.approx(100 / N)


def test_out_of_range_with_tolerance() -> None:
    score = reference(1)["score"].copy()  # type: ignore[attr-defined]
    score[:200] = 1e6
    finding = check(case(score=score)).filter(code="feature.out_of_range")[0]
    assert finding.value == pytest.approx(200 / N)  # exactly the injected rows
    assert finding.evidence["example"] == "1e+06"
    ref = np.asarray(reference(0)["score"])
    assert f"[{ref.min():.6g}, {ref.max():.6g}]" in finding.message  # the observed range


def test_out_of_range_false_alarms_on_random_halves_of_one_sample() -> None:
    """A/A: random halves of the same data (small and large) stay quiet at least 95% of
    the time (the exchangeability bound is exact, and conservative with the tolerance),
    and a unit change in a tenth of the rows is named."""
    rng = np.random.default_rng(11)
    alarms = trials = 0
    for n in (40, 128, 1000):
        data = rng.lognormal(3, 0.6, n)
        for _ in range(40):
            order = rng.permutation(n)
            a, b = data[order[: n // 2]], data[order[n // 2 :]]
            report = FeatureHealth(alpha=0.05).fit({"x": a}).check({"x": b})
            alarms += bool(report.filter(code="feature.out_of_range").problems())
            trials += 1
    assert alarms / trials <= 0.05, (alarms, trials)
    scaled = data.copy()
    scaled[: len(scaled) // 10] *= 1000  # grams arriving as milligrams
    report = FeatureHealth().fit({"x": data[::2]}).check({"x": scaled})
    assert report.filter(code="feature.out_of_range").problems()


def test_health_saved_before_range_tolerance_still_loads() -> None:
    state = FeatureHealth().fit(reference(0)).state()
    old = state.model_copy(update={"params": {
        k: v for k, v in state.params.items() if k != "range_tolerance"
    } | {"range_quantiles": [0.001, 0.999]}})  # fmt: skip
    health = FeatureHealth.from_state(old)
    assert health.range_tolerance == 0.05


def test_precision_noise_digits_and_rounding() -> None:
    price = reference(1)["price"] * (1 + 1e-9)  # type: ignore[operator]
    noisy = check(case(price=price)).filter(code="feature.precision")[0]
    assert "noise digits" in noisy.message and noisy.value > 0.9
    rounded = check(case(score=np.round(reference(1)["score"], 1)))  # type: ignore[call-overload]
    finding = rounded.filter(code="feature.precision")[0]
    assert finding.subject == "score" and "rounded" in finding.message


def test_shortest_float_reprs_are_not_lost_precision() -> None:
    """float32 values written as text (a CSV) carry 4-7 decimals from value to value:
    the median count moves between two samples, the digits are all there."""
    from silenttax.features import check_health

    def column(seed: int) -> FeatureHealth:  # values near 5: 56% carry 7 decimals, 39% 6
        values = np.random.default_rng(seed).normal(5, 1, 50)
        return FeatureHealth().fit({"x": np.asarray([float(str(np.float32(v))) for v in values])})

    false_alarms = sum(
        bool(check_health(column(2 * k + 1), column(2 * k)).filter(code="feature.precision"))
        for k in range(40)
    )  # a median rule flags about 7 of these 40 pairs
    assert false_alarms <= 1


def test_new_vanished_categories_and_cardinality() -> None:
    country = np.array(reference(1)["country"], dtype=object)
    country[country == "ES"] = "FR"
    country[:400] = "PT"
    report = check(case(country=country))
    new = report.filter(code="feature.new_category")[0]
    assert new.subject == "country" and "'PT'" in new.message
    gone = report.filter(code="feature.vanished_category")[0]
    assert "'ES'" in gone.message
    rating = np.arange(N, dtype=float)  # a 5-valued code column explodes
    blown = check(case(rating=rating)).filter(code="feature.cardinality")[0]
    assert blown.subject == "rating" and blown.evidence["reference_distinct"] == 5


def test_constant() -> None:
    finding = check(case(country=["DE"] * N)).filter(code="feature.constant")[0]
    assert finding.subject == "country" and finding.evidence["example"] == "DE"


def test_save_load_merge_and_pandas(tmp_path: Path) -> None:
    ref = reference(0)
    health = FeatureHealth().fit(pd.DataFrame(ref))
    health.save(tmp_path / "h.json")
    loaded = FeatureHealth.load(tmp_path / "h.json")
    cur = case(country=["DE"] * N)
    a = [(f.code, f.subject, f.value) for f in health.check(cur)]
    b = [(f.code, f.subject, f.value) for f in loaded.check(cur)]
    assert a == b
    halves = [{k: np.asarray(v)[i::2] for k, v in ref.items()} for i in range(2)]
    merged = FeatureHealth().fit(halves[0]).merge(FeatureHealth().fit(halves[1]))
    whole = health.profiles
    for name, profile in merged.profiles.items():
        assert profile.rows == whole[name].rows and profile.nulls == whole[name].nulls
        assert profile.levels == whole[name].levels
    assert [f.code for f in merged.check(cur)] == [f.code for f in health.check(cur)]


def test_bad_input() -> None:
    with pytest.raises(NotFittedError):
        FeatureHealth().check({"x": [1]})
    with pytest.raises(InputError, match="no rows"):
        FeatureHealth().fit({"x": [1, 2]}).check({"x": np.array([])})
    with pytest.raises(InputError, match="min_effect"):
        FeatureHealth(min_effect=0)


def test_sentinel_counts_are_exact_across_blocks() -> None:
    from silenttax.features._profile import NUMBER_SENTINELS, profile_column

    rng = np.random.default_rng(5)
    x = rng.normal(50, 10, 200_003)  # several blocks of 2**15 values, the last one short
    x[rng.random(x.size) < 0.03] = -999.0
    x[-1] = 9999.0  # in the last block
    x[rng.random(x.size) < 0.01] = np.nan
    got = profile_column(x, "float").sentinels
    expected = {f"{s:g}": int(np.count_nonzero(x == s)) for s in NUMBER_SENTINELS}
    assert got == {k: v for k, v in expected.items() if v}
    assert list(got) == ["-999", "9999"]  # in the order of NUMBER_SENTINELS


def test_noise_digits_need_evidence_not_a_small_reference() -> None:
    """A reference of a few values never shows every decimal count: "more decimals than
    the reference" must be significant under exchangeability, not only 5% of rows."""
    from silenttax.features._health import _beyond_all

    rng = np.random.default_rng(11)
    for n in (1, 5, 20):
        small = FeatureHealth().fit({"bmi": rng.normal(25, 4, n)})
        assert not small.check({"bmi": rng.normal(25, 4, 400)}).filter(code="feature.precision")
    # a real change still is one, with the exact p-value
    health = FeatureHealth().fit({"bmi": rng.normal(25, 4, 2000).round(2)})
    current = rng.normal(25, 4, 400)
    (found,) = health.check({"bmi": current}).filter(code="feature.precision")
    assert found.severity is Severity.WARNING
    assert found.p_value == pytest.approx(_beyond_all(400, 2000, 400))
    # A/A: random halves of one sample with mixed decimals, never more than alpha
    raw, digits = rng.normal(25, 4, 600), rng.integers(0, 6, 600)
    values = np.array([round(v, int(d)) for v, d in zip(raw, digits, strict=True)])
    alarms = 0
    for seed in range(200):
        order = np.random.default_rng(seed).permutation(values.size)
        ref, cur = values[order[:300]], values[order[300:]]
        report = FeatureHealth().fit({"x": ref}).check({"x": cur})
        alarms += bool(report.filter(code="feature.precision"))
    assert alarms <= 10 + 3 * math.sqrt(10), alarms  # alpha 5% of 200 (+3 sd)
