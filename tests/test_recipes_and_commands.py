"""Packaged recipes parse and bind to their datasets; `vpd train`, `vpd eval` and `vpd demo` work end to end."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml

from reference import official_state_dict
from runs import TINY_DATA, TINY_RUN, as_cli
from vpd.cli import main
from vpd.data.registry import _kinds
from vpd.training.config import load_run_config, packaged_recipes, recipe_path


@pytest.mark.parametrize("name", packaged_recipes())
def test_packaged_recipes_parse_and_bind(name):
    assert name in packaged_recipes()
    config = load_run_config(name)
    assert recipe_path(f"configs/{name}.yaml").read_text() == recipe_path(name).read_text()  # the repo's symlink
    kinds = _kinds()
    for split in (config.data.train, config.data.val):
        assert split is not None
        inspect.signature(kinds[split.kind]).bind(**split.args, transform=None)


def test_official_recipe_is_the_published_one():
    config = load_run_config("depth_nyuv2")
    assert (config.optim.lr, config.optim.min_lr, config.optim.weight_decay) == (5e-4, 3e-5, 0.1)
    assert (config.train.epochs, config.train.batch_size, config.augment.crop_size) == (25, 24, (480, 480))
    assert (config.eval.flip, config.eval.windows, config.eval.crop, config.eval.max_depth) == (True, 2, "nyu", 10.0)
    assert config.optim.param_rules[0].key == "unet" and config.optim.param_rules[0].lr_mult == 0.01
    kitti = load_run_config("depth_kitti")
    assert kitti.model.max_depth == kitti.eval.max_depth == 80.0  # written once, in model.max_depth
    mmseg = load_run_config("depth_nyuv2_mmseg")
    assert (mmseg.optim.schedule, mmseg.train.max_steps, mmseg.train.batch_size, mmseg.optim.no_decay) == (
        "mmseg",
        25000,
        32,
        "bias",
    )


def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "demo_synthetic_depth", *as_cli([*TINY_RUN, f"train.output_dir={run}"])]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    merged = yaml.safe_load((run / "config.yaml").read_text())
    assert merged["data"]["train"]["args"]["num_scenes"] == 8  # the run keeps its merged config

    args = [
        "eval",
        "--config",
        str(run / "config.yaml"),
        "--model",
        str(run / "model"),
        "--output",
        str(tmp_path / "e"),
    ]
    assert main([*args, "--save-predictions"]) == 0
    out = capsys.readouterr().out
    assert "abs_rel" in out and "rmse" in out
    summary = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert summary["samples"] == 2 and set(summary["metrics"]) >= {"d1", "abs_rel", "silog", "silog_bts"}
    assert len((tmp_path / "e" / "per_sample.csv").read_text().splitlines()) == 3
    assert len(list((tmp_path / "e" / "predictions").rglob("*.png"))) == 2


def test_eval_converts_an_official_checkpoint_on_the_fly(tmp_path, capsys):
    torch.save({"model": official_state_dict("vpd_depth_tiny")}, tmp_path / "official.pth")
    overrides = as_cli(TINY_DATA)
    code = main(["eval", "--config", "demo_synthetic_depth", *overrides, "--model", str(tmp_path / "official.pth"),
                 "--output", str(tmp_path / "e")])  # fmt: skip
    assert code == 0
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["samples"] == 2


def test_command_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "--config", "no_such_recipe"]) == 2
    err = capsys.readouterr().err
    assert "no such file, nor a packaged recipe" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--config", "demo_synthetic_depth", "--set", "optim.lrr=1"]) == 2
    assert "unknown key 'optim.lrr'" in capsys.readouterr().err
    assert main(["eval", "--config", "demo_synthetic_depth"]) == 2
    assert "no model" in capsys.readouterr().err
    bad = ["--set", "data.train.args={root: /nonexistent}", "--set", "data.train.kind=nyuv2_sync"]
    assert main(["train", "--config", "demo_synthetic_depth", *bad, "--set", f"train.output_dir={tmp_path}"]) == 2
    assert "/nonexistent" in capsys.readouterr().err


def test_demo_end_to_end_small(tmp_path):
    from vpd.demo import run_demo

    quick = ["train.max_steps=3", "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0"]
    demo = run_demo(tmp_path, [*TINY_DATA, *quick], progress=False)
    assert set(demo.metrics) == {"constant", "layout prior", "untrained", "trained"} == set(demo.middlebury)
    assert all(0 < demo.middlebury[k] < 10 for k in demo.middlebury)
    report = (tmp_path / "report.html").read_text()
    assert "Middlebury" in report and "<svg" in report and report.count("data:image/png") >= 3
    assert Path(tmp_path / "report.png").stat().st_size > 10_000
