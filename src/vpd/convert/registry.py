"""Every released checkpoint layout vpd converts: ``vpd convert`` and ``vpd eval --model file.pth`` detect the
layout from the keys and convert with the settings the weights do not hold (a recipe's max depth or class names). A
layout's module registers it with one :func:`register` call; the built-in modules are listed in ``_BUILTIN``.
"""

from __future__ import annotations

import dataclasses
import importlib
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
    model: type[PretrainedModel]
    settings: tuple[str, ...] = ("num_heads",)


CONVERTERS: dict[str, Converter] = {}


def register(converter: Converter) -> Converter:
    CONVERTERS[converter.name] = converter
    return converter


def with_class_names(config: Any, names: Any) -> Any:
    """``config`` (with a ``backbone``) naming ``names`` as its classes, when given."""
    if not names:
        return config
    return dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, class_names=tuple(names)))


#: Modules of the built-in layouts; each registers its converters when imported.
_BUILTIN = ("vpd.convert.vpd_depth", "vpd.convert.vpd_semantic", "vpd.convert.vpd_referring")


def converters() -> dict[str, Converter]:
    """Every registered converter by name (the built-in ones loaded on first use)."""
    for module in _BUILTIN:
        importlib.import_module(module)
    return CONVERTERS


def detect(state: Mapping[str, Any]) -> Converter:
    """The converter whose layout ``state`` has; ValueError listing the known layouts otherwise."""
    found = [c for c in converters().values() if c.detect(state)]
    if len(found) != 1:
        known = "; ".join(f"{c.name}: {c.description}" for c in converters().values())
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
    if layout is not None and layout not in converters():  # before reading a multi-GB file
        raise ValueError(f"--format {layout!r}: unknown layout; known: {', '.join(converters())}")
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
        model = converter.model(config)
    load_state_dict_strict(model, converted, source=source, assign=True)
    return model.eval()
