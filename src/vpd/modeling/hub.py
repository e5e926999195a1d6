"""vpd's own checkpoint format: ``config.json`` (the typed model config) + ``model.safetensors`` (the weights).

``from_pretrained`` rebuilds a model from those two files alone, from a local folder or a Hugging Face hub repo id.
The model is built on the meta device and the weights are assigned, so loading a 900M-parameter model costs no
random initialisation.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vpd import __version__
from vpd.configuration import ConfigError, from_dict, to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPES: dict[str, type[PretrainedModel]] = {}

M = TypeVar("M", bound="PretrainedModel")


class PretrainedModel(nn.Module):
    """Mixin for vpd models: subclasses set ``model_type`` and ``config_class`` and take ``config`` first."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]
    config: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            MODEL_TYPES[cls.model_type] = cls

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Writes ``config.json`` and ``model.safetensors`` into ``directory`` (created), atomically.

        The files are written into a temporary sibling folder which then replaces ``directory``'s files, so an
        interrupted save never leaves a half-written checkpoint.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            config = {"model_type": self.model_type, "vpd_version": __version__, **to_dict(self.config)}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "model_type": self.model_type})
            directory.mkdir(exist_ok=True)
            for name in (CONFIG_NAME, WEIGHTS_NAME):
                os.replace(tmp / name, directory / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def from_pretrained(
        cls: type[M],
        source: str | os.PathLike[str],
        *,
        revision: str | None = None,
        local_files_only: bool | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> M:
        """Loads a model saved by :meth:`save_pretrained` from a folder or a hub repo id.

        Called on :class:`PretrainedModel` itself, the class is picked from ``config.json``'s ``model_type``.
        """
        config_path, weights_path = resolve_checkpoint(source, revision=revision, local_files_only=local_files_only)
        raw = json.loads(Path(config_path).read_text())
        model_type = raw.pop("model_type", None)
        raw.pop("vpd_version", None)
        model_cls: type[M] = cls
        if model_type not in MODEL_TYPES:
            raise ValueError(f"{config_path}: unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}")
        if cls is PretrainedModel:
            model_cls = MODEL_TYPES[model_type]  # type: ignore[assignment]
        elif model_type != cls.model_type:
            raise ValueError(f"{source} holds a {model_type!r} model, not {cls.model_type!r}")
        try:
            config: Any = from_dict(model_cls.config_class, raw)
        except ConfigError as err:
            raise ValueError(f"{config_path}: {err}") from None
        with torch.device("meta"):
            model = model_cls(config)
        state = load_file(str(weights_path), device=str(device))
        load_state_dict_strict(model, state, source=str(weights_path), assign=True)
        if dtype is not None:
            model.to(dtype)
        return model.eval()


def resolve_checkpoint(
    source: str | os.PathLike[str], *, revision: str | None = None, local_files_only: bool | None = None
) -> tuple[str, str]:
    """Paths of ``config.json`` and ``model.safetensors`` in a local folder or a hub repo (downloaded/cached)."""
    source = str(source)
    if os.path.isdir(source):
        paths = [os.path.join(source, name) for name in (CONFIG_NAME, WEIGHTS_NAME)]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{source}: not a vpd checkpoint folder ({os.path.basename(missing[0])} missing)")
        return paths[0], paths[1]
    if os.path.exists(source) or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise FileNotFoundError(f"{source}: no such checkpoint folder (expected a folder or a hub id 'org/name')")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return (
            hf_hub_download(source, CONFIG_NAME, revision=revision, local_files_only=bool(local_files_only)),
            hf_hub_download(source, WEIGHTS_NAME, revision=revision, local_files_only=bool(local_files_only)),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(f"{source}: cannot fetch the checkpoint from the hub ({first})") from err


def load_state_dict_strict(
    model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "checkpoint", assign: bool = False
) -> None:
    """``load_state_dict(strict=True)`` whose error names the missing, unexpected and mis-shaped keys in one line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:3])}{more}")
        raise ValueError(f"{source} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise ValueError(f"{source}: tensors left uninitialised after loading: {', '.join(leftover[:3])}")
