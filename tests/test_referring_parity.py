"""Referring segmentation: official-layout checkpoint file -> ``convert_checkpoint`` (auto-detected) -> VPDReferring
-> the official outputs (``vpd_refer_tiny`` fast, ``vpd_refer_full`` slow); the converter's checks; the model's save /
load round trip and the official loss."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from reference import assert_close, images_01, load_io, manifest, official_state_dict
from vpd.convert.registry import convert_checkpoint, detect
from vpd.convert.vpd_referring import convert_referring_state_dict, is_vpd_referring
from vpd.modeling.hub import PretrainedModel
from vpd.modeling.outputs import ReferringOutput
from vpd.modeling.referring import (
    VPDReferring,
    VPDReferringConfig,
    build_vpd_referring,
    referring_loss,
    tiny_vpd_referring_config,
)

TAPS = ("tap_s8", "tap_s16", "tap_s32", "tap_s64")
TOKENS = 40


def official_referring_checkpoint(name: str, path: Path) -> Path:
    """What refer/train.py saves: the state dict under 'model', with optimizer, epoch, argparse args, scheduler."""
    args = argparse.Namespace(token_length=TOKENS, img_size=512, lr=5e-5, weight_decay=1e-2, model_id="refcoco")
    checkpoint = {"model": official_state_dict(name), "optimizer": {}, "epoch": 3, "args": args, "lr_scheduler": {}}
    torch.save(checkpoint, path)
    return path


def check_referring_fixture(name: str, tmp_path: Path) -> dict[str, float]:
    model = convert_checkpoint(official_referring_checkpoint(name, tmp_path / f"{name}.pth"))
    assert isinstance(model, VPDReferring)
    assert model.context_length == TOKENS and not model.training
    inputs, expected = load_io(name, 512)
    captured: dict[str, Any] = {}
    model.backbone.register_forward_hook(lambda m, a, out: captured.__setitem__("backbone", out))
    model.head.register_forward_hook(lambda m, a, out: captured.__setitem__("head", out))
    with torch.inference_mode():
        out = model(images_01(inputs["images"]), torch.from_numpy(inputs["context"]))
    assert isinstance(out, ReferringOutput) and out.logits.shape == (2, 2, 512, 512)
    errors = {
        "logits": assert_close(out.logits[:, :, ::4, ::4], expected["pred_sub4"], atol=1e-3, rtol=1e-4, what="logits"),
        "classifier_out": assert_close(
            captured["head"], expected["classifier_out"], atol=1e-3, rtol=1e-4, what="classifier_out"
        ),
    }
    features = captured["backbone"].features
    taps, maps = 0.0, 0.0
    for tap, ours in zip(TAPS, features):
        ref = expected[tap]  # sample 0, float16
        if tap in ("tap_s16", "tap_s32"):
            taps = max(taps, assert_close(ours[:, :-TOKENS], ref[:, :-TOKENS], atol=2e-3, rtol=2e-3, what=tap))
            maps = max(
                maps,
                assert_close(ours[:, -TOKENS:], ref[:, -TOKENS:], atol=5e-5, rtol=0, what=f"{tap} attention maps"),
            )
        else:
            taps = max(taps, assert_close(ours, ref, atol=2e-3, rtol=2e-3, what=tap))
    errors["taps"], errors["maps"] = taps, maps
    print(f"{name} max abs errors: " + ", ".join(f"{k} {v:.3g}" for k, v in errors.items()))
    return errors


def test_tiny_referring_matches_official(tmp_path):
    errors = check_referring_fixture("vpd_refer_tiny", tmp_path)
    assert errors["logits"] < 1e-3


@pytest.mark.slow
def test_full_referring_matches_official(tmp_path):
    errors = check_referring_fixture("vpd_refer_full", tmp_path)
    assert errors["logits"] < 1e-3


def _meta_state(name: str) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device="meta") for key, shape, _ in manifest(name)["tensors"]}


def test_converter_detects_and_infers_the_official_shapes():
    state = _meta_state("vpd_refer_full")
    assert is_vpd_referring(state) and detect(state).name == "vpd-referring"
    config, converted = convert_referring_state_dict(state)
    assert config.hidden_channels == 640
    assert config.backbone.context_length == TOKENS and config.backbone.attention_maps
    assert config.backbone.feature_channels == (320, 680, 1320, 1280)
    assert config.backbone.unet["block_out_channels"] == [320, 640, 1280, 1280]
    assert converted["head.fuse.0.0.weight"].shape == (640, 2600, 3, 3)
    assert converted["head.classifier.bias"].shape == (2,)
    with torch.device("meta"):
        model = VPDReferring(config)
    assert model.state_dict().keys() == converted.keys()


def test_converter_checks_keys_and_settings():
    state = _meta_state("vpd_refer_tiny")
    with pytest.raises(ValueError, match=r"context_length 77 given.*40 tokens"):
        convert_referring_state_dict(state, context_length=77)
    with pytest.raises(ValueError, match=r"unexpected key.*classifier\.extra\.weight"):
        convert_referring_state_dict({**state, "classifier.extra.weight": torch.empty(1, device="meta")})
    with pytest.raises(ValueError, match=r"unexpected keys.*lang_proj\.weight"):
        convert_referring_state_dict({**state, "lang_proj.weight": torch.empty(1, device="meta")})
    del state["classifier.conv1_1.weight"], state["classifier.conv1_1.bias"]
    assert not is_vpd_referring(state)
    with pytest.raises(ValueError, match="conv1_1"):
        convert_referring_state_dict(state)


def test_converter_refuses_other_settings(tmp_path):
    state = official_state_dict("vpd_refer_tiny")
    with pytest.raises(ValueError, match="takes no max_depth"):
        convert_checkpoint({"model": state}, max_depth=10.0)
    with pytest.raises(ValueError, match=r"referring checkpoint.*recipe's task is depth"):
        convert_checkpoint({"model": state}, task="depth")


@pytest.fixture(scope="module")
def tiny_model() -> VPDReferring:
    return build_vpd_referring(tiny_vpd_referring_config(context_length=8), seed=0).eval()


def test_save_load_round_trip_and_any_size(tiny_model, tmp_path):
    images = torch.rand(2, 3, 72, 80, generator=torch.Generator().manual_seed(0))
    text = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = tiny_model(images, text)
    assert before.logits.shape == (2, 2, 72, 80)
    assert before.mask.shape == (2, 72, 80) and before.mask.dtype == torch.bool
    torch.testing.assert_close(before.probability, before.logits.softmax(1)[:, 1])
    assert torch.equal(before.mask, before.logits[:, 1] > before.logits[:, 0])
    tiny_model.save_pretrained(tmp_path / "model")
    loaded = PretrainedModel.from_pretrained(tmp_path / "model")
    assert isinstance(loaded, VPDReferring) and loaded.config == tiny_model.config
    with torch.inference_mode():
        after = loaded(images, text)
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="8 tokens per expression"):
        tiny_model(images, text[:, :5])


def test_config_requires_text_conditioning():
    config = tiny_vpd_referring_config()
    with pytest.raises(ValueError, match="conditioning='text'"):
        VPDReferringConfig(backbone=config.backbone.__class__(conditioning="scene", class_names=("a",)))
    assert VPDReferringConfig().backbone.feature_channels == (320, 680, 1320, 1280)


def test_loss_is_the_official_weighted_cross_entropy():
    logits = torch.randn(2, 2, 6, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    mask = torch.rand(2, 6, 5, generator=torch.Generator().manual_seed(1)) > 0.7
    loss = referring_loss(logits, mask)
    # torch's weighted mean: sum_i w[y_i] * nll_i / sum_i w[y_i]
    nll = F.cross_entropy(logits, mask.long(), reduction="none")
    weights = torch.where(mask, 1.1, 0.9)
    torch.testing.assert_close(loss, (weights * nll).sum() / weights.sum())
    loss.backward()
    assert logits.grad is not None
    with pytest.raises(ValueError, match="does not match"):
        referring_loss(logits, mask[:, :5])
    perfect = torch.stack([~mask, mask], 1).float() * 20
    assert referring_loss(perfect, mask) < 1e-6
