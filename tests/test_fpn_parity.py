"""Parity of the seg decoder (FPN neck + FPNHead + VPD's resize) with the official mmseg modules.

Official-layout neck/head weights (the weight rule over ``vpd_seg_head/manifest_{tiny,full}.json``) -> our converter
-> our modules, on the stored backbone taps; tolerances are the fixtures' README suggestions for a float32 CPU port.
Both fixtures run in the fast suite (about a second each).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from reference import REFERENCE, assert_close, fill_state_dict
from vpd.convert.backbone import check_all_used
from vpd.convert.fpn import convert_fpn_state_dict, infer_fpn_config
from vpd.modeling.heads.fpn import FPNConfig, FPNHead, FPNNeck, resize_logits
from vpd.modeling.hub import load_state_dict_strict

FOLDER = REFERENCE / "vpd_seg_head"
TAPS = ("tap_s8", "tap_s16", "tap_s32", "tap_s64")
CROPS = {"tl": slice(0, 16), "center": slice(248, 264), "br": slice(496, 512)}
TOL = {"atol": 2e-4, "rtol": 1e-5}


def official_state(name: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    manifest = json.loads((FOLDER / f"manifest_{name}.json").read_text())
    return manifest, fill_state_dict(manifest)


def build(config: FPNConfig) -> nn.ModuleDict:
    """The decoder as the seg model holds it: ``neck.*`` and ``head.*``."""
    return nn.ModuleDict(
        {
            "neck": FPNNeck(config.in_channels, config.out_channels),
            "head": FPNHead(
                config.out_channels, config.channels, config.num_classes, config.feature_strides, config.dropout
            ),
        }
    )


def converted(name: str) -> tuple[FPNConfig, nn.ModuleDict]:
    _, state = official_state(name)
    used: set[str] = set()
    ours = convert_fpn_state_dict(state, used)
    check_all_used(state, used, "vpd_seg_head")
    config = infer_fpn_config(ours)
    model = build(config)
    load_state_dict_strict(model, ours, source=f"vpd_seg_head/{name}")
    return config, model.eval()


@pytest.mark.parametrize("name", ["tiny", "full"])
def test_fpn_decoder_matches_official(name: str) -> None:
    config, model = converted(name)
    official = official_state(name)[0]["config"]
    assert config.in_channels == tuple(official["neck"]["in_channels"])
    assert config.out_channels == official["neck"]["out_channels"]
    assert config.channels == official["decode_head"]["channels"]
    assert config.num_classes == official["decode_head"]["num_classes"]
    assert config.feature_strides == tuple(official["decode_head"]["feature_strides"])

    inputs = np.load(FOLDER / f"input_{name}.npz")
    expected = np.load(FOLDER / f"expected_{name}.npz")
    taps = [torch.from_numpy(inputs[tap].astype(np.float32)) for tap in TAPS]
    with torch.inference_mode():
        logits = model["head"](model["neck"](taps))
        full = resize_logits(logits, (512, 512))
    errors = {"logits_s8": assert_close(logits, expected["logits_s8"], what=f"{name} logits_s8", **TOL)}
    for crop, window in CROPS.items():
        key = f"logits_512_crop_{crop}"
        errors[key] = assert_close(full[..., window, window], expected[key], what=f"{name} {key}", **TOL)

    top2 = full.topk(2, dim=1).values
    confident = (top2[:, 0] - top2[:, 1]) >= 1e-3
    pred = full.argmax(dim=1)
    reference = torch.from_numpy(expected["pred_512"].astype(np.int64))
    differ = pred != reference
    print(
        f"\n{name}: max abs error "
        + ", ".join(f"{k} {v:.3g}" for k, v in errors.items())
        + f"; pred_512 differs at {int(differ.sum())} of {differ.numel()} pixels, "
        f"{int((differ & confident).sum())} of them with a top-2 margin >= 1e-3 ({int((~confident).sum())} near ties)"
    )
    assert not (differ & confident).any(), f"{name} pred_512: {int((differ & confident).sum())} confident pixels differ"


def test_converter_rejects_keys_the_official_modules_do_not_have() -> None:
    _, state = official_state("tiny")
    for extra in ("neck.lateral_convs.0.bn.weight", "decode_head.conv_seg.extra", "decode_head.scale_heads.0.1.x"):
        with pytest.raises(ValueError, match=extra.replace(".", r"\.")):
            convert_fpn_state_dict({**state, extra: torch.zeros(1)}, set())
    with pytest.raises(ValueError, match="no FPN neck"):
        convert_fpn_state_dict({k: v for k, v in state.items() if k.startswith("decode_head.")}, set())


def test_infer_rejects_a_head_whose_levels_do_not_fit_the_strides() -> None:
    _, state = official_state("tiny")
    ours = convert_fpn_state_dict(state, set())
    broken = {k: v for k, v in ours.items() if not k.startswith("head.scale_heads.3.4.")}
    with pytest.raises(ValueError, match="level 3 has blocks"):
        infer_fpn_config(broken)


def test_head_uses_bn_running_statistics_in_eval() -> None:
    """The fixtures' BN statistics are 0 / 1, so parity alone would not catch a port that ignored them."""
    torch.manual_seed(0)
    head = FPNHead(8, 8, 3).eval()
    features = [torch.randn(1, 8, 16 >> i, 16 >> i) for i in range(4)]
    with torch.no_grad():
        before = head(features)
        for module in head.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.fill_(0.5)
                module.running_var.fill_(4.0)
        after = head(features)
    assert before.shape == (1, 3, 16, 16)
    assert not torch.allclose(before, after)


def test_head_resizes_levels_that_do_not_upsample_to_the_finest_size() -> None:
    """Sizes that are not multiples of the coarsest stride (e.g. 26, 13, 7, 4) still sum at level 0's size."""
    head = FPNHead(4, 4, 2).eval()
    neck = FPNNeck((3, 5, 6, 7), 4).eval()
    sizes = (26, 13, 7, 4)
    features = [torch.randn(1, c, s, s) for c, s in zip((3, 5, 6, 7), sizes)]
    with torch.no_grad():
        logits = head(neck(features))
    assert logits.shape == (1, 2, 26, 26)
    assert resize_logits(logits, (205, 208)).shape == (1, 2, 205, 208)
