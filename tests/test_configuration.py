"""Typed configs: defaults, YAML, key=value overrides, strict errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from vpd.configuration import ConfigError, from_dict, load_config, to_dict


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["vpd", "mmseg"] = "vpd"


@dataclass(frozen=True)
class Recipe:
    name: str = "demo"
    steps: int = 10
    amp: bool = False
    crop: tuple[int, ...] = (480, 480)
    pretrained: str | None = None
    optim: Optim = field(default_factory=Optim)
    extra: dict = field(default_factory=dict)


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 5.0e-4\n  betas: [0.8, 0.9]\ncrop: [64, 96]\n")
    recipe = load_config(Recipe, path, ["optim.schedule=mmseg", "amp=true", "pretrained=org/sd", "extra.k=3"])
    assert recipe == Recipe(
        steps=20,
        amp=True,
        crop=(64, 96),
        pretrained="org/sd",
        optim=Optim(lr=5e-4, betas=(0.8, 0.9), schedule="mmseg"),
        extra={"k": 3},
    )
    assert load_config(Recipe, path, ["pretrained=null"]).pretrained is None
    assert load_config(Recipe, None, ["optim.lr=1e-3"]).optim.lr == 1e-3  # YAML 1.1 would keep "1e-3" a string
    assert from_dict(Recipe, to_dict(recipe)) == recipe


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "unknown key 'optim.lrr'"),
        (["steps=many"], "steps: expected an integer, got 'many'"),
        (["optim.schedule=cosine"], r"optim.schedule: expected one of \['vpd', 'mmseg'\]"),
        (["optim.betas=[1]"], r"optim.betas: expected 2 values, got 1"),
        (["amp=1"], "amp: expected true/false"),
        (["steps"], "expected key=value"),
        (["steps.x=1"], "steps is not a config section"),
    ],
)
def test_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Recipe, None, overrides)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Recipe, tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("steps: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Recipe, tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("stepz: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'stepz'"):
        load_config(Recipe, tmp_path / "typo.yaml")


@dataclass(frozen=True)
class Data:
    args: dict = field(default_factory=lambda: {"root": "a", "split": "test"})


@dataclass(frozen=True)
class Top:
    data: Data = field(default_factory=Data)


def test_free_form_dicts_are_replaced_by_a_file_not_merged(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  args: {root: b}\n")
    assert load_config(Top, path).data.args == {"root": "b"}
    assert load_config(Top, path, ["data.args.split=val"]).data.args == {"root": "b", "split": "val"}
