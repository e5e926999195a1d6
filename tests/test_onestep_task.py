"""The one-step task on the one trainer: recipe defaults, building from Stable Diffusion 2 (8-channel conv_in,
empty-prompt embedding), the losses, training each preset from the command line, and ``vpd convert`` of a
project's folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_clip
from runs import as_cli
from vpd.cli import main
from vpd.modeling.losses import affine_depth_loss, align_least_squares, angular_loss, normalize_depth
from vpd.modeling.onestep import OneStepModel
from vpd.tasks import get_task
from vpd.tasks.onestep import widen_conv_in
from vpd.training.config import OptimConfig, load_run_config
from vpd.training.schedules import group_lr

TINY = [
    "model.task=onestep",
    "model.pretrained=null",
    "model.architecture=tiny",
    "data.train.kind=synthetic",
    "data.train.args={num_scenes: 4, height: 64, width: 64, seed: 1}",
    "data.val=null",
    "data.num_workers=0",
    "optim.lr=1e-3",
    "train.max_steps=2",
    "train.batch_size=2",
    "train.grad_accum=1",
    "train.progress=false",
    "train.checkpoint_every=0",
]


def test_marigold_exponential_schedule():
    """IterExponential(25000, 0.01, warmup 100) at 3e-5: 0 at step 0, linear to the peak, exp decay, then flat."""
    optim = OptimConfig(lr=3e-5, schedule="exponential", warmup="linear", warmup_steps=100, decay_steps=25000)
    lr = [group_lr(optim, step, 30000, 1, 1) for step in (0, 50, 100, 12550, 25000, 29999)]
    assert lr[:3] == [0.0, 1.5e-5, 3e-5]
    assert math.isclose(lr[3], 3e-5 * 0.1, rel_tol=1e-12)  # half way through the decay: sqrt(0.01)
    assert math.isclose(lr[4], 3e-7, rel_tol=1e-12) and lr[5] == lr[4]


def test_task_defaults_are_the_genpercept_recipe(tmp_path):
    config = load_run_config(str(_recipe(tmp_path)), [])
    assert config.model.task == "onestep" and config.model.pretrained == "stabilityai/stable-diffusion-2-1"
    optim, train = config.optim, config.train
    assert (optim.lr, optim.weight_decay, optim.schedule, optim.decay_steps, optim.warmup_steps) == (
        3e-5, 0.0, "exponential", 25000, 100,
    )  # fmt: skip
    assert (train.max_steps, train.batch_size, train.grad_accum) == (30000, 32, 16)


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "onestep.yaml"
    path.write_text("model:\n  task: onestep\n")
    return path


def test_widened_conv_in_computes_what_the_unet_did():
    from diffusers import UNet2DConditionModel

    from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**TINY_UNET_CONFIG).eval()
    x, context = torch.randn(1, 4, 8, 8), torch.randn(1, 2, 32)
    with torch.no_grad():
        before = unet(x, 1, encoder_hidden_states=context).sample
        wide = widen_conv_in(unet)
        after = wide(torch.cat([x, x], dim=1), 1, encoder_hidden_states=context).sample
    assert wide.config.in_channels == 8 and wide.conv_in.in_channels == 8
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_losses():
    depth = torch.rand(2, 1, 16, 16) * 5 + 1
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[0, 0, :2] = False
    target = normalize_depth(depth, valid)
    for i in range(2):
        values = target[i][valid[i]]
        assert values.min() == -1 and values.max() == 1  # the 2 % / 98 % quantiles, clipped
        assert (target[i][~valid[i]] == 0).all()
    affine = 3 * target - 0.5
    torch.testing.assert_close(align_least_squares(affine, target, valid), target, atol=1e-5, rtol=0)
    loss, parts = affine_depth_loss(target.clone(), target, valid)
    assert float(loss) == 0 and parts == {"mse": 0.0, "ssi": 0.0, "grad": 0.0}
    loss, parts = affine_depth_loss(affine, target, valid)
    assert parts["mse"] > 0 and parts["ssi"] < 1e-9 and parts["grad"] < 1e-5  # invariant terms see no error
    angle = 0.3
    flat = torch.zeros(1, 3, 4, 4)
    flat[:, 2] = 1.0
    # the cosine is clamped to 1 - 1e-6 (finite gradients): a perfect fit costs acos(1 - 1e-6) = 1.4e-3 rad
    assert abs(float(angular_loss(flat * 7, flat, torch.ones(1, 1, 4, 4, dtype=torch.bool)))) < 1.5e-3
    tilted = torch.einsum("ij,bjhw->bihw", torch.tensor([[1.0, 0, 0], [0, math.cos(angle), -math.sin(angle)],
                                                         [0, math.sin(angle), math.cos(angle)]]), flat)  # fmt: skip
    assert abs(float(angular_loss(tilted, flat, torch.ones(1, 1, 4, 4, dtype=torch.bool))) - angle) < 1e-4


@pytest.mark.parametrize(
    ("preset", "target"),
    [("genpercept", "depth"), ("genpercept-dpt", "depth"), ("e2eft", "disparity"), ("lotus-d", "normals")],
)
def test_train_each_preset_from_the_command_line(tmp_path, capsys, preset, target):
    run = tmp_path / "run"
    overrides = [*TINY, f"model.preset={preset}", f"model.target={target}", f"train.output_dir={run}"]
    if preset == "genpercept-dpt":
        overrides.append("model.readout=dpt")
    assert main(["train", "--config", str(_recipe(tmp_path)), *as_cli(overrides)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and math.isfinite(summary["final_loss"])
    model = OneStepModel.from_pretrained(run / "model")
    assert (model.config.preset, model.config.target) == (preset, target)
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 64, 64)).prediction
    assert out.shape == (1, 3 if target == "normals" else 1, 64, 64)


def test_training_reaches_the_unet_through_the_frozen_decoder(tmp_path):
    """E2E-FT: the pixel loss flows through the VAE decoder (no no_grad there) into the UNet; the VAE stays frozen."""
    config = load_run_config(str(_recipe(tmp_path)), [*TINY, "model.preset=e2eft", f"train.output_dir={tmp_path}"])
    task = get_task("onestep")
    model = task.build_model(config, ())
    batch = {"image": torch.rand(2, 3, 64, 64), "depth": torch.rand(2, 1, 64, 64) + 0.5}
    loss, logs = task.loss(model, batch)
    loss.backward()
    assert set(logs) == {"mse", "ssi", "grad"}
    assert model.unet.conv_in.weight.grad is not None and model.unet.conv_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.vae.parameters())


def test_build_from_a_stable_diffusion_2_folder(tmp_path):
    """model.pretrained: the SD folder's UNet (conv_in widened for E2E-FT), VAE, and its CLIP on the empty prompt."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from vpd.modeling.stable_diffusion import TINY_UNET_CONFIG, TINY_VAE_CONFIG

    sd = tmp_path / "sd2"
    UNet2DConditionModel(**{**TINY_UNET_CONFIG, "use_linear_projection": True}).save_pretrained(sd / "unet")
    AutoencoderKL(**TINY_VAE_CONFIG).save_pretrained(sd / "vae")
    encoder, tokenizer = make_tiny_clip(hidden_size=32)
    encoder.save_pretrained(sd / "text_encoder")
    tokenizer.save_pretrained(sd / "tokenizer")
    config = load_run_config(str(_recipe(tmp_path)), ["model.preset=e2eft", f"model.pretrained={sd}"])
    model = get_task("onestep").build_model(config, ())
    assert model.unet.conv_in.in_channels == 8 and model.config.unet["in_channels"] == 8
    with torch.no_grad():
        expected = encoder(tokenizer("", return_tensors="pt").input_ids)[0]
    torch.testing.assert_close(model.empty_text_embedding, expected)
    with pytest.raises(Exception, match="lotus-d adds a task embedding"):
        get_task("onestep").build_model(
            load_run_config(str(_recipe(tmp_path)), ["model.preset=lotus-d", f"model.pretrained={sd}"]), ()
        )


def test_marigold_does_not_train_one_step(tmp_path):
    with pytest.raises(Exception, match="fine-tune a Marigold checkpoint with e2eft"):
        load_run_config(str(_recipe(tmp_path)), ["model.preset=marigold"])


def test_vpd_convert_saves_a_projects_folder_in_vpds_format(tmp_path, capsys):
    from reference import REFERENCE
    from test_onestep_parity import genpercept_folders, inputs

    base, unet = genpercept_folders("genpercept_tiny", tmp_path)
    embedding = tmp_path / "empty.pt"
    torch.save(torch.from_numpy(inputs("genpercept_tiny")["text_embed"]), embedding)
    out = tmp_path / "vpd-genpercept-dpt"
    head = REFERENCE / "genpercept_tiny" / "dpt_head"
    args = ["convert", str(unet), str(out), "--base", str(base), "--empty-text-embedding", str(embedding)]
    assert main([*args, "--dpt-head", str(head)]) == 0
    assert "(onestep)" in capsys.readouterr().out
    model = OneStepModel.from_pretrained(out)
    assert model.config.preset == "genpercept-dpt" and model.dpt_head is not None


@pytest.mark.parametrize(
    ("recipe", "preset", "target"),
    [
        ("onestep_genpercept_depth", "genpercept", "depth"),
        ("onestep_genpercept_normals", "genpercept", "normals"),
        ("onestep_e2eft_depth", "e2eft", "depth"),
    ],
)
def test_recipes(recipe, preset, target):
    """The shipped recipes parse into the GenPercept / Marigold optimiser and schedule over known dataset kinds."""
    from vpd.data.registry import _kinds

    config = load_run_config(recipe, [])
    assert (config.model.preset, config.model.target) == (preset, target)
    assert (config.optim.lr, config.optim.schedule, config.train.max_steps, config.train.batch_size) == (
        3e-5, "exponential", 30000, 32,
    )  # fmt: skip
    kinds = [config.data.train.kind, config.data.val.kind]
    if config.data.train.kind == "mixed":
        kinds += [child["kind"] for child in config.data.train.args["datasets"]]
        assert config.data.train.args["weights"] == [0.9, 0.1]
    assert set(kinds) <= set(_kinds())


@pytest.mark.parametrize("preset", ["e2eft", "genpercept-dpt"])
def test_lora_trains_adapters_on_a_frozen_unet_and_saves_them(tmp_path, capsys, preset):
    """model.lora_rank: peft adapters on the attention projections start as a no-op, are all that trains of the UNet
    (with a DPT head), are saved with the model and load back; a released checkpoint takes them through model.init."""
    run = tmp_path / "run"
    overrides = [*TINY, f"model.preset={preset}", "model.lora_rank=4", f"train.output_dir={run}"]
    config = load_run_config(str(_recipe(tmp_path)), overrides)
    task = get_task("onestep")
    plain = task.build_model(load_run_config(str(_recipe(tmp_path)), [*TINY, f"model.preset={preset}"]), ())
    model = task.build_model(config, ())
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():  # the adapters' up-projections start at zero: the model computes what it did without them
        # (to float order: the wrapped projections can take other kernels; 1.4e-5 seen on an AVX2-only EPYC)
        torch.testing.assert_close(model(images).raw, plain(images).raw, atol=1e-4, rtol=1e-4)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("dpt_head.") for n in trainable)
    assert any(n.startswith("dpt_head.") for n in trainable) == (preset == "genpercept-dpt")
    assert sum("lora_A" in n for n in trainable) == sum("lora_B" in n for n in trainable) > 0

    assert main(["train", "--config", str(_recipe(tmp_path)), *as_cli(overrides)]) == 0
    trained = OneStepModel.from_pretrained(run / "model")
    assert trained.config.lora_rank == 4
    weights = dict(trained.named_parameters())
    lora_b = [w for n, w in weights.items() if "lora_B" in n]
    assert any(w.abs().sum() > 0 for w in lora_b)  # trained
    base = {n.replace(".base_layer", ""): w for n, w in weights.items() if "lora_" not in n and n.startswith("unet.")}
    frozen = dict(plain.named_parameters())
    assert all(torch.equal(w, frozen[n]) for n, w in base.items() if n in frozen)  # the UNet itself did not move
    with torch.no_grad():
        assert not torch.allclose(trained(images).raw, plain(images).raw)

    plain.save_pretrained(tmp_path / "released")
    init = load_run_config(
        str(_recipe(tmp_path)), [*TINY, f"model.preset={preset}", f"model.init={tmp_path / 'released'}",
                                 "model.lora_rank=2", "model.lora_alpha=4"],
    )  # fmt: skip
    adapted = task.build_model(init, ())
    assert adapted.config.lora_rank == 2 and adapted.config.lora_alpha == 4
    assert not any(p.requires_grad for n, p in adapted.unet.named_parameters() if "lora_" not in n)


def test_lora_without_peft_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "peft", None)  # as if not installed
    config = load_run_config(str(_recipe(tmp_path)), [*TINY, "model.lora_rank=4"])
    with pytest.raises(ImportError, match=r"^LoRA adapters \(lora_rank 4\) need peft: pip install 'vpd\[lora\]'$"):
        get_task("onestep").build_model(config, ())


def test_latent_loss_adds_the_mse_to_the_encoded_ground_truth(tmp_path):
    """model.latent_loss: + w * MSE(predicted target latent, VAE mean of the normalised truth as 3 channels)."""
    from vpd.configuration import ConfigError

    task = get_task("onestep")
    overrides = [*TINY, "model.preset=e2eft", f"train.output_dir={tmp_path}"]
    config = load_run_config(str(_recipe(tmp_path)), [*overrides, "model.latent_loss=0.5"])
    model = task.build_model(config, ())
    depth = torch.rand(2, 1, 64, 64) + 0.5
    depth[0, :, 3:9, 3:9] = 0  # a hole over the first 2x2 latent cells: they do not count (Marigold's mask)
    batch = {"image": torch.rand(2, 3, 64, 64), "depth": depth}
    plain, plain_logs = task.loss(model, batch)
    plain.backward()
    pixel_grad = model.unet.conv_in.weight.grad.clone()
    model.zero_grad()
    total, logs = task.loss(model, batch, config)
    assert set(logs) == set(plain_logs) | {"latent"} and logs["latent"] > 0
    with torch.no_grad():
        out = model(batch["image"])
        target = normalize_depth(depth, depth > 0).expand(-1, 3, -1, -1)
        moments = model.vae.quant_conv(model.vae.encoder(target))
        error = ((out.latent - moments[:, :4] * model.config.latent_scale) ** 2).mean(1)
        keep = torch.ones_like(error, dtype=torch.bool)
        keep[0, :2, :2] = False
        expected = error[keep].mean()
    torch.testing.assert_close(torch.tensor(logs["latent"]), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(total.detach(), plain.detach() + 0.5 * expected, rtol=1e-4, atol=1e-6)
    total.backward()
    assert not torch.allclose(model.unet.conv_in.weight.grad, pixel_grad)  # the latent term reaches the UNet
    dpt = load_run_config(str(_recipe(tmp_path)), [*TINY, "model.preset=genpercept-dpt", "model.latent_loss=1"])
    with pytest.raises(ConfigError, match=r"^model\.latent_loss needs the VAE readout"):
        task.build_model(dpt, ())
