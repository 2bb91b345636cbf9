from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest

import silenttax
from silenttax.errors import InputError, StateError
from silenttax.monitor import ADWIN, CUSUM, ChangeDetector, PageHinkley

DETECTORS: list[type[ChangeDetector]] = [CUSUM, PageHinkley, ADWIN]


def alarms(detector: ChangeDetector, stream: np.ndarray) -> list[int]:
    return [i for i, x in enumerate(stream.tolist()) if detector.update(x).drift_detected]


def step(seed: int, *, pre: int = 1000, post: int = 1000, shift_sd: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(np.log(0.02), 0.5, pre + post)
    x[pre:] += shift_sd * x[:pre].std()
    return x


@pytest.mark.parametrize("cls", DETECTORS)
def test_two_sd_step_is_detected_within_a_few_hundred_samples(cls: type[ChangeDetector]) -> None:
    for seed in range(10):
        found = alarms(cls(), step(seed))
        assert found, f"{cls.__name__} missed the step (seed {seed})"
        assert 1000 <= found[0] < 1300, (cls.__name__, seed, found)


@pytest.mark.parametrize("cls", DETECTORS)
def test_scale_free(cls: type[ChangeDetector]) -> None:
    stream = step(3)
    assert alarms(cls(), stream) == alarms(cls(), stream * 1000.0)  # seconds vs ms


def false_alarm_rate(cls: type[ChangeDetector], streams: int, n: int = 20_000) -> float:
    hits = 0
    for seed in range(streams):
        rng = np.random.default_rng(seed)
        stream = rng.normal(5.0, 1.0, n) if seed % 2 else rng.lognormal(np.log(0.02), 0.5, n)
        detector = cls()
        hits += any(detector.update(x).drift_detected for x in stream.tolist())
    return hits / streams


@pytest.mark.parametrize("cls", DETECTORS)
def test_false_alarms_are_rare_on_stationary_noise(cls: type[ChangeDetector]) -> None:
    # Seeded small version: 16 streams of 20k; the full 200-stream run is marked slow.
    assert false_alarm_rate(cls, 16) <= 1 / 16


@pytest.mark.slow
@pytest.mark.parametrize("cls", DETECTORS)
def test_false_alarm_rate_full(cls: type[ChangeDetector]) -> None:
    assert false_alarm_rate(cls, 200) < 0.05


@pytest.mark.parametrize("cls", DETECTORS)
def test_direction(cls: type[ChangeDetector]) -> None:
    down = step(5, shift_sd=-2.0)
    assert alarms(cls(direction="up"), down) == []
    assert alarms(cls(direction="down"), down)


@pytest.mark.parametrize("cls", DETECTORS)
def test_state_round_trip_mid_stream(cls: type[ChangeDetector], tmp_path: Path) -> None:
    stream = step(7)
    whole = cls()
    expected = alarms(whole, stream)
    first = cls()
    early = alarms(first, stream[:1020])
    first.save(tmp_path / "d.json")
    resumed = cls.load(tmp_path / "d.json")
    late = [i + 1020 for i in alarms(resumed, stream[1020:])]
    assert early + late == expected
    assert resumed.n == whole.n and resumed.n_detections == whole.n_detections


@pytest.mark.parametrize("cls", DETECTORS)
def test_reset_equals_fresh_and_drift_flag_is_read_only(cls: type[ChangeDetector]) -> None:
    detector = cls()
    alarms(detector, step(1))
    assert detector.n_detections >= 1 and detector.last_detection is not None
    detector.reset()
    assert detector.state() == cls().state()
    with pytest.raises(AttributeError):
        detector.drift_detected = True  # type: ignore[misc]


@pytest.mark.parametrize("cls", DETECTORS)
def test_invalid_values_are_ignored(cls: type[ChangeDetector]) -> None:
    detector = cls()
    for bad in (float("nan"), None, "x", float("inf")):
        assert detector.update(bad).drift_detected is False  # type: ignore[arg-type]
    assert detector.invalid == 4 and detector.n == 0


def test_wrong_state_kind() -> None:
    with pytest.raises(StateError, match="CUSUM"):
        PageHinkley.from_json(CUSUM().to_json())


def test_bad_parameters() -> None:
    with pytest.raises(InputError, match="warmup"):
        CUSUM(warmup=1)
    with pytest.raises(InputError, match="direction"):
        PageHinkley(direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="alpha"):
        ADWIN(alpha=2)


def test_files_with_the_old_setting_names_still_load() -> None:
    """``threshold``/``delta``/``alpha`` were renamed ``h``/``k``/``forgetting`` (and
    ADWIN's ``delta`` is ``alpha``); a file written before the rename loads."""
    old = PageHinkley(k=0.25, h=12.0, forgetting=0.99).to_json()
    for new, was in [('"k"', '"delta"'), ('"h"', '"threshold"'), ('"forgetting"', '"alpha"')]:
        old = old.replace(new, was)
    loaded = silenttax.load(old)
    assert isinstance(loaded, PageHinkley)
    assert (loaded.k, loaded.h, loaded.forgetting) == (0.25, 12.0, 0.99)
    adwin = ADWIN(alpha=0.01).to_json().replace('"alpha"', '"delta"')
    assert cast(ADWIN, silenttax.load(adwin)).alpha == 0.01


def test_a_setting_the_class_does_not_take_is_a_state_error() -> None:
    text = CUSUM().to_json().replace('"k"', '"kappa"')
    with pytest.raises(StateError, match="kappa"):
        silenttax.load(text)


def test_warmup_reference() -> None:
    detector = CUSUM(warmup=10)
    for x in range(9):
        detector.update(float(x))
    assert detector.warming_up and detector.reference is None
    detector.update(9.0)
    mean, sd = detector.reference  # type: ignore[misc]
    assert mean == pytest.approx(4.5) and sd == pytest.approx(np.std(np.arange(10), ddof=1))


def test_adwin_window_adapts() -> None:
    detector = ADWIN()
    stream = np.random.default_rng(0).normal(0, 1, 5000)
    alarms(detector, stream)
    assert 4000 < detector.width <= 5000 - detector.warmup


@pytest.mark.parametrize("cls", [CUSUM, PageHinkley, ADWIN])
def test_silenttax_load_returns_the_detector_class_that_saved_it(cls: type) -> None:
    import silenttax

    detector = cls(warmup=20) if cls is not ADWIN else cls()
    for x in np.random.default_rng(0).normal(1.0, 0.1, 100):
        detector.update(float(x))
    back = silenttax.load(detector.to_json())
    assert type(back) is cls and back.to_json() == detector.to_json()
    assert type(ChangeDetector.from_json(detector.to_json())) is cls
