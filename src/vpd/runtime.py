"""Where models run: device names from users, checked once, with one-line errors."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the command line parses its flags without it
    import torch

#: The precisions a user can name (``--dtype``, ``dtype=``); ``auto`` picks one for the device.
DTYPE_NAMES = ("fp32", "bf16", "fp16")
DTYPE_CHOICES = ("auto", *DTYPE_NAMES)


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU) or a torch device string, checked to exist on this machine.

    Raises:
        ValueError: a name torch does not know (``"bogus"``), or a device this machine does not have.
    """
    import torch

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device {name!r}: not a device name; expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: this machine has no CUDA GPU that torch can use; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        available = getattr(getattr(torch, device.type, None), "is_available", None)
        if available is None or not available():
            raise ValueError(f"device {name!r}: not available on this machine")
    return device


def torch_dtypes() -> dict[str, torch.dtype]:
    """:data:`DTYPE_NAMES` -> torch dtypes."""
    import torch

    return dict(zip(DTYPE_NAMES, (torch.float32, torch.bfloat16, torch.float16)))


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux ``/proc/cpuinfo``; empty where that cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_bf16_units(flags: frozenset[str] | None = None) -> str | None:
    """The CPU's bfloat16 matrix units: ``"AMX"``, ``"AVX512-BF16"`` or None (bf16 is then emulated, and runs far
    slower than fp32: never picked automatically)."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX512-BF16"
    return None


def resolve_dtype(
    name: str | torch.dtype | None, device: torch.device | str = "cpu", *, flags: frozenset[str] | None = None
) -> tuple[torch.dtype, str]:
    """The compute dtype for ``name`` on ``device`` and why, in words.

    ``"auto"`` picks bf16 on CUDA GPUs that support it and on CPUs with bf16 matrix units (AMX or AVX512-BF16, read
    from the CPU's flags), fp32 everywhere else. ``"fp32"`` / ``"bf16"`` / ``"fp16"`` (or a torch dtype) are taken as
    asked, except fp16 on a CPU without fp16 units (torch would emulate it), which is refused.

    Raises:
        ValueError: an unknown name, or fp16 on a CPU that cannot run it.
    """
    import torch

    dtypes = torch_dtypes()
    device = torch.device(device)
    if isinstance(name, torch.dtype):
        if name not in dtypes.values():
            raise ValueError(f"dtype {name}: expected one of {', '.join(DTYPE_CHOICES)}")
        name = dtype_name(name)
    name = "auto" if name is None else str(name).lower()
    if name not in DTYPE_CHOICES:
        raise ValueError(f"dtype {name!r}: expected one of {', '.join(DTYPE_CHOICES)}")
    if name == "auto":
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16, "auto: this GPU supports bf16"
            return torch.float32, "auto: this GPU has no bf16 support"
        if device.type == "cpu":
            units = cpu_bf16_units(flags)
            if units is not None:
                return torch.bfloat16, f"auto: this CPU has {units}"
            return torch.float32, "auto: this CPU has no bf16 matrix units (AMX / AVX512-BF16)"
        return torch.float32, f"auto: fp32 on {device.type}"
    if name == "fp16" and device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        if not {"avx512_fp16", "amx_fp16"} & flags:
            raise ValueError("dtype fp16: this CPU has no fp16 units (AVX512-FP16 / AMX-FP16); use bf16 or fp32")
    note = ""
    if name == "bf16" and device.type == "cpu" and cpu_bf16_units(flags) is None:
        note = " (this CPU has no bf16 matrix units: expect it to run far slower than fp32)"
    return dtypes[name], f"as asked{note}"


def dtype_name(dtype: torch.dtype) -> str:
    """``fp32`` / ``bf16`` / ``fp16`` for those torch dtypes, else torch's own name."""
    names = {v: k for k, v in torch_dtypes().items()}
    return names.get(dtype, str(dtype).removeprefix("torch."))


_ANNOUNCED: set[tuple[str, str]] = set()


def announce_precision(dtype: torch.dtype, reason: str, device: torch.device | str) -> None:
    """Prints the chosen precision once per process (per device and choice), on stderr."""
    import sys

    key = (str(device), f"{dtype}{reason}")
    if key in _ANNOUNCED:
        return
    _ANNOUNCED.add(key)
    print(f"vpd: running in {dtype_name(dtype)} on {device} ({reason})", file=sys.stderr)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere): hands freed heap pages back to the operating system."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory() -> None:
    """Returns the C heap's free pages to the operating system where the C library can (glibc); else nothing.

    Freed tensors of a few MiB land in the heap, not back with the system, and the heap's holes do not always fit
    what is asked for next: packing weight after weight would take new memory while the old weights' pages stay
    resident, and a bf16 depth forward left 0.26-0.42 GiB resident after it ended. Walking the heap takes 10-15 ms
    in a process holding the SD-size depth model (2-core Intel Xeon)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
