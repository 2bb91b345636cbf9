from __future__ import annotations

import pytest

from silenttax.trace import _tracer


@pytest.fixture(autouse=True, params=["compiled", "python"])
def recorder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every tracer test runs with the compiled recorder and with the pure-Python one."""
    if request.param == "compiled" and _tracer._speedups is None:
        pytest.skip("the compiled recorder was not built")
    monkeypatch.setattr(_tracer, "SPEEDUPS", request.param == "compiled")
    return str(request.param)
