"""Building a task's VPD model from the run config: the same steps for every VPD task.

The recipe's ``model`` section holds the generic fields (``vpd.training.config.ModelConfig``) and the task's
architecture fields; a null field keeps the architecture's own default, so each constant lives in the model's config
class. ``model.init`` starts from a saved model instead: the recipe's fields that can change on trained weights
(``timestep``, ``scale_latents``, a task's output range) are applied, the others must agree with the saved model or
are refused by name -- never silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from vpd.configuration import ConfigError
from vpd.modeling.hub import load_state_dict_strict
from vpd.training.config import ModelConfig, RunConfig

C = TypeVar("C")

_GENERIC = {f.name for f in dataclasses.fields(ModelConfig)}
_BACKBONE_FIELDS = ("timestep", "scale_latents")


def recipe_fields(spec: ModelConfig) -> dict[str, Any]:
    """The task's architecture fields that the recipe set (not null; its loss weights are no architecture)."""
    return {
        f.name: getattr(spec, f.name)
        for f in dataclasses.fields(spec)
        if f.name not in _GENERIC and f.name not in spec.loss_fields and getattr(spec, f.name) is not None
    }


def _split(config: Any, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` as (the model config's own fields, its backbone's fields): a recipe field names either."""
    own = {f.name for f in dataclasses.fields(config)}
    top = {k: v for k, v in values.items() if k in own}
    return top, {k: v for k, v in values.items() if k not in own}


def _current(config: Any, name: str) -> Any:
    return getattr(config, name) if hasattr(config, name) else getattr(config.backbone, name)


def apply_recipe(config: C, spec: ModelConfig, class_names: tuple[str, ...] | None = None) -> C:
    """``config`` (a model config with a ``backbone``) with the recipe's fields and backbone numerics applied."""
    backbone: Any = config.backbone  # type: ignore[attr-defined]
    numerics = {name: getattr(spec, name) for name in _BACKBONE_FIELDS if getattr(spec, name) is not None}
    if class_names is not None:
        numerics["class_names"] = tuple(class_names)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in recipe_fields(spec).items()}
    top, on_backbone = _split(config, values)
    backbone = dataclasses.replace(backbone, **numerics, **on_backbone)
    return dataclasses.replace(config, backbone=backbone, **top)  # type: ignore[type-var]


def from_init(
    spec: ModelConfig, load: Callable[[str], Any], data_classes: tuple[str, ...] = (), mutable: tuple[str, ...] = ()
) -> Any:
    """The model saved at ``spec.init`` with the recipe's applicable fields applied.

    Args:
        spec: the recipe's model section.
        load: ``source -> model`` (the task's ``load_model``).
        data_classes: the training data's classes (empty: it names none); they must be the saved model's, since
            its class embeddings and outputs are indexed by them.
        mutable: task fields that may change on trained weights (the backbone numerics always may).

    Raises:
        ConfigError: a recipe field or the data's classes contradicting the saved model where that cannot change
            without retraining.
    """
    assert spec.init is not None
    model = load(spec.init)
    saved = model.config
    changes: dict[str, Any] = {}
    for name, value in recipe_fields(spec).items():
        value = tuple(value) if isinstance(value, list) else value
        current = _current(saved, name)
        if value == current:
            continue
        if name not in mutable:
            raise ConfigError(
                f"model.{name}={value!r} contradicts model.init {spec.init} ({name} = {current!r}); remove it from "
                "the recipe, or train from Stable Diffusion (model.init=null)"
            )
        changes[name] = value
    saved_names = tuple(saved.backbone.class_names)
    if spec.class_names is not None and tuple(spec.class_names) != saved_names:
        raise ConfigError(
            f"model.class_names contradicts model.init {spec.init}, whose class embeddings are for "
            f"{len(saved_names)} other classes; remove model.class_names"
        )
    if spec.class_names is None and data_classes and tuple(data_classes) != saved_names:
        raise ConfigError(
            f"the training data's {len(data_classes)} classes ({', '.join(data_classes[:3])}, ...) are not those of "
            f"model.init {spec.init} ({', '.join(saved_names[:3])}, ...); set model.class_names to the model's "
            "classes only if the data's labels are indexed the same way"
        )
    numerics = {n: getattr(spec, n) for n in _BACKBONE_FIELDS if getattr(spec, n) is not None}
    if not changes and all(getattr(saved.backbone, n) == v for n, v in numerics.items()):
        return model
    top, on_backbone = _split(saved, changes)
    config = dataclasses.replace(saved, backbone=dataclasses.replace(saved.backbone, **numerics, **on_backbone), **top)
    with torch.device("meta"):
        rebuilt = type(model)(config)
    load_state_dict_strict(rebuilt, model.state_dict(), source=str(spec.init), assign=True)
    rebuilt.pretrained_source = model.pretrained_source
    return rebuilt.eval()


def class_names_for(config: RunConfig, dataset_names: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``model.class_names`` if set, else the training data's; ConfigError when there are none."""
    names = tuple(config.model.class_names) if config.model.class_names else tuple(dataset_names)
    if not names:
        raise ConfigError(f"model.class_names: the training data has no {what}; name at least one")
    return names


def build_from_recipe(
    config: RunConfig,
    data_classes: tuple[str, ...],
    *,
    model_class: Any,
    full: Callable[[], Any],
    tiny: Callable[[tuple[str, ...]], Any],
    load: Callable[[str], Any],
    what: str | None,
    mutable: tuple[str, ...] = (),
) -> Any:
    """A task's VPD model for a run: ``model.init`` (see :func:`from_init`), else a fresh ``model_class`` on the
    architecture ``model.architecture`` names (``full()`` or ``tiny(classes)``) with the recipe's fields applied,
    built on Stable Diffusion by :func:`vpd.modeling.builder.build_vpd_model`.

    Args:
        config: the run.
        data_classes: the training data's classes.
        model_class: the model class; full, tiny: its architectures; load: ``source -> model``.
        what: what the classes are, for the message when there are none ("scene classes"); None: the task's
            models have no classes.
        mutable: fields that may change on a ``model.init`` model.
    """
    from vpd.modeling.builder import build_vpd_model

    spec = config.model
    if spec.init:
        return from_init(spec, load, data_classes, mutable)
    names = class_names_for(config, data_classes, what) if what is not None else ()
    base = tiny(names) if spec.architecture == "tiny" else full()
    extra: dict[str, Any] = {"original_config": spec.original_config} if spec.original_config else {}
    return build_vpd_model(
        model_class,
        apply_recipe(base, spec, names if what is not None else None),
        stable_diffusion=spec.pretrained,
        text_encoder=spec.text_encoder,
        class_embeddings=spec.class_embeddings,
        seed=config.train.seed,
        **extra,
    )
