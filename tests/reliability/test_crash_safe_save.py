"""A process SIGKILLed while it saves leaves the previous file loadable (atomic save)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import silenttax
from silenttax.monitor import LatencySketch

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from silenttax.drift import DriftDetector

    rng = np.random.default_rng(0)
    # a state of a few MiB, so a save takes long enough to be killed inside it
    detector = DriftDetector(exact=True).fit({f"x{i}": rng.normal(size=20_000) for i in range(8)})
    print("ready", flush=True)
    while True:
        detector.save(sys.argv[1])
    """
)


def test_sigkill_during_saves_never_leaves_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    LatencySketch().save(target)  # the previous, valid file
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    kills = 0
    for delay in (0.0, 0.003, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3):
        proc = subprocess.Popen([sys.executable, str(script), str(target)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        kills += 1
        loaded = silenttax.load(target)  # either the previous file or a whole new one
        assert type(loaded).__name__ in {"LatencySketch", "DriftDetector"}
    assert kills == 8
    # killed writers leave only their temp files beside the target, never a partial target
    assert all(p.name.startswith(".state.json.") for p in tmp_path.iterdir()
               if p.name not in {"state.json", "writer.py"})  # fmt: skip
