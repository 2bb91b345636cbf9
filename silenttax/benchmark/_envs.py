"""Candidate environments for a stack check: pins resolved, built with uv (pip as a
fallback), cached by the hash of what they hold; and the cheap version-lag stage.

Nothing here is downloaded implicitly: the installer is the user's (uv or pip),
with the user's index configuration (pip reads its config files; uv reads
``UV_*`` variables and ``uv.toml``; ``index_url``, ``extra_index_urls`` and
``find_links`` are passed to either), and no host is hard-coded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

from silenttax.errors import InputError, StackError
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = [
    "Index",
    "StackEnv",
    "build_env",
    "env_cache_dir",
    "find_uv",
    "index_versions",
    "installed_versions",
    "resolve_pins",
    "version_lag",
]

Installer = Literal["auto", "uv", "pip"]
MARKER = "silenttax-env.json"
#: The runtimes whose lag is worth a finding when nothing else is named.
LAG_PACKAGES = (
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "numpy",
    "transformers",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "tensorflow",
    "jax",
)
_RELEASE = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release(version: str) -> tuple[int, ...]:
    """The release tuple of a version (``"2.13.0+cpu"`` -> ``(2, 13, 0)``)."""
    match = _RELEASE.match(version)
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


@dataclass(frozen=True)
class Index:
    """Where packages come from, passed to uv and pip alike (None/empty: their config)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """Command-line options for ``pip install``/``pip index`` and ``uv pip install``."""
        out = ["--index-url", self.index_url] if self.index_url else []
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        for link in self.find_links:
            out += ["--find-links", link]
        return out


@dataclass(frozen=True)
class StackEnv:
    """One side's interpreter: this one, an existing one, or one built from pins."""

    python: str
    """The interpreter the worker runs on."""
    source: Literal["current", "existing", "uv", "pip"]
    """Where it came from: this process, a given interpreter, or built by an installer."""
    requirements: tuple[str, ...] = ()
    """What was installed (``name==version`` pins and extra requirements)."""
    path: str | None = None
    """The environment's directory when silenttax built it."""
    build_seconds: float = 0.0
    """Seconds the build took (0 when it came from the cache)."""
    cached: bool = False
    """Whether it was reused from the cache."""
    log: list[str] = field(default_factory=list)
    """The installer's commands."""


def find_uv() -> str | None:
    """The uv binary: on PATH, or from the ``uv`` package (``silenttax[stack]``)."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


def env_cache_dir(env_cache: str | os.PathLike[str] | None = None) -> Path:
    """Where built environments live: ``env_cache``, ``$SILENTTAX_ENV_CACHE``, or
    ``$XDG_CACHE_HOME/silenttax/envs`` (``~/.cache/silenttax/envs``)."""
    if env_cache is not None:
        return Path(env_cache)
    if os.environ.get("SILENTTAX_ENV_CACHE"):
        return Path(os.environ["SILENTTAX_ENV_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "silenttax" / "envs"


_LIST = (
    "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name']: d.version "
    "for d in m.distributions() if d.metadata['Name']}))"
)


def installed_versions(python: str | None = None) -> dict[str, str]:
    """Installed distributions (normalised name -> version) of ``python`` (None: this one)."""
    if python is None or os.path.realpath(python) == os.path.realpath(sys.executable):
        pairs = {d.metadata["Name"]: d.version for d in metadata.distributions()}
    else:
        try:
            done = subprocess.run(
                [python, "-I", "-c", _LIST], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"cannot list the packages of {python}: {exc}") from exc
        if done.returncode != 0:
            raise StackError(f"cannot list the packages of {python}: {done.stderr.strip()[-500:]}")
        pairs = json.loads(done.stdout)
    return {normalize(k): v for k, v in pairs.items() if k}


def index_versions(
    name: str, *, index: Index | None = None, timeout: float = 30.0
) -> list[str] | str:
    """Released versions of ``name`` installable here, newest first, or the reason
    the index could not say (a string); never raises for an unreachable index.

    Asks ``pip index versions`` (which honours pip's configuration); without pip,
    ``uv pip compile`` gives the newest version only.
    """
    index = index or Index()
    command = [
        sys.executable,
        "-m",
        "pip",
        "index",
        "versions",
        name,
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "0",
        "--timeout",
        str(max(1, int(timeout))),
        *index.args(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"pip index versions: {exc}"
    for line in done.stdout.splitlines():
        if line.startswith("Available versions:"):
            versions = [v.strip() for v in line.partition(":")[2].split(",") if v.strip()]
            return sorted(versions, key=release, reverse=True)
    lines = [x for x in done.stderr.strip().splitlines() if x and "experimental" not in x]
    reason = lines[-1] if lines else "no versions listed"
    if "No module named pip" in done.stderr:
        newest = _uv_newest(name, index, timeout)
        return [newest] if newest else "neither pip nor uv could query the package index"
    return f"pip index versions {name}: {reason}"


def _uv_newest(name: str, index: Index, timeout: float) -> str | None:
    uv = find_uv()
    if uv is None:
        return None
    command = [uv, "pip", "compile", "-", "--quiet", "--no-header", "--python", sys.executable]
    try:
        done = subprocess.run(
            command + index.args(), input=name, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in done.stdout.splitlines():
        pkg, sep, version = line.strip().partition("==")
        if sep and normalize(pkg) == normalize(name):
            return version.split(";")[0].strip()
    return None


def resolve_pins(
    requested: Mapping[str, str],
    *,
    current: Mapping[str, str],
    index: Index | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Requirement specifiers for each package: ``"latest"`` -> ``"==<newest>"`` (asked
    of the index), ``"current"`` -> ``"==<installed version>"``, ``"2.14.0"`` ->
    ``"==2.14.0"``; specifiers (``">=1.20"``) are kept.

    Raises:
        InputError: an empty value, or ``"current"`` for a package not installed.
        StackError: ``"latest"`` and the index cannot be asked.
    """
    out: dict[str, str] = {}
    for raw_name, raw in requested.items():
        name = normalize(str(raw_name))
        value = str(raw).strip()
        if not name or not value:
            raise InputError(f"candidate[{raw_name!r}]: give 'latest', 'current' or a version")
        if value == "latest":
            versions = index_versions(name, index=index, timeout=timeout)
            if isinstance(versions, str) or not versions:
                raise StackError(f"{name}: cannot resolve 'latest': {versions or 'no versions'}")
            out[name] = f"=={versions[0]}"
        elif value == "current":
            if name not in current:
                raise InputError(f"candidate[{raw_name!r}]: 'current', but it is not installed")
            out[name] = f"=={current[name]}"
        elif value[0].isdigit():
            out[name] = f"=={value}"
        elif value[0] in "=<>!~":
            out[name] = value
        else:
            raise InputError(
                f"candidate[{raw_name!r}]: {value!r} is not 'latest', 'current', a version or "
                "a specifier"
            )
    return out


def _env_python(root: Path) -> Path:
    return root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, builds may race
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], what: str, timeout: float, log: list[str]) -> None:
    log.append(" ".join(command))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what}: took more than {timeout:g} s; stopped") from exc
    except OSError as exc:
        raise StackError(f"{what}: cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise StackError(f"{what} failed (status {done.returncode}):\n{tail}")


def build_env(
    requirements: Sequence[str],
    *,
    env_cache: str | os.PathLike[str] | None = None,
    installer: Installer = "auto",
    index: Index | None = None,
    timeout: float = 1800.0,
) -> StackEnv:
    """A virtual environment holding ``requirements`` on this interpreter's Python,
    built once and reused: its directory is named by the hash of the Python build,
    the platform, the installer, the requirements and the index settings.

    uv (``uv venv`` + ``uv pip install --compile-bytecode``) when it is available,
    else ``python -m venv`` + pip. Bytecode is compiled at install, or every
    worker start would pay for it (``import torch`` took 7-8 s without .pyc
    files, 3 s with them). A build that fails leaves nothing in the cache.

    Raises:
        InputError: no requirements, or ``installer="uv"`` and uv is not installed.
        StackError: the installer failed (its message is included) or timed out.
    """
    reqs = tuple(sorted(str(r).strip() for r in requirements if str(r).strip()))
    if not reqs:
        raise InputError("requirements: nothing to install")
    index = index or Index()
    uv = find_uv() if installer in ("auto", "uv") else None
    if installer == "uv" and uv is None:
        raise InputError("installer='uv' but uv is not installed (pip install 'silenttax[stack]')")
    tool: Literal["uv", "pip"] = "uv" if uv else "pip"
    key = hashlib.sha256(
        json.dumps(
            {
                "python": sys.version,
                "base": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                "machine": platform.machine(),
                "installer": tool,
                "requirements": reqs,
                "index": index.args(),
            }
        ).encode()
    ).hexdigest()[:16]
    cache = env_cache_dir(env_cache)
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / key
    python = _env_python(root)
    log: list[str] = []
    with _locked(cache / f"{key}.lock"):
        if (root / MARKER).is_file() and python.exists():
            return StackEnv(str(python), tool, reqs, str(root), 0.0, True)
        shutil.rmtree(root, ignore_errors=True)
        began = time.perf_counter()
        try:
            if uv:
                _run(
                    [uv, "venv", "--quiet", "--python", sys.executable, str(root)],
                    "uv venv",
                    timeout,
                    log,
                )
                _run(
                    [
                        uv,
                        "pip",
                        "install",
                        "--quiet",
                        "--python",
                        str(python),
                        "--compile-bytecode",
                        *index.args(),
                        *list(reqs),
                    ],
                    f"uv pip install {' '.join(reqs)}",
                    timeout,
                    log,
                )
            else:
                _run([sys.executable, "-m", "venv", str(root)], "python -m venv", timeout, log)
                _run(
                    [
                        str(python),
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--no-input",
                        *index.args(),
                        *reqs,
                    ],
                    f"pip install {' '.join(reqs)}",
                    timeout,
                    log,
                )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        seconds = time.perf_counter() - began
        marker = {"requirements": list(reqs), "installer": tool, "build_seconds": seconds}
        (root / MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return StackEnv(str(python), tool, reqs, str(root), seconds, False, log)


def _lag_finding(name: str, installed: str, versions: list[str] | str, max_minor: int) -> Finding:
    if isinstance(versions, str) or not versions:
        return make_finding(
            "dependency.version_lag",
            severity=Severity.INFO,
            subject=name,
            message=(
                f"{name} {installed}: the package index could not be reached or lists no "
                f"installable version, so its lag is unknown ({versions or 'no versions'})"
            ),
            evidence={"installed": installed, "reachable": False, "reason": str(versions)},
            detector="benchmark.version_lag",
        )
    mine = release(installed)
    newer = [v for v in versions if release(v) > mine]
    minors = sorted({release(v)[:2] for v in newer if release(v)[:2] > mine[:2]})
    majors = {release(v)[:1] for v in newer if release(v)[:1] > mine[:1]}
    newest = versions[0]
    if not newer:
        severity, message = Severity.OK, f"{name} {installed} is the newest release on the index"
    else:
        severity = Severity.WARNING if len(minors) > max_minor else Severity.INFO
        behind = (
            f"{len(minors)} minor release{'s' if len(minors) != 1 else ''}"
            if minors
            else f"{len(newer)} patch release{'s' if len(newer) != 1 else ''}"
        )
        message = f"{name} {installed} is {behind} behind the newest, {newest}" + (
            f" ({len(majors)} major)" if majors else ""
        )
    return make_finding(
        "dependency.version_lag",
        severity=severity,
        subject=name,
        message=message,
        metric="minor_releases_behind",
        value=float(len(minors)),
        threshold=float(max_minor),
        evidence={
            "installed": installed,
            "newest": newest,
            "releases_behind": len(newer),
            "minor_releases_behind": len(minors),
            "major_releases_behind": len(majors),
            "reachable": True,
        },
        recommendation=(
            f"Measure what the lag costs before upgrading: silenttax stack-check MODEL "
            f"--upgrade {name} (same model, newer stack, paired processes)."
            if newer
            else None
        ),
        detector="benchmark.version_lag",
    )


def version_lag(
    packages: Sequence[str] | None = None,
    *,
    index_url: str | None = None,
    extra_index_urls: Sequence[str] = (),
    find_links: Sequence[str] = (),
    max_minor_behind: int = 3,
    timeout: float = 30.0,
) -> Report:
    """The cheap first stage of a stack check: installed versions against the newest
    on the package index, one ``dependency.version_lag`` finding per package —
    INFO when behind, WARNING more than ``max_minor_behind`` minor releases
    behind, OK when current. An index that cannot be reached gives an INFO
    finding that says so; this never raises for it.

    Args:
        packages: Distributions to check (default: the ML runtimes installed here).
        index_url: Replace the primary index (default: the installer's config).
        extra_index_urls: More indexes.
        find_links: Local wheel directories or pages.
        max_minor_behind: Minor releases behind that are still only INFO.
        timeout: Seconds per index query.

    Raises:
        InputError: a named package is not installed, or a bad ``max_minor_behind``.

    Examples:
        >>> report = version_lag(["numpy"], index_url="http://127.0.0.1:9/simple", timeout=5)
        >>> report[0].code, report[0].evidence["installed"] == __import__("numpy").__version__
        ('dependency.version_lag', True)
    """
    if not isinstance(max_minor_behind, int) or max_minor_behind < 0:
        raise InputError(f"max_minor_behind must be an int >= 0, got {max_minor_behind!r}")
    current = installed_versions()
    if packages is None:
        names = [p for p in LAG_PACKAGES if p in current]
    else:
        names = [normalize(p) for p in packages]
        missing = [p for p in names if p not in current]
        if missing:
            raise InputError(f"packages: {missing} are not installed here")
    index = Index(index_url, tuple(extra_index_urls), tuple(find_links))
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(names)))) as pool:
        answers = list(pool.map(lambda n: index_versions(n, index=index, timeout=timeout), names))
    findings = [
        _lag_finding(name, current[name], versions, max_minor_behind)
        for name, versions in zip(names, answers, strict=True)
    ]
    return Report(findings=findings, source="benchmark.version_lag")
