"""Safe loading of released checkpoints: safetensors, or ``torch.load(weights_only=True)`` with a small allow-list.

Nothing is ever unpickled silently: a pickle that needs a class outside the allow-list fails with one line naming
that class, found without executing the file. The Python API can allow more classes (``allow_globals``) for files a
user trusts; the command line never does.
"""

from __future__ import annotations

import argparse
import io
import os
import pickletools
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from vpd.errors import first_line

# Harmless metadata types found in released VPD checkpoints (the referring ones store their argparse.Namespace).
SAFE_GLOBALS: tuple[Any, ...] = (argparse.Namespace,)


def load_checkpoint(path: str | os.PathLike[str], allow_globals: Iterable[Any] = ()) -> dict[str, Any]:
    """Reads a checkpoint file into a dict without executing code.

    Args:
        path: ``.safetensors``, or a torch pickle (``.pth`` / ``.pt`` / ``.ckpt`` / ``.bin``).
        allow_globals: further classes/functions to allow in a pickle, for files you trust.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an empty, truncated or unreadable file, or a pickle that needs a class outside the allow-list
            (named).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a checkpoint")
    if path.endswith(".safetensors"):
        from vpd.modeling.hub import read_safetensors

        return read_safetensors(path)
    allowed = [*SAFE_GLOBALS, *allow_globals]
    try:
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the failure below says what matters
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        names = {_qualname(a) for a in allowed}
        unsafe = [name for name in pickle_globals(path) if name not in names and not _is_torch_rebuild(name)]
        if unsafe:
            raise ValueError(
                f"{path}: refusing to unpickle {', '.join(unsafe[:3])}: a checkpoint holds tensors and plain "
                "containers, and loading this file could run code"
            ) from None
        raise ValueError(f"{path}: not a readable torch checkpoint ({_reason(err)})") from None
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(loaded).__name__}")
    return dict(loaded)


def _reason(err: BaseException) -> str:
    """The informative part of a torch.load error, without torch's advice to retry with ``weights_only=False``."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation of torch.load", 1)[0]
    if isinstance(err, EOFError) and not text.strip():
        return "truncated file"
    return first_line(type(err)(text) if text.strip() else err)


def _is_torch_rebuild(name: str) -> bool:
    """Globals every tensor checkpoint uses (already allowed by ``weights_only``)."""
    return name.startswith(("torch.", "collections.OrderedDict", "_codecs.encode"))


def pickle_globals(path: str | os.PathLike[str]) -> list[str]:
    """``module.name`` of every global a torch checkpoint (zip or legacy) or raw pickle would import, in order.

    The opcodes are only read (``pickletools``), never executed.
    """
    path = os.fspath(path)
    streams: list[bytes] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                streams = [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")]
        else:
            with open(path, "rb") as handle:
                streams = [handle.read()]
    except (OSError, zipfile.BadZipFile):
        return []
    found: list[str] = []
    for data in streams:
        stream = io.BytesIO(data)
        while stream.tell() < len(data):  # a legacy torch file is several pickles in a row
            strings: list[str] = []
            try:
                for opcode, arg, _ in pickletools.genops(stream):
                    if opcode.name in ("GLOBAL", "INST"):
                        found.append(str(arg).replace(" ", "."))
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        found.append(f"{strings[-2]}.{strings[-1]}")
                    elif isinstance(arg, str):
                        strings.append(arg)
            except Exception:  # not a pickle (any more): the tensor data of a legacy file follows the pickles
                break
    return list(dict.fromkeys(found))


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
