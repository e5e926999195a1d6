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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from vpd import __version__
from vpd.configuration import ConfigError, from_dict, to_dict
from vpd.errors import first_line

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_TYPES: dict[str, type[PretrainedModel]] = {}

M = TypeVar("M", bound="PretrainedModel")
#: The parts of an ``AutoencoderKL`` a model may leave out (VPD and DPT one-step models never decode).
DECODER_PARTS = ("decoder.", "post_quant_conv.")


class PretrainedModel(nn.Module):
    """Mixin for vpd models: subclasses set ``model_type`` and ``config_class`` and take ``config`` first."""

    model_type: ClassVar[str]
    config_class: ClassVar[type]
    config: Any
    #: The folder or hub id :meth:`from_pretrained` loaded this model from (None: built in memory).
    pretrained_source: str | None = None
    #: Where the model keeps its Stable Diffusion VAE (a dotted submodule name), for :meth:`load_vae_weights`.
    vae_module: ClassVar[str] = "backbone.vae"
    #: Children that ``compile=True`` compiles as graphs of their own (each called by the forward as a module);
    #: empty: the whole model is one graph (see :func:`vpd.inference.compiled.compile_model`).
    compile_parts: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            MODEL_TYPES[cls.model_type] = cls

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of storing them (the backbone's UNet, for VPD)."""
        backbone = getattr(self, "backbone", None)
        if backbone is None or not hasattr(backbone, "enable_gradient_checkpointing"):
            raise NotImplementedError(f"{type(self).__name__} does not support gradient checkpointing")
        backbone.enable_gradient_checkpointing()

    @property
    def vae_scaling_factor(self) -> float:
        """The factor the model scales its VAE latents by."""
        factor: Any = self.get_submodule(self.vae_module).scaling_factor
        return float(factor)

    def load_vae_weights(self, vae: nn.Module, source: str) -> None:
        """Takes the weights of ``vae`` (a diffusers ``AutoencoderKL`` of this model's VAE architecture) into the
        model's VAE, as diffusers' ``vae=`` swaps one (e.g. ``stabilityai/sd-vae-ft-mse`` for SD's own). Parts the
        model does not keep (VPD's decoder) are skipped.

        Raises:
            ConfigError: ``vae`` scales its latents by another factor. ValueError: it does not fit the model's VAE
                (missing, extra or mis-shaped tensors; :func:`load_state_dict_strict`'s one line).
        """
        target = self.get_submodule(self.vae_module)
        scale = float(getattr(vae.config, "scaling_factor", self.vae_scaling_factor))
        if abs(scale - self.vae_scaling_factor) > 1e-6:
            raise ConfigError(
                f"model.vae {source}: its latents are scaled by {scale}, the model's by {self.vae_scaling_factor}; "
                "it is another VAE family"
            )
        kept = target.state_dict().keys()
        state = {k: v for k, v in vae.state_dict().items() if k in kept or not k.startswith(DECODER_PARTS)}
        load_state_dict_strict(target, state, source=f"model.vae {source}")

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Writes ``config.json`` and ``model.safetensors`` into ``directory`` (created), atomically.

        The files are written into a temporary sibling folder first, which is then renamed to ``directory`` (an
        existing one is moved aside first and removed after), so the config and the weights always change together
        and an interrupted save never leaves a half-written or mismatched checkpoint. Files and folder get the
        permissions of the process umask, like any file the user writes.

        Raises:
            OSError: the folder cannot be written (disk full, permissions), naming it.
        """
        directory = Path(directory)
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        except OSError as err:
            raise OSError(f"cannot write the model folder {directory}: {err.strerror or err}") from None
        try:
            config = {"model_type": self.model_type, "vpd_version": __version__, **to_dict(self.config)}
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "model_type": self.model_type})
            self._save_extras(tmp)
            umask = _umask()
            for path in tmp.rglob("*"):
                os.chmod(path, (0o666 if path.is_file() else 0o777) & ~umask)
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
            if not directory.exists():
                os.rename(tmp, directory)
            else:  # config and weights change together: the old folder moves aside, the new one takes its name
                old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
                os.rename(directory, old / directory.name)
                os.rename(tmp, directory)
                shutil.rmtree(old, ignore_errors=True)
        except Exception as err:  # disk full shows up as OSError, SafetensorError or RuntimeError
            reason = first_line(err)
            raise OSError(f"cannot write the model folder {directory}: {reason}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    def _save_extras(self, directory: Path) -> None:
        """Writes what a model keeps beside its weights (a bundled text encoder) into the new folder."""

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
        raw = read_config_json(config_path)
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
            if dtype is not None:
                model.to(dtype)  # on meta: free; tells each tensor's compute dtype (float32 output layers stay)
        dtypes = {k: v.dtype for k, v in model.state_dict().items()} if dtype is not None else None
        state = read_safetensors(weights_path, device=device, dtype=dtypes)
        load_state_dict_strict(model, state, source=str(weights_path), assign=True)
        if dtype is not None:
            model.to(dtype)  # what the file does not hold (non-persistent buffers); the weights already are
        model.pretrained_source = str(source)  # where companions saved beside the weights are found
        return model.eval()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_config_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``config.json`` as a dict; ValueError naming the file when it is not a JSON object."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, got a {type(raw).__name__}")
    return raw


def read_safetensors(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype | Mapping[str, torch.dtype] | None = None,
) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file; ValueError naming the file when it is truncated or corrupt.

    With ``dtype`` (one dtype, or one per tensor name), floating-point tensors are cast one at a time as they are
    read, so a bf16 model never holds a second, fp32 copy of its weights.
    """
    try:
        if dtype is None:
            return dict(load_file(str(path), device=str(device)))
        with safe_open(str(path), framework="pt") as f:  # checks the header (the data is not touched)
            keys = set(f.keys())
        state = {}
        for key, tensor in _read_tensors(path):
            wanted = dtype.get(key) if isinstance(dtype, Mapping) else dtype
            state[key] = (tensor.to(wanted) if wanted is not None and tensor.is_floating_point() else tensor).to(device)
        if set(state) != keys:
            raise ValueError(f"the header lists {len(keys)} tensors, {len(state)} were read")
        return state
    except Exception as err:  # SafetensorError (truncated header/data), OSError, ... : one line, not a traceback
        reason = first_line(err)
        raise ValueError(f"{path}: incomplete or corrupt safetensors file ({reason}); fetch or save it again") from None


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def _read_tensors(path: str | os.PathLike[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """The tensors of a ``.safetensors`` file one at a time, read with plain file reads.

    safetensors' own readers map the whole file: every page they touch counts in the process's resident memory
    until the file is closed, so casting a checkpoint on the way in would still hold all of its float32 bytes. Read
    here, one float32 tensor at a time is the most there ever is beside the cast model.
    """
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        start = 8 + size
        for key, info in header.items():
            if key == "__metadata__":
                continue
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            tensor = torch.empty(info["shape"], dtype=dtype)
            begin, end = info["data_offsets"]
            if end - begin != tensor.numel() * tensor.element_size():
                raise ValueError(f"{key}: {end - begin} bytes for shape {info['shape']} {info['dtype']}")
            if tensor.numel():
                f.seek(start + begin)
                buffer: Any = tensor.view(-1).view(torch.uint8).numpy()  # the tensor's own bytes
                if f.readinto(buffer) != end - begin:
                    raise ValueError(f"{key}: the file ends inside its data")
            yield key, tensor


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
    """``load_state_dict(strict=True)`` whose error names the missing, unexpected, mis-shaped and
    mis-typed (integer for float) keys in one line, and refuses NaN / infinite weights."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    kinds = [
        f"{k} {state[k].dtype} vs model {expected[k].dtype}"
        for k in expected
        if k in state and state[k].is_floating_point() != expected[k].is_floating_point()
    ]
    shapes += kinds
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped or mis-typed", shapes)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:3])}{more}")
        raise ValueError(f"{source} does not fit the model: " + "; ".join(parts))
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        more = f" (+{len(broken) - 3} more)" if len(broken) > 3 else ""
        raise ValueError(f"{source}: {len(broken)} tensors hold NaN or infinite values: {', '.join(broken[:3])}{more}")
    model.load_state_dict(state, strict=True, assign=assign)
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise ValueError(f"{source}: tensors left uninitialised after loading: {', '.join(leftover[:3])}")
