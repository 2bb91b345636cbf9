from __future__ import annotations

from pathlib import Path

import pytest

from silenttax.errors import InputError
from silenttax.report import CODE_PATTERN, Category, Severity, finding_codes
from silenttax.report._codes import CODES, CodeInfo, _check_registry, make_finding

DOCS = Path(__file__).resolve().parent.parent / "docs" / "codes.md"


def test_registry_is_unique_and_well_formed() -> None:
    _check_registry()
    assert len({c.code for c in CODES}) == len(CODES)
    for info in CODES:
        assert CODE_PATTERN.match(info.code), info.code
        assert isinstance(info.category, Category)
        assert info.summary.endswith("."), info.code
    assert {c.code: c for c in CODES}.items() <= dict(finding_codes()).items()


def test_duplicate_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    import silenttax.report._codes as codes

    dup = (CodeInfo("x.y", Category.COST, "X."), CodeInfo("x.y", Category.COST, "Y."))
    monkeypatch.setattr(codes, "CODES", dup)
    with pytest.raises(ValueError, match="registered twice"):
        codes._check_registry()
    monkeypatch.setattr(codes, "CODES", (CodeInfo("X.y", Category.COST, "X."),))
    with pytest.raises(ValueError, match="lower-case"):
        codes._check_registry()


def test_every_code_is_documented() -> None:
    text = DOCS.read_text()
    for code in (info.code for info in CODES):  # the built-in registry, not users' codes
        assert f"`{code}`" in text, f"{code} missing from docs/codes.md"


def test_make_finding_fills_the_category() -> None:
    assert CODES, "the registry is empty"
    info = CODES[0]
    f = make_finding(info.code, severity="ok", subject="s", message="m")
    assert f.category is info.category and f.severity is Severity.OK
    with pytest.raises(InputError, match=r"'not\.registered' is not registered"):
        make_finding("not.registered", severity="ok", subject="s", message="m")
