"""Does int8 pay on this CPU? What the CPU's flags say about its int8 dot products."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass

from silenttax._deps import imported

__all__ = ["Int8Support", "int8_help", "int8_support"]

#: x86 instructions that multiply-accumulate int8 pairs into 32 bits in one step.
X86_INT8 = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Arm instructions that do the same (SDOT/UDOT and the int8 matrix multiply).
ARM_INT8 = ("asimddp", "i8mm")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
_ARM = ("aarch64", "arm64")


@dataclass(frozen=True)
class Int8Support:
    """What this CPU offers int8 inference, in one sentence and a verdict."""

    native: bool | None
    """True: native int8 dot products; False: none (int8 often does not pay); None: unknown."""
    summary: str
    """One sentence naming the flags found or missing."""
    engine: str | None
    """``torch.backends.quantized.engine`` when torch is imported (x86, fbgemm, qnnpack...)."""
    saturates: bool
    """ONNX Runtime's u8 x s8 kernels saturate their 16-bit intermediate here (x86 without
    VNNI): quantize with ``reduce_range=True``."""

    def help(self) -> str:
        """What would make int8 pay, for a recommendation."""
        return int8_help(native=self.native, arm="Arm" in self.summary)


def int8_help(*, native: bool | None, arm: bool) -> str:
    """What would make int8 pay on a CPU with (``native``) or without native int8 dot products.

    Examples:
        >>> int8_help(native=False, arm=False).startswith("int8 has no native dot product")
        True
    """
    if native:
        return (
            "int8 kernels are native here, so the quantize/dequantize steps dominate at this "
            "size: try a larger batch, static quantization, or keep fp32"
        )
    return (
        "int8 has no native dot product on this CPU: keep fp32, try the other runtime's int8 "
        "(ONNX Runtime vs torch), or serve on a CPU with "
        + (
            "dotprod/i8mm (Armv8.4 or newer, e.g. Graviton 3)"
            if arm
            else "VNNI or AMX (Intel Cascade Lake or newer, AMD Zen 4 or newer)"
        )
    )


def int8_support(flags: Sequence[str], machine: str | None = None) -> Int8Support:
    """Read the int8 story off the CPU flags (``environment().cpu_flags``).

    Examples:
        >>> int8_support(["avx2", "fma"], "x86_64").native
        False
        >>> int8_support(["avx2", "avx512_vnni"], "x86_64").summary
        'this x86 CPU has avx512_vnni: native int8 dot products'
        >>> int8_support(["asimd", "asimddp"], "aarch64").native
        True
    """
    arch = (machine or platform.machine()).lower()
    have = set(flags)
    torch = imported("torch")
    engine = str(torch.backends.quantized.engine) if torch is not None else None
    if arch in _X86:
        found = [f for f in X86_INT8 if f in have]
        if found:
            return Int8Support(
                True,
                f"this x86 CPU has {', '.join(found)}: native int8 dot products",
                engine,
                False,
            )
        return Int8Support(
            False,
            "this x86 CPU has no AVX512-VNNI, AVX-VNNI or AMX-INT8: int8 matrix products take "
            "the AVX2 path (pairs of u8 x s8 products summed in 16 bits), often no faster than "
            "fp32 sgemm",
            engine,
            True,
        )
    if arch in _ARM or arch.startswith("arm"):
        found = [f for f in ARM_INT8 if f in have]
        if found:
            return Int8Support(
                True,
                f"this Arm CPU has {', '.join(found)}: native int8 dot products",
                engine,
                False,
            )
        if not have:
            return Int8Support(
                None, "this Arm CPU's flags could not be read (no /proc/cpuinfo)", engine, False
            )
        return Int8Support(
            False,
            "this Arm CPU has no dotprod (asimddp) or i8mm: int8 matrix products fall back to "
            "widening NEON multiplies, often no faster than fp32",
            engine,
            False,
        )
    return Int8Support(None, f"int8 support on {arch} CPUs is not known", engine, False)
