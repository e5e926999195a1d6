"""Referring segmentation on the task-generic core: the recipes, the model's own CLIP (a folder in its config, or
bundled), training with the official per-ref sentence draw, and ``vpd eval --split`` on the refer-API layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from runs import as_cli
from test_refcoco import make_refer_tree
from vpd.cli import main
from vpd.data.refcoco import RefCOCO
from vpd.modeling.referring import VPDReferring, build_vpd_referring, tiny_vpd_referring_config
from vpd.modeling.text_encoder import tiny_clip
from vpd.tasks import get_task
from vpd.training.config import load_run_config
from vpd.training.optim import UNET_TRANSFORMER_NORMS, match_rule, param_groups

pytest.importorskip("pycocotools")

RECIPES = {
    "referring_refcoco": ("refcoco", 40),
    "referring_refcoco+": ("refcoco+", 40),
    "referring_refcocog": ("refcocog", 77),
}
SENTENCES = ["man on the left", "left guy", "person at top", "dog right", "the two dogs", "the man"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP (text width 32, the tiny architecture's) saved as a folder, as a user's would be."""
    encoder, tokenizer = tiny_clip(sorted({word for s in SENTENCES for word in s.split()}))
    folder = tmp_path_factory.mktemp("clip")
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def refer_root(tmp_path: Path) -> Path:
    return make_refer_tree(tmp_path / "refer")


def tiny_overrides(clip: Path, root: Path, output: Path) -> list[str]:
    return [
        "model.architecture=tiny",
        "model.pretrained=null",
        f"model.text_encoder={clip}",
        "model.context_length=8",
        f"data.train.args.root={root}",
        "data.train.args.size=64",
        f"data.val.args.root={root}",
        "data.val.args.size=64",
        "data.num_workers=0",
        "train.batch_size=2",
        "train.max_steps=2",
        "train.progress=false",
        f"train.output_dir={output}",
    ]


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipes_are_the_official_ones(name: str) -> None:
    dataset, tokens = RECIPES[name]
    config = load_run_config(name)
    assert config.model.task == "referring" and config.model.context_length == tokens
    assert config.model.text_encoder == "openai/clip-vit-large-patch14"
    optim = config.optim
    assert (optim.lr, optim.weight_decay, optim.schedule, optim.poly_power, optim.min_lr) == (
        5e-5,
        0.01,
        "poly",
        0.9,
        0,
    )
    assert optim.warmup == "none" and config.train.epochs == 40 and config.train.batch_size == 32
    assert config.data.train is not None and config.data.val is not None
    assert config.data.train.args["dataset"] == dataset and config.data.train.args["sentences"] == "one_per_ref"
    assert config.data.val.args.get("sentences", "all") == "all"
    assert config.data.train.args.get("split_by") == ("umd" if dataset == "refcocog" else None)


def test_official_parameter_groups_and_the_optional_unet_scale() -> None:
    """Decay 0.01 everywhere but the UNet's transformer norms (the official 'norm' rule), all at the full rate; the
    recipe's documented extra rule scales the rest of the UNet by 0.01."""
    model = build_vpd_referring(tiny_vpd_referring_config(context_length=8), seed=0)
    config = load_run_config("referring_refcoco")
    groups = param_groups(model, config.optim.weight_decay, config.optim.param_rules, config.optim.no_decay)
    decay = {name: g["weight_decay"] for g in groups for name in g["names"]}
    assert all(g["lr_scale"] == 1.0 for g in groups)
    norms = {name for name in decay if match_rule(name, [_rule(UNET_TRANSFORMER_NORMS)])}
    assert norms and all(name.startswith("backbone.unet.") for name in norms)
    assert {decay[n] for n in norms} == {0.0} and {v for n, v in decay.items() if n not in norms} == {0.01}
    assert not any(p.requires_grad for p in model.backbone.vae.parameters())  # the frozen VAE trains not at all

    scaled = load_run_config(
        "referring_refcoco",
        [f"optim.param_rules=[{{key: '{UNET_TRANSFORMER_NORMS}', decay_mult: 0.0}}, {{key: unet, lr_mult: 0.01}}]"],
    )
    groups = param_groups(model, scaled.optim.weight_decay, scaled.optim.param_rules, scaled.optim.no_decay)
    lr = {name: g["lr_scale"] for g in groups for name in g["names"]}
    unet = {n for n in lr if n.startswith("backbone.unet.") and n not in norms}
    assert unet and {lr[n] for n in unet} == {0.01} and {lr[n] for n in lr if "unet" not in n} == {1.0}


def _rule(key: str) -> object:
    from types import SimpleNamespace

    return SimpleNamespace(key=key, lr_mult=1.0, decay_mult=1.0)


def test_one_sentence_per_ref_drawn_per_epoch(refer_root: Path) -> None:
    """Training takes one random sentence per ref each epoch (the official loader), deterministically by seed."""
    train = RefCOCO(refer_root, "refcoco", "train", size=32, sentences="one_per_ref", seed=3)
    assert len(train) == 2  # two refs in train; evaluation's sentences="all" has 3 samples
    drawn = [train[epoch * len(train)]["text"] for epoch in range(24)]
    assert set(drawn) == {"man on the left", "left guy"}
    again = RefCOCO(refer_root, "refcoco", "train", size=32, sentences="one_per_ref", seed=3)
    assert [again[epoch * len(train)]["text"] for epoch in range(24)] == drawn
    other = RefCOCO(refer_root, "refcoco", "train", size=32, sentences="one_per_ref", seed=4)
    assert [other[epoch * len(train)]["text"] for epoch in range(24)] != drawn
    assert all(train[epoch * len(train) + 1]["text"] == "person at top" for epoch in range(3))  # one sentence


def test_train_then_eval_per_split_from_the_command_line(
    clip_dir: Path, refer_root: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    overrides = tiny_overrides(clip_dir, refer_root, run)
    assert main(["train", "--config", "referring_refcoco", *as_cli(overrides)]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 2
    model = VPDReferring.from_pretrained(run / "model")
    assert model.config.text_encoder == str(clip_dir) and model.context_length == 8

    out = tmp_path / "eval"
    args = ["eval", "--config", "referring_refcoco", "--model", str(run / "model"), "--output", str(out)]
    assert main([*args, *as_cli(overrides), "--split", "val", "testA", "--save-predictions"]) == 0
    printed = capsys.readouterr().out
    assert "split val: 2 samples" in printed and "split testA: 1 samples" in printed
    for split, count in (("val", 2), ("testA", 1)):
        summary = json.loads((out / split / "metrics.json").read_text())
        assert summary["dataset"]["split"] == split and summary["samples"] == count
        assert set(summary["metrics"]) == {"oIoU", "mIoU", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9"}
        lines = (out / split / "per_sample.csv").read_text().splitlines()
        assert lines[0].split(",")[:4] == ["name", "image", "sentence", "IoU"] and len(lines) == count + 1
        assert len(list((out / split / "predictions").glob("*.png"))) == count
    table = json.loads((out / "splits.json").read_text())["splits"]
    assert [row["split"] for row in table] == ["val", "testA"]
    assert table[0]["oIoU"] == json.loads((out / "val" / "metrics.json").read_text())["metrics"]["oIoU"]

    assert main([*args, *as_cli(overrides), "--split", "testB"]) == 2  # the fixture has no testB refs
    assert "no refs in split 'testB'" in capsys.readouterr().err


def test_bundled_text_encoder_travels_with_the_weights(clip_dir: Path, tmp_path: Path) -> None:
    """bundle_text_encoder saves the CLIP inside the model folder: it loads (and predicts the same) without the
    original; otherwise the config's source is used, and its absence is a one-line error naming it."""
    clip = tmp_path / "clip"
    shutil.copytree(clip_dir, clip)
    config = tiny_vpd_referring_config(context_length=8, text_encoder=str(clip))
    model = build_vpd_referring(config, seed=0).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = model(images, expressions=["the man", "dog right"]).logits
    plain, bundled = tmp_path / "plain", tmp_path / "bundled"
    model.save_pretrained(plain)
    model.config = config.__class__(**{**config.__dict__, "bundle_text_encoder": True})
    model.save_pretrained(bundled)
    assert (bundled / "text_encoder").is_dir() and (bundled / "tokenizer").is_dir()
    assert not (plain / "text_encoder").exists()
    shutil.rmtree(clip)
    loaded = VPDReferring.from_pretrained(bundled)
    with torch.inference_mode():
        after = loaded(images, expressions=["the man", "dog right"]).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    orphan = VPDReferring.from_pretrained(plain)
    with pytest.raises(Exception, match=str(clip)):
        orphan.encode_expressions(["the man"])


def test_a_tiny_model_without_a_text_encoder_is_a_config_error(tmp_path: Path) -> None:
    from vpd.configuration import ConfigError

    config = load_run_config(
        "referring_refcoco", ["model.architecture=tiny", "model.pretrained=null", "model.text_encoder=null"]
    )
    with pytest.raises(ConfigError, match=r"model\.text_encoder"):
        get_task("referring").build_model(config, ())


def test_dice_loss_option_adds_the_soft_dice_of_the_object(clip_dir: Path, tmp_path: Path) -> None:
    """model.dice_loss: the official cross-entropy + w * the batch's mean soft Dice loss of the object probability."""
    from vpd.configuration import ConfigError
    from vpd.modeling.losses import dice_loss
    from vpd.modeling.referring import referring_loss

    task = get_task("referring")
    overrides = ["model.architecture=tiny", "model.pretrained=null", f"model.text_encoder={clip_dir}",
                 "model.context_length=8"]  # fmt: skip
    config = load_run_config("referring_refcoco", [*overrides, "model.dice_loss=0.5"])
    assert load_run_config("referring_refcoco", overrides).model.dice_loss == 0.0  # the official loss by default
    torch.manual_seed(0)
    model = task.build_model(config, ())
    mask = torch.zeros(2, 64, 64, dtype=torch.long)
    mask[0, 8:40, 16:48] = 1
    mask[1, 50:60, 2:12] = 1
    batch = {"image": torch.rand(2, 3, 64, 64), "mask": mask, "text": ["the man", "dog right"]}
    total, logs = task.loss(model, batch, config)
    plain, plain_logs = task.loss(model, batch)
    assert set(plain_logs) == {"ce"} and set(logs) == {"ce", "dice"}
    with torch.no_grad():
        logits = model(batch["image"], expressions=batch["text"]).logits
        probability = logits.softmax(1)[:, 1]
        per_sample = [1 - (2 * (p * m).sum() + 1) / (p.sum() + m.sum() + 1) for p, m in zip(probability, mask)]
        expected = torch.stack(per_sample).mean()
    torch.testing.assert_close(torch.tensor(logs["dice"]), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(plain.detach(), referring_loss(logits, mask))
    torch.testing.assert_close(total.detach(), plain.detach() + 0.5 * expected, rtol=1e-5, atol=1e-6)
    assert float(dice_loss(mask.float(), mask)) < 1e-6  # a perfect mask costs nothing
    assert float(dice_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))) == 0.0  # nor does an empty one, correctly
    with pytest.raises(ValueError, match="differ"):
        dice_loss(probability, mask[:, :5])
    with pytest.raises(ConfigError, match=r"model\.dice_loss"):
        load_run_config("referring_refcoco", [*overrides, "model.dice_loss=-1"])
    # a loss weight is no architecture: fine-tuning a saved model (model.init) with the term is no contradiction
    saved = model.save_pretrained(tmp_path / "saved")
    tuned = load_run_config("referring_refcoco", [*overrides, f"model.init={saved}", "model.dice_loss=0.5"])
    rebuilt = task.build_model(tuned, ())
    assert all(torch.equal(t, rebuilt.state_dict()[k]) for k, t in model.state_dict().items())
