"""GPU statistics through NVML (the ``nvidia-ml-py`` distribution, import name ``pynvml``)."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["GpuStats", "gpu_snapshot"]


class GpuStats(BaseModel):
    """One GPU at one moment. Fields NVML does not support on a device are None."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    index: int
    """NVML device index."""
    name: str
    """Device name, e.g. ``NVIDIA H100 80GB HBM3``."""
    uuid: str | None = None
    """Device UUID."""
    utilization: float | None = None
    """Fraction of the last sample period a kernel was running (0-1)."""
    memory_utilization: float | None = None
    """Fraction of the period device memory was being read or written (0-1)."""
    memory_used: int | None = None
    """Device memory in use, bytes."""
    memory_total: int | None = None
    """Device memory in total, bytes."""
    temperature: float | None = None
    """GPU core temperature, degrees Celsius."""
    power: float | None = None
    """Power draw, watts."""
    power_limit: float | None = None
    """Enforced power limit, watts."""


_lock = threading.Lock()
_nvml: Any = None  # the pynvml module once initialised; False when unavailable


def _init() -> Any:
    global _nvml
    with _lock:
        if _nvml is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml = pynvml
            except Exception:  # no package, no driver, no device: no GPU stats
                _nvml = False
        return _nvml


def _read(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception:  # NVMLError_NotSupported and friends: field stays None
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def gpu_snapshot() -> list[GpuStats]:
    """Utilisation, memory, temperature and power of every NVIDIA GPU, via NVML.

    Returns an empty list on a machine without the NVIDIA driver, without
    GPUs, or without the ``gpu`` extra (``pip install 'silenttax[gpu]'``);
    it never raises. NVML is initialised once per process.

    Examples:
        >>> stats = gpu_snapshot()  # [] here: no NVIDIA driver on this machine
        >>> all(0 <= (g.utilization or 0) <= 1 for g in stats)
        True
    """
    nvml = _init()
    if not nvml:
        return []
    count = _read(nvml.nvmlDeviceGetCount) or 0
    out: list[GpuStats] = []
    for index in range(count):
        handle = _read(nvml.nvmlDeviceGetHandleByIndex, index)
        if handle is None:
            continue
        util = _read(nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = _read(nvml.nvmlDeviceGetMemoryInfo, handle)
        temperature = _read(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        power = _read(nvml.nvmlDeviceGetPowerUsage, handle)
        limit = _read(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        out.append(
            GpuStats(
                index=index,
                name=_text(_read(nvml.nvmlDeviceGetName, handle)) or f"gpu{index}",
                uuid=_text(_read(nvml.nvmlDeviceGetUUID, handle)),
                utilization=None if util is None else util.gpu / 100.0,
                memory_utilization=None if util is None else util.memory / 100.0,
                memory_used=None if memory is None else int(memory.used),
                memory_total=None if memory is None else int(memory.total),
                temperature=None if temperature is None else float(temperature),
                power=None if power is None else power / 1000.0,
                power_limit=None if limit is None else limit / 1000.0,
            )
        )
    return out
