"""Semantic segmentation: the official recipe's parameter groups and schedule, parity through the converter a user
runs, and the task wired into the trainer, evaluator and command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import REFERENCE, assert_close, images_01, load_io, manifest, official_state_dict
from runs import as_cli
from vpd.cli import main
from vpd.modeling.semantic import VPDSemantic
from vpd.training.config import load_run_config
from vpd.training.optim import param_groups
from vpd.training.schedules import group_lr

HEAD = REFERENCE / "vpd_seg_head"
TAPS = ("tap_s8", "tap_s16", "tap_s32", "tap_s64")


def official_semantic_checkpoint(size: str, path: Path) -> Path:
    """The official VPDSeg state dict (backbone 814 keys + FPN neck/head 60 keys) as an mmcv checkpoint file."""
    from weights_rule import fill_state_dict

    head = fill_state_dict(json.loads((HEAD / f"manifest_{size}.json").read_text()))
    state = {**official_state_dict(f"vpd_seg_{size}"), **head}
    torch.save({"meta": {"mmseg_version": "0.30.0", "CLASSES": None}, "state_dict": state}, path)
    return path


def test_official_recipe_parameter_groups_match_mmcv():
    """Every trainable parameter of the full model gets mmcv's lr and weight decay (param_groups.json)."""
    from vpd.convert.vpd_semantic import convert_semantic_state_dict

    recipe = load_run_config("semantic_ade20k")
    entries = manifest("vpd_seg_full")["tensors"] + json.loads((HEAD / "manifest_full.json").read_text())["tensors"]
    state = {name: torch.empty(shape, device="meta") for name, shape, _ in entries}
    config, converted = convert_semantic_state_dict(state)
    source_of = {id(tensor): name for name, tensor in state.items()}
    with torch.device("meta"):
        model = VPDSemantic(config)
    groups = param_groups(model, recipe.optim.weight_decay, recipe.optim.param_rules, recipe.optim.no_decay)
    ours = {n: (recipe.optim.lr * g["lr_scale"], g["weight_decay"]) for g in groups for n in g["names"]}
    reference = {p["name"]: p for p in json.loads((HEAD / "param_groups.json").read_text())["params"]}
    checked = 0
    for name, (lr, decay) in ours.items():
        origin = source_of[id(converted[name])]  # the official parameter this one was converted from
        expected = reference[origin]
        assert (lr, decay) == (expected["lr"], expected["weight_decay"]), f"{name} <- {origin}"
        checked += 1
    trainable = {n for n, p in reference.items() if p["requires_grad"] and ".diffusion_model.out." not in n}
    assert checked == len(trainable) == 726  # all but the frozen VAE (110) and the UNet output layers VPD drops (4)


def test_official_schedule_matches_mmcv_per_iteration():
    recipe = load_run_config("semantic_ade20k")
    schedule = json.loads((HEAD / "lr_schedule.json").read_text())
    scales = {"base": 1.0, "unet": 0.1, "unet_norm": 1.0}
    for probe, scale in scales.items():
        ours = [group_lr(recipe.optim, i, 80000, 1, 1, scale) for i in schedule["iters"]]
        assert ours == schedule["lr"][probe], probe  # bit-exact doubles


def test_tiny_semantic_matches_official_through_vpd_convert(tmp_path, capsys):
    checkpoint = official_semantic_checkpoint("tiny", tmp_path / "vpd_seg.pth")
    assert main(["convert", str(checkpoint), str(tmp_path / "model")]) == 0
    assert "vpd_semantic" in capsys.readouterr().out
    model = VPDSemantic.from_pretrained(tmp_path / "model")
    inputs, expected = load_io("vpd_seg_tiny", 512)
    images = images_01(inputs["images"][:1])
    with torch.inference_mode():
        features = model.backbone(images)
        logits_s8 = model.head(model.neck(features.features))
        logits = model(images).logits
    for tap, ours in zip(TAPS, features.features):
        assert_close(ours, expected[tap], atol=2e-3, rtol=2e-3, what=tap)
    head_expected = np.load(HEAD / "expected_tiny.npz")
    # The head fixture ran on the official float16-stored taps of this image; ours are float32 (README: ~0.05).
    err = assert_close(logits_s8, head_expected["logits_s8"][:1], atol=0.05, rtol=0, what="logits_s8")
    assert err < 0.05
    crop = head_expected["logits_512_crop_center"][:1]
    assert_close(logits[..., 248:264, 248:264], crop, atol=0.05, rtol=0, what="512 logits (centre crop)")


@pytest.mark.slow
def test_full_semantic_matches_official_through_the_converter(tmp_path):
    from vpd.convert.registry import convert_checkpoint

    model = convert_checkpoint(official_semantic_checkpoint("full", tmp_path / "vpd_seg.pth"))
    assert isinstance(model, VPDSemantic)
    inputs, expected = load_io("vpd_seg_full", 512)
    images = images_01(inputs["images"][:1])
    with torch.inference_mode():
        features = model.backbone(images)
        logits_s8 = model.head(model.neck(features.features))
    for tap, ours in zip(TAPS, features.features):
        assert_close(ours, expected[tap], atol=2e-3, rtol=2e-3, what=tap)
    head_expected = np.load(HEAD / "expected_full.npz")
    assert_close(logits_s8, head_expected["logits_s8"][:1], atol=0.05, rtol=0, what="logits_s8")


SEG_RUN = [
    "model.task=semantic",
    "model.architecture=tiny",
    "model.pretrained=null",
    "model.class_embeddings=random",
    "data.train.kind=synthetic",
    "data.train.args={num_scenes: 6, height: 48, width: 64, seed: 1}",
    "data.val.kind=synthetic",
    "data.val.args={num_scenes: 2, height: 48, width: 64, seed: 2}",
    "data.num_workers=0",
    "augment.crop_size=[48,48]",
    "augment.img_scale=[96,48]",
    "eval.img_scale=null",
    "eval.crop=[48,48]",
    "eval.stride=[32,32]",
    "optim.schedule=constant",
    "optim.lr=1e-3",
    "train.batch_size=2",
    "train.max_steps=2",
    "train.progress=false",
]


def test_semantic_train_eval_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    overrides = as_cli([*SEG_RUN, f"train.output_dir={run}"])
    assert main(["train", "--config", "semantic_ade20k", *overrides]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["eval"]) == {"aAcc", "mIoU", "mAcc"}
    model = VPDSemantic.from_pretrained(run / "model")
    from vpd.data.synthetic import SEMANTIC_CLASSES

    assert model.class_names == SEMANTIC_CLASSES  # built for the dataset's label classes, not its scene classes
    out = tmp_path / "eval"
    code = main(["eval", "--config", str(run / "config.yaml"), "--model", str(run / "model"), "--output", str(out),
                 "--save-predictions"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["task"] == "semantic" and len(summary["per_class"]) == len(SEMANTIC_CLASSES)
    assert (out / "per_class.csv").read_text().splitlines()[0].startswith("class,")
    assert len(list((out / "predictions").glob("*.png"))) == 2


def test_semantic_predictor_matches_the_evaluation_path(tmp_path):
    from vpd.inference.segmentation import SemanticPredictor
    from vpd.modeling.semantic import build_vpd_semantic, tiny_vpd_semantic_config
    from vpd.tasks.semantic import SemanticEvalConfig, predict_segmentation

    model = build_vpd_semantic(tiny_vpd_semantic_config(("wall", "floor", "chair", "table")), seed=3).eval()
    predictor = SemanticPredictor.from_pretrained(model.save_pretrained(tmp_path / "m"), dtype="fp32")
    image = np.random.default_rng(0).integers(0, 256, (40, 72, 3), dtype=np.uint8)
    settings = {"img_scale": (96, 48), "crop": (48, 48), "stride": (32, 32)}
    out = predictor(image, **settings, return_probabilities=True)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        scores = predict_segmentation(model, tensor, SemanticEvalConfig(**settings))[0]
    assert out.labels.shape == (40, 72) and out.labels.dtype == np.int64
    np.testing.assert_array_equal(out.labels, scores.argmax(0).numpy())
    np.testing.assert_allclose(out.probabilities, scores.softmax(0).numpy(), atol=1e-6)
    assert out.class_names == ("wall", "floor", "chair", "table")
    ms = predictor([image, image[:, :50]], **settings, ratios=(1.0, 1.5), flip=True, return_probabilities=True)
    assert [p.labels.shape for p in ms] == [(40, 72), (40, 50)]
    np.testing.assert_allclose(ms[0].probabilities.sum(0), 1.0, atol=1e-5)  # averaged probabilities


def test_vpd_predict_writes_labels_colours_and_overlays(tmp_path, capsys):
    from PIL import Image

    from vpd.modeling.semantic import build_vpd_semantic, tiny_vpd_semantic_config

    model_dir = build_vpd_semantic(tiny_vpd_semantic_config(("wall", "floor")), seed=0).save_pretrained(tmp_path / "m")
    images = tmp_path / "images" / "sub"
    images.mkdir(parents=True)
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(images / "a.png")
    out = tmp_path / "out"
    code = main(["predict", str(tmp_path / "images"), "--model", str(model_dir), "-o", str(out),
                 "--formats", "labels,color,overlay,probs"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with Image.open(out / "sub" / "a_labels.png") as labels:
        assert labels.mode == "L" and labels.size == (44, 30) and max(np.asarray(labels).flat) <= 1
    assert np.load(out / "sub" / "a_probs.npy").shape == (2, 30, 44)
    assert {p.name for p in (out / "sub").iterdir()} == {"a_labels.png", "a_labels_color.png", "a_overlay.png",
                                                         "a_probs.npy"}  # fmt: skip


def test_labels_without_probabilities_are_taken_before_the_resize_back(tmp_path):
    """A large photo at a processing resolution: labels come back with nearest, never C full-size score maps."""
    from vpd.inference.segmentation import SemanticPredictor
    from vpd.modeling.semantic import build_vpd_semantic, tiny_vpd_semantic_config

    model = build_vpd_semantic(tiny_vpd_semantic_config(("wall", "floor", "chair")), seed=5).eval()
    predictor = SemanticPredictor(model)
    image = np.random.default_rng(2).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    settings = {"img_scale": None, "mode": "whole", "processing_resolution": 45}
    labels = predictor(image, **settings).labels
    small = predictor(np.asarray(torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(30, 45), mode="bilinear", antialias=True
    )[0].permute(1, 2, 0).round().clamp(0, 255).byte()), img_scale=None, mode="whole")  # fmt: skip
    assert labels.shape == (60, 90)
    rows, cols = np.arange(60) * 30 // 60, np.arange(90) * 45 // 90
    agree = (labels == small.labels[rows][:, cols]).mean()
    assert agree > 0.9  # nearest upsampling of the processed labels (the resized inputs differ by rounding only)
