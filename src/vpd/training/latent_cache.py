"""An opt-in disk cache of the frozen VAE encoder's outputs for training (``train.latent_cache: FOLDER``).

VPD and the one-step models run every training image through a frozen VAE encoder, which on a CPU costs over half of a
forward pass. Where the training images are the same every epoch (no random crop, flip or colour change before the
encoder), its output can be computed once: the cache keys each image by a SHA-256 of its exact input tensor (values,
shape, dtype, and the autocast dtype it is encoded under) and keeps the encoder's output in ``FOLDER/<encoder
fingerprint>/<key>.safetensors``. The fingerprint hashes the encoder's weights and dtype, so a changed VAE never reads
another's latents, and a key is the content itself, so a changed image never reads a stale one. Files are written
atomically (several processes may share a folder). A model takes part through two members: ``latent_cache`` (None, or
the cache its forward consults) and ``cached_encoder()`` (the frozen module whose output is cached); :func:`attach`
finds them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vpd.configuration import ConfigError


class LatentCache:
    """The encoder's outputs for inputs seen before, from disk; the others computed in one call and stored.

    Args:
        folder: the cache folder (created); the encoder's fingerprint names a subfolder.
        encoder: the frozen module whose outputs are cached (fingerprinted now).
    """

    def __init__(self, folder: str | os.PathLike[str], encoder: nn.Module) -> None:
        self.folder = Path(folder) / fingerprint(encoder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def __call__(self, x: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``encode(x)`` for a batch ``x`` ``[B, ...]``, reading the samples seen before from disk."""
        from safetensors.torch import load_file

        autocast = _autocast_state(x.device.type)
        paths = [self.folder / f"{_content_key(sample, autocast)}.safetensors" for sample in x]
        outputs: list[torch.Tensor | None] = [load_file(p)["latent"] if p.is_file() else None for p in paths]
        missing = [i for i, out in enumerate(outputs) if out is None]
        self.hits += len(paths) - len(missing)
        self.misses += len(missing)
        if missing:
            with torch.no_grad():
                computed = encode(x[missing])
            for i, value in zip(missing, computed, strict=True):
                outputs[i] = value
                _save_atomic(paths[i], value)
        dtype = next(out.dtype for out in outputs if out is not None)
        return torch.stack([out.to(x.device, dtype) for out in outputs if out is not None])

    def summary(self) -> str:
        total = self.hits + self.misses
        rate = self.hits / total if total else 0.0
        return f"latent cache: {self.hits} of {total} images read from {self.folder} ({rate:.0%})"


def fingerprint(encoder: nn.Module) -> str:
    """A short SHA-256 of the encoder's weights (names, shapes, dtypes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(_bytes(tensor))
    return digest.hexdigest()[:16]


def _bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _autocast_state(device_type: str) -> str:
    """What autocast would run the encoder in (an encoding under bf16 autocast is another value than in fp32)."""
    if torch.is_autocast_enabled(device_type):
        return str(torch.get_autocast_dtype(device_type))
    return "off"


def _content_key(sample: torch.Tensor, autocast: str) -> str:
    digest = hashlib.sha256(f"{tuple(sample.shape)}:{sample.dtype}:autocast={autocast}".encode())
    digest.update(_bytes(sample))
    return digest.hexdigest()


def _save_atomic(path: Path, value: torch.Tensor) -> None:
    from safetensors.torch import save_file

    handle, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file({"latent": value.detach().to("cpu").contiguous()}, staged)
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


def attach(model: nn.Module, folder: str | os.PathLike[str]) -> list[LatentCache]:
    """Gives every part of ``model`` that can cache its frozen encoder a :class:`LatentCache` in ``folder``.

    Raises:
        ConfigError: the model has no such part, or its encoder is being trained (its outputs change every step).
    """
    caches: list[LatentCache] = []
    part: Any
    for part in model.modules():
        if not hasattr(part, "cached_encoder") or not hasattr(part, "latent_cache"):
            continue
        encoder = part.cached_encoder()
        if any(parameter.requires_grad for parameter in encoder.parameters()):
            raise ConfigError("train.latent_cache: the VAE encoder is being trained, so its outputs change every step")
        part.latent_cache = LatentCache(folder, encoder)
        caches.append(part.latent_cache)
    if not caches:
        raise ConfigError(f"train.latent_cache: a {type(model).__name__} has no frozen encoder whose outputs to cache")
    return caches
