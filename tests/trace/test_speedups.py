from __future__ import annotations

import os

import pytest

from silenttax.trace import Tracer, _tracer


@pytest.mark.skipif(bool(os.environ.get("SILENTTAX_PURE_PYTHON")), reason="pure Python asked for")
def test_the_compiled_recorder_is_built_and_used(recorder: str) -> None:
    assert _tracer._speedups is not None, "silenttax/trace/_speedups.c did not build"
    assert Tracer().compiled is (recorder == "compiled")


def test_both_recorders_build_the_same_trees(recorder: str) -> None:
    tracer = Tracer()
    with tracer.span("request", route="/a") as request:
        with tracer.span("parse", stage="preprocess"):
            pass
        try:
            with tracer.span("forward", stage="model"):
                raise ValueError("bad input")
        except ValueError:
            pass
        request.set_attribute("status", 400)
    (root,) = tracer.traces()
    assert [(s.name, s.stage, s.error) for s in root.walk()] == [
        ("request", "request", None),
        ("parse", "preprocess", None),
        ("forward", "model", "ValueError"),
    ]
    assert root.attributes == {"route": "/a", "status": 400}
    with pytest.raises(TypeError):
        tracer.span()  # type: ignore[call-arg]


def test_no_references_leak(recorder: str) -> None:
    import gc
    import sys

    from silenttax.trace._tracer import _ROOT

    tracer = Tracer()
    owner = tracer._recorder if tracer.compiled else tracer._span

    def work(n: int) -> None:
        for i in range(n):
            with tracer.span("request", i=i) as request:
                request.set_attribute("late", i)
                with tracer.span(["unhashable"]):  # type: ignore[arg-type]
                    pass
                try:
                    with tracer.span("forward", stage="model"):
                        raise KeyError(i)
                except KeyError:
                    pass

    work(100)
    tracer.reset()
    gc.collect()  # other tests' tracers go first
    root_refs, owner_refs = sys.getrefcount(_ROOT), sys.getrefcount(owner)
    work(20_000)
    tracer.reset()
    gc.collect()
    assert sys.getrefcount(_ROOT) == root_refs
    assert sys.getrefcount(owner) == owner_refs
    assert tracer._attrs == {} and tracer._errors == {}


def test_spans_left_in_another_context_restore_the_parent(recorder: str) -> None:
    import contextvars

    tracer = Tracer()
    with tracer.span("request"):
        inner = tracer.span("inner")
        contextvars.copy_context().run(inner.__enter__)  # entered elsewhere
        inner.__exit__(None, None, None)  # left here: never raises
        assert tracer.current_span() is not None
    assert tracer.current_span() is None
    assert tracer.breakdown().spans["request"].count == 1


def test_a_span_entered_inside_itself_does_not_own_itself(recorder: str) -> None:
    tracer = Tracer()
    with tracer.span("request") as request, request:  # a misuse: the same span twice
        pass
    assert tracer.current_span() is None
    assert tracer.breakdown().requests >= 1
