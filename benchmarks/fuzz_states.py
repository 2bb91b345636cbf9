"""Coverage-guided fuzzing of the state loader (atheris), seeded with one saved state per kind.

The rule: ``silenttax.load(bytes)`` returns a component or raises ``StateError``;
any other exception is a crash that atheris reports with the input that caused it.
The Hypothesis suite in ``tests/reliability/test_hostile_states.py`` runs in CI;
this harness runs for as long as you give it::

    pip install atheris
    python benchmarks/fuzz_states.py --seconds 600      # prints runs and crashes

Each kind's saved state is written to a corpus directory first, so atheris mutates
real files (every kind in ``silenttax._registry``), not random bytes alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import atheris

import silenttax
from silenttax.errors import StateError


def one_input(data: bytes) -> None:
    try:
        silenttax.load(data)
    except StateError as exc:
        if not str(exc):
            raise AssertionError("a StateError says what is wrong") from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--corpus", help="corpus directory (default: a new temporary one)")
    args, rest = parser.parse_known_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conformance.components import EXAMPLES

    corpus = Path(args.corpus or tempfile.mkdtemp(prefix="silenttax-states-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for kind, example in EXAMPLES.items():
        text = example.make().to_json()
        (corpus / f"{kind}.json").write_text(text)
        silenttax.load(text)  # every kind's modules imported before instrumenting
    atheris.instrument_all()  # coverage of everything loaded, silenttax's loaders included
    print(f"corpus: {len(EXAMPLES)} kinds in {corpus}", flush=True)
    argv = [sys.argv[0], *rest, f"-max_total_time={args.seconds}", "-max_len=1048576", str(corpus)]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()  # prints libFuzzer's figures; exits non-zero with the input on a crash


if __name__ == "__main__":
    main()
