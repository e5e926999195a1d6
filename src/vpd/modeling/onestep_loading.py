"""Loading the one-step projects' released checkpoints as :class:`~vpd.modeling.onestep.OneStepModel`.

Two layouts, local folders or hub ids alike (diffusers' own ``from_pretrained`` reads them):

- a **diffusers pipeline** (``model_index.json`` + ``unet/``, ``vae/``, ``scheduler/``, usually ``text_encoder/`` and
  ``tokenizer/``): Marigold (``prs-eth/marigold-depth-v1-1``, ``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline``),
  Lotus-D (``LotusDPipeline``), E2E-FT (``GonzaloMG/marigold-e2e-ft-depth``, whose class name it shares with
  Marigold v1-0, so its preset is named);
- a **bare UNet folder** as GenPercept releases them (``genpercept-models/unet_depth_v2``: ``config.json`` +
  weights), with the Stable Diffusion 2.1 model it was fine-tuned from as ``base`` (its VAE, and its text encoder
  for the empty prompt), and for the DPT variant the ``dpt_head`` folder.

The empty-prompt embedding the UNets were trained with is computed once from the checkpoint's (or the base's) CLIP
text encoder, tokenizing ``""`` without padding as all four projects do, and stored in the model; a checkpoint
without a text encoder needs it given (``empty_text_embedding``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import torch

from vpd.modeling.onestep import PRESETS, TARGETS, OneStepModel, preset_config
from vpd.modeling.stable_diffusion import clean_component_config

#: ``model_index.json`` class names whose preset and target are known.
PIPELINE_CLASSES: dict[str, tuple[str, str | None]] = {
    "MarigoldDepthPipeline": ("marigold", "depth"),
    "MarigoldNormalsPipeline": ("marigold", "normals"),
    "LotusDPipeline": ("lotus-d", None),
}
#: The UNet layers GenPercept's DPT checkpoints delete (the head reads the up blocks instead).
_DPT_DROPPED = ("conv_norm_out.", "conv_out.")


def load_onestep(
    source: str | os.PathLike[str],
    *,
    preset: str | None = None,
    target: str | None = None,
    base: str | os.PathLike[str] | None = None,
    dpt_head: str | os.PathLike[str] | None = None,
    empty_text_embedding: torch.Tensor | str | os.PathLike[str] | None = None,
    torch_dtype: torch.dtype | None = None,
    variant: str | None = None,
    local_files_only: bool | None = None,
    revision: str | None = None,
) -> OneStepModel:
    """Loads a released one-step checkpoint (see the module docstring for the layouts).

    Args:
        source: a pipeline folder / hub id, or a GenPercept UNet folder / hub id (``org/name`` + ``subfolder`` is
            not a hub form; download the folder or give its local path).
        preset: the project (:data:`~vpd.modeling.onestep.PRESETS`); read from ``model_index.json`` when it says,
            ``genpercept`` (``genpercept-dpt`` with ``dpt_head``) for a bare UNet folder.
        target: ``depth``, ``disparity``, ``normals``, ``matting`` or ``dis``; read from the pipeline when it says,
            else required for a pipeline, ``depth`` for a bare UNet.
        base: the Stable Diffusion 2.1 folder / hub id a bare UNet was fine-tuned from (its ``vae/``, and its
            ``text_encoder/`` + ``tokenizer/`` for the empty prompt).
        dpt_head: GenPercept's DPT head folder (``config.json`` + ``model.safetensors``).
        empty_text_embedding: the text encoder's output for ``""`` ``[1, 2, D]`` (a tensor, or a ``.pt`` /
            ``.safetensors`` / ``.npy`` file), when the checkpoint has no text encoder.
        torch_dtype / variant / local_files_only / revision: passed to diffusers' ``from_pretrained``.

    Raises:
        FileNotFoundError / ValueError: one line naming the source and what is missing or contradictory.
    """
    from diffusers import AutoencoderKL

    source = str(source)
    common: dict[str, Any] = {"local_files_only": local_files_only, "revision": revision}
    index = _read_json(source, "model_index.json", common)
    if index is not None:  # a diffusers pipeline
        known_preset, known_target = PIPELINE_CLASSES.get(str(index.get("_class_name")), (None, None))
        if known_preset is None and preset is None:
            raise ValueError(
                f"{source}: a {index.get('_class_name')} pipeline (Marigold v1-0 and E2E-FT share this class); pass "
                f"preset= one of {', '.join(PRESETS)}"
            )
        preset = preset or known_preset
        target = target or known_target or _target_from_index(index)
        if target is None:
            raise ValueError(f"{source}: the pipeline does not say what it predicts; pass target= one of {TARGETS}")
        components = source
        unet_subfolder: str | None = "unet"
    else:
        if base is None:
            raise ValueError(
                f"{source}: no model_index.json, so a bare UNet folder (GenPercept); pass base= the Stable Diffusion "
                "2.1 folder or hub id it was fine-tuned from (for its VAE and text encoder)"
            )
        preset = preset or ("genpercept-dpt" if dpt_head is not None else "genpercept")
        target = target or "depth"
        components = str(base)
        unet_subfolder = None
    if preset not in PRESETS:
        raise ValueError(f"preset: unknown one-step project {preset!r}; known: {', '.join(PRESETS)}")
    if (preset == "genpercept-dpt") != (dpt_head is not None):
        raise ValueError("the genpercept-dpt preset and dpt_head= go together (the DPT checkpoints need their head)")

    kwargs = {**common, "torch_dtype": torch_dtype}
    unet = _load_unet(source, unet_subfolder, allow_missing=_DPT_DROPPED if dpt_head else (), variant=variant, **kwargs)
    try:
        vae = AutoencoderKL.from_pretrained(components, subfolder="vae", variant=variant, **kwargs)
    except (OSError, ValueError) as err:
        raise OSError(f"{components}: cannot load the VAE (vae/): {_first(err)}") from None
    embedding = _empty_embedding(empty_text_embedding, components, common)
    overrides: dict[str, Any] = {"text_tokens": int(embedding.shape[1])}
    scheduler = _read_json(source, "scheduler/scheduler_config.json", common) if index is not None else None
    if scheduler is not None:  # the checkpoint's own schedule (alpha-bar, Marigold's sampling)
        overrides["scheduler"] = clean_component_config(scheduler)
    if index is not None:
        overrides["pipeline"] = {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}
    head = None
    if dpt_head is not None:
        head, features = _load_dpt_head(str(dpt_head), list(reversed(unet.config.block_out_channels)))
        overrides["dpt_features"] = features
    config = preset_config(preset, target, clean_component_config(unet.config), clean_component_config(vae.config),
                           **overrides)  # fmt: skip
    model = OneStepModel(config, unet=unet, vae=vae, dpt_head=head, empty_text_embedding=embedding)
    model.pretrained_source = source
    return model.eval()


def _first(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_json(source: str, name: str, common: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON file of a local folder or hub repo, or None when it has none."""
    if os.path.isdir(source):
        path = Path(source) / name
        if not path.is_file():
            return None
    elif os.path.exists(source):
        raise ValueError(f"{source}: expected a folder or a hub id, got a file")
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = Path(hf_hub_download(source, name, revision=common["revision"],
                                        local_files_only=bool(common["local_files_only"])))  # fmt: skip
        except EntryNotFoundError:
            return None
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            reason = _first(err)
            raise FileNotFoundError(f"{source}: no such folder, and not reachable as a hub id ({reason})") from None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _target_from_index(index: dict[str, Any]) -> str | None:
    prediction = index.get("prediction_type")
    return prediction if prediction in TARGETS else None


def _load_unet(
    source: str, subfolder: str | None, *, allow_missing: tuple[str, ...], variant: str | None, **kwargs: Any
) -> Any:
    """The UNet, its weights checked: a key the checkpoint lacks is an error (diffusers would only warn), except the
    output layers a DPT checkpoint deletes."""
    from diffusers import UNet2DConditionModel

    sub = {"subfolder": subfolder} if subfolder else {}
    try:
        unet, info = UNet2DConditionModel.from_pretrained(
            source, **sub, variant=variant, output_loading_info=True, **kwargs
        )
    except (OSError, ValueError) as err:
        where = f"{source}/{subfolder}" if subfolder else source
        raise OSError(f"{where}: cannot load the UNet: {_first(err)}") from None
    missing = sorted(k for k in info.get("missing_keys", []) if not k.startswith(allow_missing))
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise ValueError(f"{source}: the UNet checkpoint lacks {len(missing)} weights: {', '.join(missing[:3])}{more}")
    return unet


def _empty_embedding(given: Any, components: str, common: dict[str, Any]) -> torch.Tensor:
    """``[1, T, D]``: given (tensor or file), or the components' CLIP on ``""`` tokenized without padding."""
    if isinstance(given, torch.Tensor):
        tensor = given
    elif given is not None:
        tensor = _read_tensor(str(given))
    else:
        tensor = encode_empty_prompt(components, common)
    tensor = tensor.detach().float().cpu()
    if tensor.ndim == 2:
        tensor = tensor[None]
    if tensor.ndim != 3 or tensor.shape[0] != 1:
        raise ValueError(f"empty_text_embedding: expected [1, tokens, dim], got {list(tensor.shape)}")
    return tensor


def _read_tensor(path: str) -> torch.Tensor:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"empty_text_embedding: {path} not found")
    if path.endswith(".npy"):
        import numpy as np

        return torch.from_numpy(np.load(path, allow_pickle=False))
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(path)
        if len(tensors) != 1:
            raise ValueError(f"{path}: expected one tensor (the empty-prompt embedding), found {len(tensors)}")
        return next(iter(tensors.values()))
    value = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{path}: expected a saved tensor, got a {type(value).__name__}")
    return value


def encode_empty_prompt(source: str, common: dict[str, Any] | None = None) -> torch.Tensor:
    """CLIP's output for ``""`` tokenized without padding (``<bos>``, ``<eos>``: ``[1, 2, D]``), what the one-step
    projects condition on; ``source`` is a Stable Diffusion folder / hub id or a CLIP one."""
    from vpd.modeling.stable_diffusion import load_clip_text_encoder

    try:
        encoder, tokenizer = load_clip_text_encoder(source, **(common or {}))
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"{source}: no text_encoder/ + tokenizer/ to compute the empty-prompt embedding ({_first(err)}); "
            "pass empty_text_embedding= (a [1, 2, D] tensor or file)"
        ) from None
    ids = tokenizer("", padding="do_not_pad", return_tensors="pt").input_ids
    with torch.no_grad():
        return cast(torch.Tensor, encoder(ids)[0])


def _load_dpt_head(folder: str, up_channels: list[int]) -> tuple[torch.nn.Module, int]:
    from vpd.modeling.heads.dpt import DPTHead
    from vpd.modeling.hub import load_state_dict_strict, read_safetensors

    config_path, weights = Path(folder) / "config.json", Path(folder) / "model.safetensors"
    for path in (config_path, weights):
        if not path.is_file():
            raise FileNotFoundError(f"dpt_head: {path} not found (expected GenPercept's dpt_head folder)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    features = int(config.get("fusion_hidden_size", 256))
    head = DPTHead(up_channels, features)
    load_state_dict_strict(head, read_safetensors(weights), source=str(weights))
    return head, features
