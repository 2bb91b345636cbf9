"""Environment fingerprint: what a measurement ran on, and its known pitfalls."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any, ClassVar

import psutil
from pydantic import Field

from silenttax._deps import imported
from silenttax._state import State
from silenttax._system import usable_cores
from silenttax.report import Finding, Report, Severity
from silenttax.report._codes import make_finding

__all__ = ["PACKAGES", "Environment", "environment"]

#: Distributions whose versions are recorded when installed (read from metadata, never imported).
PACKAGES = (
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "torch",
    "torchvision",
    "torchao",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "onnxscript",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "transformers",
    "tensorflow",
    "jax",
    "nvidia-ml-py",
    "silenttax",
)
_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "TORCH_NUM_THREADS",
)


class Environment(State):
    """Where a measurement ran: interpreter, OS, CPU, threads, library versions.

    Versions are read from distribution metadata; heavy packages are never
    imported (torch thread settings and CUDA versions are recorded only when
    torch is already imported).
    """

    KIND: ClassVar[str] = "silenttax.environment"

    python: str
    """Python version and implementation."""
    platform: str
    """OS, release and machine."""
    cpu_model: str
    """CPU model name."""
    cpu_flags: list[str] = Field(default_factory=list)
    """Inference-relevant CPU flags present (AVX2, AVX-512, VNNI, AMX, NEON...)."""
    cpu_count: int
    """Logical CPUs on the machine."""
    physical_cores: int | None = None
    """Physical cores, when known."""
    affinity: int
    """CPUs this process may run on."""
    load_average: list[float] = Field(default_factory=list)
    """1, 5 and 15 minute load averages (empty where not available)."""
    memory_total: int
    """Total RAM, bytes."""
    threads: dict[str, str] = Field(default_factory=dict)
    """Thread settings: OMP/MKL/OpenBLAS env vars, torch intra/inter-op threads."""
    packages: dict[str, str] = Field(default_factory=dict)
    """Installed versions of the packages that matter for inference."""
    accelerators: dict[str, str] = Field(default_factory=dict)
    """CUDA / cuDNN / driver versions, when known without importing anything heavy."""
    runtimes: list[str] = Field(default_factory=list)
    """ML runtimes already imported in this process (torch, onnxruntime, ...)."""

    def diff(self, other: Environment) -> dict[str, tuple[Any, Any]]:
        """What differs, as ``{"packages.torch": ("2.3.0", "2.13.0"), ...}`` (self -> other).

        Volatile fields (load average) are left out.

        Examples:
            >>> a = environment()
            >>> b = a.model_copy(update={"packages": {**a.packages, "torch": "9.9"}})
            >>> a.diff(b)["packages.torch"][1]
            '9.9'
        """
        out: dict[str, tuple[Any, Any]] = {}
        mine, theirs = self.model_dump(), other.model_dump()
        for key in mine:
            if key in ("kind", "schema_version", "load_average", "runtimes"):
                continue
            a, b = mine[key], theirs[key]
            if isinstance(a, dict):
                for sub in sorted(set(a) | set(b)):
                    if a.get(sub) != b.get(sub):
                        out[f"{key}.{sub}"] = (a.get(sub), b.get(sub))
            elif a != b:
                out[key] = (a, b)
        return out

    def report(self) -> Report:
        """Known pitfalls: oversubscribed threads, ORT spinning beside torch, a loaded machine."""
        findings: list[Finding] = []
        cores = self.affinity
        for var, value in sorted(self.threads.items()):
            if value.isdigit() and int(value) > cores:
                findings.append(
                    make_finding(
                        "dependency.threads",
                        severity=Severity.WARNING,
                        subject=var,
                        message=(
                            f"{var}={value} asks for more threads than the {cores} CPUs this "
                            "process may use: oversubscription can make each call many times slower"
                        ),
                        metric="threads",
                        value=float(value),
                        threshold=float(cores),
                        recommendation=f"Set {var} to at most {cores}.",
                        detector="benchmark.Environment",
                    )
                )
        if {"torch", "onnxruntime"} <= set(self.runtimes):
            findings.append(
                make_finding(
                    "dependency.ort_spinning",
                    severity=Severity.INFO,
                    subject="onnxruntime",
                    message=(
                        "torch and onnxruntime share this process: ORT's intra-op threads spin "
                        "after each run and starve torch's thread pool (p99 up to 10x)"
                    ),
                    recommendation=(
                        "Create ORT sessions with session.intra_op.allow_spinning=0 (the "
                        "silenttax.benchmark.onnx_fn default) or use one backend per process."
                    ),
                    detector="benchmark.Environment",
                )
            )
        if self.load_average and self.load_average[0] > cores:
            findings.append(
                make_finding(
                    "dependency.load",
                    severity=Severity.INFO,
                    subject="machine",
                    message=(
                        f"load average {self.load_average[0]:.2f} exceeds the {cores} usable CPUs: "
                        "silenttax's A/B measurements sense the load per block, leave contended "
                        "blocks out and say 'inconclusive: machine busy' when they are most of "
                        "a run; a single timing taken now is not the model's"
                    ),
                    metric="load_average",
                    value=self.load_average[0],
                    threshold=float(cores),
                    detector="benchmark.Environment",
                )
            )
        findings.append(
            make_finding(
                "dependency.environment",
                severity=Severity.OK,
                subject="environment",
                message=(
                    f"{self.python} on {self.platform}, {self.cpu_model} "
                    f"({self.affinity}/{self.cpu_count} CPUs; {', '.join(self.cpu_flags) or 'no'} "
                    f"flags); " + ", ".join(f"{k} {v}" for k, v in sorted(self.packages.items()))
                ),
                evidence=self.model_dump(mode="json"),
                detector="benchmark.Environment",
            )
        )
        return Report(
            findings=findings,
            source="benchmark.Environment.report",
            environment=self.model_dump(mode="json"),
        )


def _cpu_info() -> tuple[str, list[str]]:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), "x86_64"):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in _FLAGS if f in flags]


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def environment() -> Environment:
    """Fingerprint this process's environment (cheap; imports nothing heavy).

    Examples:
        >>> env = environment()
        >>> env.cpu_count >= env.affinity >= 1, "numpy" in env.packages
        (True, True)
    """
    model, flags = _cpu_info()
    affinity = usable_cores()
    threads = {var: os.environ[var] for var in _THREAD_VARS if var in os.environ}
    accelerators: dict[str, str] = {}
    torch = imported("torch")
    if torch is not None:
        threads["torch.intra_op"] = str(torch.get_num_threads())
        threads["torch.inter_op"] = str(torch.get_num_interop_threads())
        cuda = getattr(torch.version, "cuda", None)
        if cuda:
            accelerators["cuda"] = str(cuda)
            cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
            if cudnn:
                accelerators["cudnn"] = str(cudnn)
    pynvml = imported("pynvml")
    if pynvml is not None:
        try:
            driver = pynvml.nvmlSystemGetDriverVersion()
            accelerators["nvidia_driver"] = driver.decode() if isinstance(driver, bytes) else driver
        except Exception:  # not initialised or no driver: nothing to record
            pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return Environment(
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        cpu_model=model,
        cpu_flags=flags,
        cpu_count=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        affinity=affinity or 1,
        load_average=[round(x, 2) for x in load],
        memory_total=psutil.virtual_memory().total,
        threads=threads,
        packages=_versions(),
        accelerators=accelerators,
        runtimes=[n for n in ("torch", "onnxruntime", "tensorflow", "jax") if imported(n)],
    )
