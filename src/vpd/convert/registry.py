"""Every released checkpoint layout vpd converts, in one place: ``vpd convert`` and ``vpd eval --model file.pth``
detect the layout from the keys and convert with the settings the weights do not hold (a recipe's max depth or
class names). A new layout plugs in with one :func:`register` call.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from vpd.convert.checkpoint_io import extract_state_dict, load_checkpoint
from vpd.modeling.hub import PretrainedModel, load_state_dict_strict

#: ``(state, settings) -> (model config, vpd state dict)``
ConvertFn = Callable[[Mapping[str, torch.Tensor], dict[str, Any]], tuple[Any, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class Converter:
    """One released layout.

    Attributes:
        name: what ``vpd convert --format`` says.
        description: for ``--help``.
        task: the vpd task of the converted model.
        detect: ``state_dict -> bool``.
        convert: the key map (see :data:`ConvertFn`).
        model: the vpd model class built from the converted config.
        settings: names of the settings this layout takes (``max_depth``, ``class_names``, ``num_heads``).
    """

    name: str
    description: str
    task: str
    detect: Callable[[Mapping[str, Any]], bool]
    convert: ConvertFn
    model: Callable[[], type[PretrainedModel]]
    settings: tuple[str, ...] = ("num_heads",)


CONVERTERS: dict[str, Converter] = {}


def register(converter: Converter) -> Converter:
    CONVERTERS[converter.name] = converter
    return converter


def _depth(layout: str) -> ConvertFn:
    def convert(state: Mapping[str, torch.Tensor], settings: dict[str, Any]) -> tuple[Any, dict[str, torch.Tensor]]:
        from vpd.convert.vpd_depth import convert_depth_state_dict
        from vpd.modeling.depth import VPDDepthConfig

        base = VPDDepthConfig()
        if settings.get("class_names"):
            base = dataclasses.replace(
                base, backbone=dataclasses.replace(base.backbone, class_names=tuple(settings["class_names"]))
            )
        if settings.get("max_depth") is not None:
            base = dataclasses.replace(base, max_depth=float(settings["max_depth"]))
        return convert_depth_state_dict(state, layout, base_config=base, num_heads=settings.get("num_heads"))  # type: ignore[arg-type]

    return convert


def _semantic(state: Mapping[str, torch.Tensor], settings: dict[str, Any]) -> tuple[Any, dict[str, torch.Tensor]]:
    from vpd.convert.vpd_semantic import convert_semantic_state_dict
    from vpd.modeling.semantic import VPDSemanticConfig

    base = VPDSemanticConfig()
    if settings.get("class_names"):
        base = dataclasses.replace(
            base, backbone=dataclasses.replace(base.backbone, class_names=tuple(settings["class_names"]))
        )
    return convert_semantic_state_dict(state, base_config=base, num_heads=settings.get("num_heads"))


def _is_depth(layout: str) -> Callable[[Mapping[str, Any]], bool]:
    def detect(state: Mapping[str, Any]) -> bool:
        from vpd.convert.vpd_depth import detect_layout

        try:
            return detect_layout(state) == layout
        except ValueError:
            return False

    return detect


def _is_semantic(state: Mapping[str, Any]) -> bool:
    from vpd.convert.vpd_semantic import is_vpd_semantic

    return is_vpd_semantic(state)


def _depth_model() -> type[PretrainedModel]:
    from vpd.modeling.depth import VPDDepth

    return VPDDepth


def _semantic_model() -> type[PretrainedModel]:
    from vpd.modeling.semantic import VPDSemantic

    return VPDSemantic


register(Converter("vpd-depth", "official wl-zhao/VPD NYUv2 / KITTI depth checkpoint ({'model': state_dict})",
                   "depth", _is_depth("vpd"), _depth("vpd"), _depth_model, ("num_heads", "max_depth", "class_names")))
register(Converter("mmseg-vpd-depth", "mmsegmentation VPD depth checkpoint ({'meta', 'state_dict'})", "depth",
                   _is_depth("mmseg"), _depth("mmseg"), _depth_model, ("num_heads", "max_depth", "class_names")))
register(Converter("vpd-semantic", "official VPD ADE20K segmentation checkpoint (mmcv: {'meta', 'state_dict'})",
                   "semantic", _is_semantic, _semantic, _semantic_model, ("num_heads", "class_names")))  # fmt: skip


def detect(state: Mapping[str, Any]) -> Converter:
    """The converter whose layout ``state`` has; ValueError listing the known layouts otherwise."""
    found = [c for c in CONVERTERS.values() if c.detect(state)]
    if len(found) != 1:
        known = "; ".join(f"{c.name}: {c.description}" for c in CONVERTERS.values())
        raise ValueError(f"not a checkpoint layout vpd knows (known: {known})")
    return found[0]


def convert_checkpoint(
    checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    layout: str | None = None,
    *,
    task: str | None = None,
    allow_globals: Iterable[Any] = (),
    **settings: Any,
) -> PretrainedModel:
    """Loads a released checkpoint (file or loaded dict) into its vpd model, strictly.

    Args:
        checkpoint: ``.pth`` / ``.ckpt`` / ``.safetensors`` file, or a loaded dict.
        layout: a :data:`CONVERTERS` name; detected from the keys when None.
        task: the task the caller expects (a recipe's); a checkpoint of another task is refused by name.
        allow_globals: see :func:`vpd.convert.checkpoint_io.load_checkpoint`.
        settings: what the weights do not hold (``max_depth``, ``class_names``, ``num_heads``); None values are
            ignored; a setting the layout does not take is an error.

    Raises:
        ValueError: an unknown or undetectable layout, a setting the layout does not take, or weights that do not
            fit (named keys, NaN values), each prefixed with the file.
    """
    source = str(checkpoint) if not isinstance(checkpoint, Mapping) else "checkpoint"
    if layout is not None and layout not in CONVERTERS:  # before reading a multi-GB file
        raise ValueError(f"--format {layout!r}: unknown layout; known: {', '.join(CONVERTERS)}")
    raw = checkpoint if isinstance(checkpoint, Mapping) else load_checkpoint(checkpoint, allow_globals)
    try:
        state = extract_state_dict(raw)
        converter = CONVERTERS[layout] if layout is not None else detect(state)
        if task is not None and converter.task != task:
            raise ValueError(f"a {converter.task} checkpoint ({converter.name}), but the recipe's task is {task}")
        given = {k: v for k, v in settings.items() if v is not None}
        extra = sorted(set(given) - set(converter.settings))
        if extra:
            raise ValueError(f"a {converter.name} checkpoint takes no {', '.join(extra)} setting")
        config, converted = converter.convert(state, given)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{source}: {str(err).strip(chr(39))}") from None
    with torch.device("meta"):
        model = converter.model()(config)
    load_state_dict_strict(model, converted, source=source, assign=True)
    return model.eval()
