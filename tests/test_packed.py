"""bf16 convolution weights packed for oneDNN (``vpd.modeling.packed``): the same outputs as ``nn.Conv2d``, the plain
weights freed, the state dict unchanged, clear errors outside CPU inference, and the predictors' default."""

from __future__ import annotations

import copy
import pickle
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reference import images_01, load_io, official_state_dict
from vpd.convert.vpd_depth import convert_vpd_depth
from vpd.inference import DepthPredictor
from vpd.modeling.float32 import CAST_CHANNELS, Float32Conv2d
from vpd.modeling.packed import PackedConv2d, pack_weights, packing_supported

needs_onednn_bf16 = pytest.mark.skipif(
    not packing_supported(), reason="this CPU / torch build has no oneDNN bf16 convolutions"
)


def convolutions() -> nn.Sequential:
    """The shapes the models use: 3x3, 1x1, strided with asymmetric padding, dilated and grouped, without bias."""
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(8, 16, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(16, 16, 1),
            nn.Conv2d(16, 32, 3, stride=2, padding=(0, 1)),
            nn.Conv2d(32, 32, 3, padding=2, dilation=2, groups=4, bias=False),
        )
        .to(torch.bfloat16)
        .eval()
    )


@needs_onednn_bf16
def test_packed_convolutions_give_the_same_outputs_and_free_the_plain_weights() -> None:
    model = convolutions()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    plain = [weakref.ref(m.weight) for m in model if isinstance(m, nn.Conv2d)]
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 8, 21, 18, dtype=torch.bfloat16).contiguous(memory_format=layout)
        with torch.no_grad():
            expected = model(x)
        reference = copy.deepcopy(model)
        assert pack_weights(reference) == 4
        with torch.no_grad():
            assert torch.equal(reference(x), expected)  # bitwise: the same oneDNN kernels
    assert pack_weights(model) == 4 and all(isinstance(m, PackedConv2d) for m in (model[0], model[2], model[4]))
    assert all(ref() is None for ref in plain)  # the plain weights are gone, not kept beside the packed ones
    assert "weight" not in dict(model[0].named_parameters())
    saved = model.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in state)
    assert pack_weights(model) == 0  # nothing left to pack


@needs_onednn_bf16
def test_packed_convolutions_copy_pickle_load_and_compile() -> None:
    model = convolutions()
    pack_weights(model)
    x = torch.randn(1, 8, 16, 16, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected = model(x)
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert isinstance(other[0], PackedConv2d) and torch.equal(other(x), expected)
        compiled = torch.compile(model)(x)  # the packed convolution: one operator between the compiled kernels
        torch.testing.assert_close(compiled, expected, rtol=0, atol=1e-2)  # the SiLU fused, rounded once
    fresh = convolutions()
    fresh[0].weight.data.mul_(2)
    model.load_state_dict(fresh.state_dict())  # packs what it loads
    with torch.inference_mode():
        assert torch.equal(model(x), fresh(x))
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight"):
        model.load_state_dict({**fresh.state_dict(), "0.weight": torch.zeros(16, 8, 1, 1)})
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*0\.weight"):
        model.load_state_dict({k: v for k, v in fresh.state_dict().items() if k != "0.weight"})


@needs_onednn_bf16
def test_packed_convolutions_refuse_what_they_cannot_run() -> None:
    model = convolutions()
    pack_weights(model)
    x = torch.randn(1, 8, 16, 16, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"PackedConv2d: packed weights run bf16 inputs on the CPU, got fp32 on cpu"):
        model(x.float())
    with pytest.raises(RuntimeError, match=r"packed weights are for inference .* load the model again to train it"):
        model.train()(x)
    with pytest.raises(RuntimeError, match=r"packed weights are for inference"):
        model.eval()(x.requires_grad_())
    fp32 = nn.Sequential(
        nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 3, padding="same"), nn.Conv2d(3, 3, 3, padding_mode="reflect")
    )
    assert pack_weights(fp32) == 0 and pack_weights(fp32.to(torch.bfloat16)) == 1  # zero padding given as numbers


def test_float32_output_layer_casts_a_few_channels_at_a_time() -> None:
    """A bf16 input is cast CAST_CHANNELS channels at a time (not the whole map): the same output to fp32 rounding,
    and gradients still flow (mixed-precision training)."""
    torch.manual_seed(0)
    conv = Float32Conv2d(4 * CAST_CHANNELS + 5, 1, 3, padding=1)
    x = torch.randn(2, conv.in_channels, 24, 20, dtype=torch.bfloat16, requires_grad=True)
    out = conv(x)
    expected = nn.functional.conv2d(x.detach().float(), conv.weight, conv.bias, padding=1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.detach(), expected, rtol=0, atol=2e-6)
    out.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None and conv.bias.grad is not None


@needs_onednn_bf16
def test_packed_bf16_stays_near_the_official_fp32_depth() -> None:
    """The tiny parity fixture's bf16 model, packed, against the official fp32 output: the bounds of the unpacked
    bf16 model (tests/test_precision.py). Against the unpacked model: 0.013 m at most, 0.001 m on average (each
    convolution is bitwise the same, but its output comes channels-last, so later layers round in another order)."""
    model = convert_vpd_depth({"model": official_state_dict("vpd_depth_tiny")}).to(torch.bfloat16).eval()
    inputs, expected = load_io("vpd_depth_tiny", 352)
    images, class_ids = images_01(inputs["images"]), torch.from_numpy(inputs["class_ids"])
    with torch.inference_mode():
        unpacked = model(images, class_ids).depth.float().numpy()
        assert pack_weights(model) > 0
        depth = model(images, class_ids).depth.float().numpy()
    error = np.abs(depth - expected["pred_d"])
    assert error.max() < 0.05 and error.mean() < 0.01, (error.max(), error.mean())
    moved = np.abs(depth - unpacked)
    assert moved.max() < 0.03 and moved.mean() < 0.005, (moved.max(), moved.mean())


@needs_onednn_bf16
def test_predictors_pack_bf16_on_the_cpu_by_default(tiny_depth_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packed = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="bf16")
    assert "convolutions run on weights packed for oneDNN (bf16, CPU)" in capsys.readouterr().err
    assert any(isinstance(m, PackedConv2d) for m in packed.model.modules())
    plain = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="bf16", pack_weights=False)
    assert not any(isinstance(m, PackedConv2d) for m in plain.model.modules())
    fp32 = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="fp32")
    assert not any(isinstance(m, PackedConv2d) for m in fp32.model.modules())
    assert "packed" not in capsys.readouterr().err
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    np.testing.assert_allclose(packed(image).depth, plain(image).depth, rtol=0, atol=1e-2)

    assert not any(isinstance(m, PackedConv2d) for m in DepthPredictor(plain.model).model.modules())  # not asked
    with pytest.raises(ValueError, match=r"pack_weights=True packs bf16 convolutions on the CPU; the model is fp32"):
        DepthPredictor(fp32.model, pack_weights=True)
    with pytest.raises(ValueError, match=r"pack_weights=True and freeze_weights=True: freezing packs"):
        DepthPredictor(plain.model, compile=True, freeze_weights=True, pack_weights=True)


@needs_onednn_bf16
def test_compiled_predictor_with_packed_weights_matches_eager(tiny_depth_dir: Path) -> None:
    """``compile=True`` in bf16 on the CPU packs the weights too (no freezing): checked against eager, packed."""
    eager = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="bf16")
    compiled = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="bf16", compile=True)
    assert any(isinstance(m, PackedConv2d) for m in compiled.model.modules())
    image = np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    np.testing.assert_allclose(compiled(image).depth, eager(image).depth, rtol=0, atol=1e-2)
