"""Parity with the official VPD code: official-layout weights -> our converter -> our model -> the same outputs.

Tolerances are those the fixtures' README gives for a float32 CPU port. The tiny fixtures run in the fast suite;
the full SD-1.5-size depth fixtures (352 and 480) are marked slow (`make test-slow`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference import assert_close, images_01, load_io, official_state_dict
from vpd.convert.backbone import VPD_REFER, VPD_SEG, convert_backbone
from vpd.convert.vpd_depth import convert_vpd_depth
from vpd.modeling.backbone import BackboneConfig, VPDBackbone
from vpd.modeling.hub import load_state_dict_strict

TAPS = ("tap_s8", "tap_s16", "tap_s32", "tap_s64")


def check_depth_fixture(name: str, size: int) -> dict[str, float]:
    model = convert_vpd_depth({"model": official_state_dict(name)})
    inputs, expected = load_io(name, size)
    with torch.inference_mode():
        features = model.backbone(images_01(inputs["images"]), class_ids=torch.from_numpy(inputs["class_ids"]))
        fused = model.head.fuse(features.features)
        depth = model.head(features.features, features.image_size)
    errors = {"pred_d": assert_close(depth, expected["pred_d"], atol=1e-4, rtol=0, what="pred_d")}
    errors["encoder_out"] = assert_close(fused, expected["encoder_out"], atol=1e-3, rtol=1e-4, what="encoder_out")
    for tap, ours in zip(TAPS, features.features):
        float16 = expected[tap].dtype == np.float16
        tol = {"atol": 2e-3, "rtol": 2e-3} if float16 else {"atol": 1e-3, "rtol": 1e-4}
        errors[tap] = assert_close(ours, expected[tap], what=tap, **tol)
    return errors


def test_depth_tiny_matches_official():
    errors = check_depth_fixture("vpd_depth_tiny", 352)
    assert errors["pred_d"] < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("size", [352, 480])
def test_depth_full_matches_official(size):
    errors = check_depth_fixture("vpd_depth_full", size)
    print(f"vpd_depth_full {size}: " + ", ".join(f"{k} {v:.2g}" for k, v in errors.items()))


def test_mmseg_layout_converts_to_the_same_model():
    """mmseg stores the same weights under backbone./decode_head., plus parts VPD never runs and a mean row."""
    official = official_state_dict("vpd_depth_tiny")
    renames = [
        ("encoder.unet.", "backbone.unet."),
        ("encoder.encoder_vq.", "backbone.encoder_vq."),
        ("encoder.text_adapter.", "backbone.text_adapter."),
        ("encoder.gamma", "backbone.gamma"),
        ("encoder.layer1.", "decode_head.conv1."),
        ("encoder.layer2.0.", "decode_head.conv2."),
        ("encoder.out_layer.", "decode_head.conv_aggregation."),
        ("decoder.", "decode_head.decoder."),
        ("last_layer_depth.", "decode_head.depth_pred_layer."),
    ]
    mmseg = {}
    for key, value in official.items():
        if key == "encoder.class_embeddings":
            mmseg["backbone.class_embeddings"] = torch.cat([value, value.mean(0, keepdim=True)])
            continue
        new = next((key.replace(a, b, 1) for a, b in renames if key.startswith(a)), None)
        assert new is not None, key
        mmseg[new] = value
    mmseg["backbone.encoder_vq.decoder.conv_in.weight"] = torch.zeros(4, 4, 3, 3)  # kept by mmseg, never run
    mmseg["backbone.unet.unet.diffusion_model.out.2.weight"] = torch.zeros(4, 64, 3, 3)
    ours = convert_vpd_depth({"meta": {"mmseg_version": "1.2.2"}, "state_dict": mmseg}).state_dict()
    reference = convert_vpd_depth({"model": official}).state_dict()
    assert ours.keys() == reference.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], reference[key], rtol=0, atol=0, msg=key)


def backbone_from_fixture(name: str, layout, conditioning: str) -> VPDBackbone:
    used: set[str] = set()
    unet, vae, state = convert_backbone(official_state_dict(name), layout, used)
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    classes = state["class_embeddings"].shape[0] if "class_embeddings" in state else 0
    state.setdefault("class_embeddings", torch.zeros(0, 768))
    config = BackboneConfig(
        unet=unet,
        vae=vae,
        class_names=tuple(f"class{i}" for i in range(classes)),
        conditioning=conditioning,  # type: ignore[arg-type]
        attention_maps=True,
    )
    with torch.device("meta"):
        backbone = VPDBackbone(config)
    load_state_dict_strict(backbone, state, assign=True)
    return backbone.eval()


@pytest.mark.parametrize(
    ("name", "layout", "conditioning", "tokens"),
    [("vpd_seg_tiny", VPD_SEG, "classes", 150), ("vpd_refer_tiny", VPD_REFER, "text", 40)],
)
def test_attention_maps_match_official(name, layout, conditioning, tokens):
    """Semantic (150 class tokens) and referring (40 text tokens) backbones: taps + cross-attention maps."""
    backbone = backbone_from_fixture(name, layout, conditioning)
    inputs, expected = load_io(name, 512)
    images = images_01(inputs["images"][:1])  # the fixtures keep sample 0's taps
    text = torch.from_numpy(inputs["context"][:1]) if conditioning == "text" else None
    with torch.inference_mode():
        out = backbone(images, text_embeddings=text)
    assert out.attention_maps is not None
    for tap, ours in zip(TAPS, out.features):
        ref = expected[tap]
        if tap in ("tap_s16", "tap_s32"):
            assert_close(ours[:, :-tokens], ref[:, :-tokens], atol=2e-3, rtol=2e-3, what=tap)
            assert_close(ours[:, -tokens:], ref[:, -tokens:], atol=5e-5, rtol=0, what=f"{tap} attention maps")
        else:
            assert_close(ours, ref, atol=2e-3, rtol=2e-3, what=tap)
    for maps in out.attention_maps:
        torch.testing.assert_close(maps.sum(1), torch.ones_like(maps[:, 0]), atol=1e-5, rtol=0)
