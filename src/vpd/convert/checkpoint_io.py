"""Safe loading of released checkpoints: safetensors, or ``torch.load(weights_only=True)`` with a small allow-list.

Nothing is ever unpickled silently: a pickle that needs a class outside the allow-list fails with one line naming
that class, and the caller may allow it explicitly (``allow_globals``) if they trust the file.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

# Harmless metadata types found in released VPD checkpoints (the referring ones store their argparse.Namespace).
SAFE_GLOBALS: tuple[Any, ...] = (argparse.Namespace,)


def load_checkpoint(path: str | os.PathLike[str], allow_globals: Iterable[Any] = ()) -> dict[str, Any]:
    """Reads a checkpoint file into a dict without executing code.

    Args:
        path: ``.safetensors``, or a torch pickle (``.pth`` / ``.pt`` / ``.ckpt`` / ``.bin``).
        allow_globals: further classes/functions to allow in a pickle, for files you trust.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, or a pickle that needs a class outside the allow-list (named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return dict(load_file(path, device="cpu"))
        except Exception as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    allowed = [*SAFE_GLOBALS, *allow_globals]
    try:
        with torch.serialization.safe_globals(allowed):
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # legacy (non-zip) pickles: torch's message names the refused global
            unsafe = re.findall(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(err))
        unsafe = [name for name in unsafe if not any(_qualname(a) == name for a in allowed)]
        if unsafe:
            raise ValueError(
                f"{path}: refusing to unpickle {', '.join(unsafe[:3])} (not in the allow-list); "
                "if you trust this file, pass allow_globals=[...] with those classes"
            ) from None
        raise ValueError(f"{path}: not a readable torch checkpoint ({str(err).splitlines()[0]})") from None
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(loaded).__name__}")
    return dict(loaded)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"


def extract_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a training checkpoint.

    Handles ``{'model': sd, ...}`` (official VPD), ``{'state_dict': sd, 'meta': ...}`` (mmengine/mmseg) and a bare
    state dict; strips a DistributedDataParallel ``module.`` prefix.
    """
    state: Any = checkpoint
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(
            "no tensors found in the checkpoint (expected a state dict, or one under 'model'/'state_dict')"
        )
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors
