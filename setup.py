"""Build the tracer's optional compiled hot path; everything else is in pyproject.toml.

``optional=True``: without a C compiler the extension is skipped and silenttax
uses the pure-Python recorder (same behaviour, about twice the cost per span).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "silenttax.trace._speedups",
            ["silenttax/trace/_speedups.c"],
            optional=True,
        )
    ]
)
