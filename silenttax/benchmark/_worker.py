"""The benchmark worker: runs one model in its own process, driven over JSON lines.

Started by :mod:`silenttax.benchmark._workers` as ``python -I _worker.py`` with
*any* interpreter — the candidate environment of a stack check needs only
numpy and the model's runtime, not silenttax, so this file imports nothing
but the standard library until a model is loaded. Each request is one JSON
object on stdin; each answer one JSON object on the protocol stream (the
original stdout; the worker points fd 1 at stderr, so prints from user code
never corrupt the protocol). No pickle crosses the boundary: models and
inputs travel as files (``.onnx``, state_dict / safetensors, ``.npy``).

Requests (``{"cmd": ..., ...}``) and answers (``{"ok": true, ...}`` or
``{"ok": false, "error": ...}``):

- ``load``  ``{"spec": path}``: import the runtime, build the model, run it once.
- ``warmup`` ``{"seconds": s}``: call repeatedly for ``s`` seconds.
- ``block`` ``{"calls": n}``: time ``n`` calls; ``ns`` is the list of
  ``perf_counter_ns`` deltas measured here (the pipe is never timed).
- ``outputs`` ``{"dir": path}``: run once, save each output as ``out_<i>.npy``.
- ``env``: interpreter, installed distributions, runtime build facts.
- ``exit``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class _Model:
    """The loaded model: a no-argument callable and a way to read its outputs."""

    def __init__(self, call: Callable[[], Any], to_arrays: Callable[[Any], list[Any]]) -> None:
        self.call = call
        self.to_arrays = to_arrays


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for key in sorted(value) for x in _flatten(value[key])]
    if isinstance(value, list | tuple):
        return [x for item in value for x in _flatten(item)]
    return [value]


def _inputs(spec: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    import numpy as np

    positional, named = [], {}
    for item in spec["inputs"]:
        array = np.load(item["file"], allow_pickle=False)
        if item.get("name"):
            named[item["name"]] = array
        else:
            positional.append(array)
    return positional, named


def _factory(spec: dict[str, Any]) -> Any:
    for entry in reversed(spec.get("paths", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, _, attr = spec["factory"].partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target(**spec.get("kwargs", {}))


def _load_onnx(spec: dict[str, Any]) -> _Model:
    import numpy as np
    import onnxruntime as ort  # noqa: TID251 - a standalone worker script

    options = ort.SessionOptions()
    flag = "1" if spec.get("spinning") else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    if spec.get("threads") is not None:
        options.intra_op_num_threads = int(spec["threads"])
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        spec["model"], sess_options=options, providers=["CPUExecutionProvider"]
    )
    positional, named = _inputs(spec)
    names = [i.name for i in session.get_inputs()]
    feed = named or dict(zip(names, positional, strict=False))
    missing = [n for n in names if n not in feed]
    if missing:
        raise ValueError(f"the model's inputs {missing} have no array in the spec")

    def call() -> Any:
        return session.run(None, feed)

    return _Model(call, lambda out: [np.asarray(x) for x in out])


def _load_torch(spec: dict[str, Any]) -> _Model:
    import torch  # noqa: TID251 - a standalone worker script

    if spec.get("threads") is not None:
        torch.set_num_threads(int(spec["threads"]))
    model = _factory(spec)
    weights = spec.get("weights")
    if weights:
        if weights.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(weights, device="cpu")
        else:
            state = torch.load(weights, weights_only=True, map_location="cpu")
        model.load_state_dict(state)
    model.eval()
    positional, named = _inputs(spec)
    args = [torch.from_numpy(a) for a in positional]
    kwargs = {k: torch.from_numpy(v) for k, v in named.items()}

    def call() -> Any:
        with torch.inference_mode():
            return model(*args, **kwargs)

    def to_arrays(out: Any) -> list[Any]:
        return [x.detach().cpu().numpy() if hasattr(x, "detach") else x for x in _flatten(out)]

    return _Model(call, to_arrays)


def _load_python(spec: dict[str, Any]) -> _Model:
    import numpy as np

    fn = _factory(spec)
    positional, named = _inputs(spec)

    def call() -> Any:
        return fn(*positional, **named)

    return _Model(call, lambda out: [np.asarray(x) for x in _flatten(out)])


LOADERS = {"onnx": _load_onnx, "torch": _load_torch, "python": _load_python}


def _environment() -> dict[str, Any]:
    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower().replace("_", "-")] = dist.version
    build: dict[str, str] = {}
    torch = sys.modules.get("torch")
    if torch is not None:
        build["torch.cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        build["torch.intra_op"] = str(torch.get_num_threads())
        for line in torch.__config__.show().splitlines():
            line = line.strip()
            if "oneDNN" in line or "MKL-DNN" in line or line.startswith("- Intel(R) Math Kernel"):
                build.setdefault("torch.onednn" if "DNN" in line else "torch.mkl", line[:200])
    ort = sys.modules.get("onnxruntime")
    if ort is not None:
        build["onnxruntime.providers"] = ",".join(ort.get_available_providers())
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable,
        "prefix": sys.prefix,
        "packages": packages,
        "build": build,
        "threads": {var: os.environ[var] for var in THREAD_VARS if var in os.environ},
    }


class _Server:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.model: _Model | None = None

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def need_model(self) -> _Model:
        if self.model is None:
            raise RuntimeError("no model loaded: send 'load' first")
        return self.model

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "load":
            spec = json.loads(Path(request["spec"]).read_text(encoding="utf-8"))
            start = time.perf_counter()
            model = LOADERS[spec["kind"]](spec)
            loaded = time.perf_counter()
            model.call()
            self.model = model
            return {"load_s": loaded - start, "first_call_s": time.perf_counter() - loaded}
        if cmd == "warmup":
            model = self.need_model()
            end = time.perf_counter() + float(request["seconds"])
            calls = 0
            times = []
            while True:
                t0 = time.perf_counter_ns()
                model.call()
                times.append(time.perf_counter_ns() - t0)
                calls += 1
                if time.perf_counter() >= end and calls >= 3:
                    break
            times.sort()
            return {"calls": calls, "median_ns": times[len(times) // 2]}
        if cmd == "block":
            call = self.need_model().call
            clock = time.perf_counter_ns
            ns = []
            for _ in range(int(request["calls"])):
                t0 = clock()
                call()
                ns.append(clock() - t0)
            return {"ns": ns}
        if cmd == "outputs":
            import numpy as np

            model = self.need_model()
            directory = Path(request["dir"])
            directory.mkdir(parents=True, exist_ok=True)
            files = []
            for i, array in enumerate(model.to_arrays(model.call())):
                path = directory / f"out_{i}.npy"
                np.save(path, np.asarray(array), allow_pickle=False)
                files.append(str(path))
            return {"files": files}
        if cmd == "env":
            return _environment()
        raise ValueError(f"unknown command {cmd!r}")


def main(argv: list[str]) -> int:
    """Serve requests until ``exit`` or end of input."""
    if "--cores" in argv:
        cores = {int(c) for c in argv[argv.index("--cores") + 1].split(",") if c}
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # prints from user code and libraries go to stderr, not the protocol
    sys.stdout = sys.stderr
    server = _Server(out)
    server.send({"ok": True, "ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("cmd") == "exit":
                server.send({"ok": True})
                return 0
            answer = server.handle(request)
            server.send({"ok": True, **answer})
        except Exception as exc:  # every failure goes back to the parent, named
            server.send(
                {
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-4000:],
                }
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
