"""The trainer: schedules and groups against their formulas, exact resume after a kill, atomic checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from runs import TINY_RUN, as_cli, tiny_run_config
from vpd.configuration import ConfigError
from vpd.training.config import RunConfig
from vpd.training.optim import build_adamw, param_groups
from vpd.training.schedules import mmseg_depth_lr, vpd_depth_lr
from vpd.training.trainer import Trainer


def test_vpd_schedule_matches_the_official_formula():
    n, epochs, hi, lo = 1000, 25, 5e-4, 3e-5
    half = n * (epochs // 2)  # 12 epochs: the official code halves with integer division
    for step in [1, 10, 5000, half - 1, half, half + 1, 18000, 24000, 25000]:
        if step < half:
            expected = (hi - lo) * (step / n / (epochs // 2)) ** 0.9 + lo
        else:
            expected = max(lo, (lo - hi) * (step / n / (epochs // 2) - 1) ** 0.9 + hi)
        assert vpd_depth_lr(step, n, epochs, hi, lo) == pytest.approx(expected, rel=1e-12)
    assert vpd_depth_lr(half, n, epochs, hi, lo) == pytest.approx(hi)
    assert vpd_depth_lr(2 * half, n, epochs, hi, lo) == pytest.approx(lo)
    assert vpd_depth_lr(25000, n, epochs, hi, lo) == lo  # the last epoch stays at the floor


def test_mmseg_schedule_matches_schedule_25k():
    base = 1e-3
    assert mmseg_depth_lr(0, base) == pytest.approx(3e-5)
    assert mmseg_depth_lr(6000, base) == pytest.approx(base * (0.03 + 0.97 * 0.5))
    assert mmseg_depth_lr(12000, base) == pytest.approx(base)
    assert mmseg_depth_lr(18000, base) == pytest.approx((base - 3e-5) * 0.5**0.9 + 3e-5)
    assert mmseg_depth_lr(24000, base) == pytest.approx(3e-5)
    assert mmseg_depth_lr(24999, base) == pytest.approx(3e-5)


def test_param_groups_scale_unet_and_skip_decay(tiny_depth_model):
    from vpd.training.config import ParamRule

    unet = (ParamRule("unet", lr_mult=0.01),)
    groups = param_groups(tiny_depth_model, 0.1, unet, no_decay="1d_and_bias")
    by_name = {n: g for g in groups for n in g["names"]}
    assert not any("backbone.vae" in n for n in by_name)  # frozen
    assert by_name["backbone.unet.conv_in.weight"]["lr_scale"] == 0.01
    assert by_name["backbone.unet.conv_in.weight"]["weight_decay"] == 0.1
    assert by_name["backbone.unet.conv_in.bias"]["weight_decay"] == 0.0
    assert by_name["backbone.text_adapter.gamma"]["weight_decay"] == 0.0  # 1-D
    assert by_name["head.fuse_out.1.weight"]["weight_decay"] == 0.0  # GroupNorm weight, 1-D
    assert by_name["head.conv.0.weight"]["lr_scale"] == 1.0
    mmseg = {n: g for g in param_groups(tiny_depth_model, 0.1, unet, no_decay="bias") for n in g["names"]}
    assert mmseg["head.fuse_out.1.weight"]["weight_decay"] == 0.1 and mmseg["head.conv.0.bias"]["weight_decay"] == 0
    optimizer = build_adamw(groups, lr=1e-3)
    lrs = {g["lr_scale"]: g["lr"] for g in optimizer.param_groups}
    assert lrs[0.01] == pytest.approx(1e-5) and lrs[1.0] == pytest.approx(1e-3)


def demo_config(tmp_path, **train) -> RunConfig:
    config = tiny_run_config(
        tmp_path,
        "data.train.args={num_scenes: 12, height: 72, width: 96, seed: 1}",
        "optim.schedule=cosine",
        "optim.lr=1e-3",
        "train.max_steps=6",
        "train.log_every=2",
    )
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train))


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    model = trainer.accelerator.unwrap_model(trainer.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Killed(Exception):
    pass


def test_a_killed_run_resumes_exactly(tmp_path):
    straight = Trainer(demo_config(tmp_path / "a", checkpoint_every=0))
    result = straight.fit()
    assert result["steps"] == 6 and math.isfinite(result["final_loss"])

    interrupted = Trainer(demo_config(tmp_path / "b", checkpoint_every=3))
    original_log = interrupted._log

    def die_after_step_4(values):
        original_log(values)
        if interrupted.step >= 4:
            raise Killed  # killed after the step-3 checkpoint, in the middle of the run

    interrupted._log = die_after_step_4  # type: ignore[method-assign]
    with pytest.raises(Killed):
        interrupted.fit()
    (tmp_path / "b" / "checkpoints" / ".tmp-step_0000005").mkdir()  # a save the kill cut short: ignored
    resumed = Trainer(demo_config(tmp_path / "b", checkpoint_every=3))
    resumed.fit()
    assert resumed.step == 6
    a, b = weights(straight), weights(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(4) == 1  # the log was trimmed back to the checkpoint


def test_run_directory_and_exported_model(tmp_path):
    from vpd.modeling.depth import VPDDepth

    trainer = Trainer(demo_config(tmp_path, checkpoint_every=2, keep_checkpoints=2, eval_every=3))
    result = trainer.fit()
    assert set(result["eval"]) >= {"abs_rel", "rmse", "d1", "silog", "silog_bts"}
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "checkpoints", "model", "model_best", "visualizations"} <= names
    assert [p.name for p in trainer.checkpoints()] == ["step_0000004", "step_0000006"]
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.rglob("*"))
    model = VPDDepth.from_pretrained(tmp_path / "model")
    assert model.class_names == trainer.train_set.class_names
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("eval/rmse" in r for r in records) and any("train/loss" in r for r in records)


def test_resume_refuses_a_changed_recipe(tmp_path):
    Trainer(demo_config(tmp_path, checkpoint_every=3)).fit()
    changed = demo_config(tmp_path)
    changed = dataclasses.replace(changed, optim=dataclasses.replace(changed.optim, lr=2e-3))
    with pytest.raises(ConfigError, match="different optim"):
        Trainer(changed).fit()
    more_workers = demo_config(tmp_path)
    more_workers = dataclasses.replace(more_workers, data=dataclasses.replace(more_workers.data, num_workers=1))
    resumed = Trainer(more_workers)
    assert resumed._resume() is not None and resumed.step == 6  # workers load samples; they do not choose them


def test_batch_size_must_split_evenly(tmp_path):
    with pytest.raises(ConfigError, match="not divisible"):
        Trainer(demo_config(tmp_path, batch_size=3, grad_accum=2))


def test_silog_loss_formula():
    from vpd.modeling.losses import silog_loss

    pred = torch.tensor([[1.0, 2.0], [4.0, 3.0]])
    gt = torch.tensor([[2.0, 2.0], [0.0, 1.0]])  # 0 = invalid
    d = torch.log(torch.tensor([2.0, 2.0, 1.0])) - torch.log(torch.tensor([1.0, 2.0, 3.0]))
    expected = torch.sqrt((d**2).mean() - 0.5 * d.mean() ** 2)
    torch.testing.assert_close(silog_loss(pred, gt), expected)
    perfect = torch.tensor([1.0, 2.0], requires_grad=True)
    silog_loss(perfect, torch.tensor([1.0, 2.0])).backward()
    assert torch.isfinite(perfect.grad).all()  # sqrt(0) would give an infinite gradient
    with pytest.raises(ValueError, match="differ"):
        silog_loss(pred, gt[0])


@pytest.mark.parametrize(
    "train",
    [
        {"grad_accum": 2},
        {"mixed_precision": "bf16", "max_steps": 2},
        {"gradient_checkpointing": True, "max_steps": 2},
    ],
    ids=["grad_accum", "bf16", "checkpointing"],
)
def test_training_options_run(tmp_path, train):
    trainer = Trainer(demo_config(tmp_path, checkpoint_every=0, **train))
    consumed = []
    original = trainer.task.loss

    def counting_loss(model, batch, config=None):
        assert config is trainer.config  # the trainer hands its run config to the task's loss
        consumed.append(batch["image"].shape[0])
        return original(model, batch, config)

    trainer.task.loss = counting_loss  # type: ignore[method-assign]
    result = trainer.fit()
    assert math.isfinite(result["final_loss"])
    accum = train.get("grad_accum", 1)
    assert consumed == [4 // accum] * (trainer.total_steps * accum)  # the global batch, split over micro-batches
    if train.get("gradient_checkpointing"):
        assert trainer.accelerator.unwrap_model(trainer.model).backbone.unet.is_gradient_checkpointing


def test_accelerate_launch_two_processes(tmp_path):
    """The same command under `accelerate launch` (2 CPU processes, gloo): sharded data, one exported model."""
    import subprocess
    import sys

    overrides = as_cli([*TINY_RUN, "train.max_steps=3", f"train.output_dir={tmp_path}"])
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "vpd.cli", "train", "--config", "demo_synthetic_depth", *overrides]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert json.loads(done.stdout[done.stdout.index("{") :])["steps"] == 3
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_0000003"]


def test_model_init_applies_or_refuses_the_recipe_fields(tmp_path):
    from vpd.modeling.depth import VPDDepth
    from vpd.tasks import get_task

    saved = Trainer(demo_config(tmp_path / "first", checkpoint_every=0, max_steps=1)).fit()
    assert saved["steps"] == 1
    init = f"model.init={tmp_path / 'first' / 'model'}"
    task = get_task("depth")
    model = task.build_model(tiny_run_config(tmp_path / "b", init, "model.max_depth=20"), ())
    assert isinstance(model, VPDDepth) and model.config.max_depth == 20.0 and model.head.max_depth == 20.0
    with pytest.raises(ConfigError, match=r"model\.head_channels=99 contradicts model\.init .*head_channels = 16"):
        task.build_model(tiny_run_config(tmp_path / "c", init, "model.head_channels=99"), ())
    with pytest.raises(ConfigError, match=r"model\.class_names contradicts model\.init"):
        task.build_model(tiny_run_config(tmp_path / "d", init, "model.class_names=[kitchen]"), ())


def test_eval_converts_an_official_file_with_the_recipe_settings(tmp_path):
    from reference import official_state_dict
    from vpd.commands.eval import load_any_model
    from vpd.training.config import load_run_config

    torch.save({"model": official_state_dict("vpd_depth_tiny")}, tmp_path / "official.pth")
    kitti = load_run_config("depth_kitti", ["model.class_names=null"])
    model = load_any_model(str(tmp_path / "official.pth"), kitti)
    assert model.config.max_depth == 80.0  # not NYU's 10 m
    with pytest.raises(ValueError, match=r"a depth checkpoint .* but the recipe's task is semantic"):
        load_any_model(str(tmp_path / "official.pth"), load_run_config("semantic_ade20k"))
