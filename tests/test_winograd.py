"""Winograd 3x3 convolutions (:mod:`vpd.modeling.winograd`): exact enough where used, the direct convolution elsewhere,
the model they are applied to left as it was, and the predictor's option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vpd.inference import DepthPredictor
from vpd.modeling import winograd
from vpd.modeling.winograd import (
    MAX_PIXELS,
    MIN_CHANNELS,
    MIN_PIXELS,
    WinogradConv2d,
    cached_filters,
    use_winograd,
)


def _conv(in_channels: int = MIN_CHANNELS, out_channels: int = 24, bias: bool = True) -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias).eval()


@pytest.mark.parametrize("size", [(64, 64), (128, 128), (64, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_matches_the_convolution_in_float64(size: tuple[int, int], bias: bool) -> None:
    conv = _conv(bias=bias)
    model, count = use_winograd(nn.Sequential(conv))
    assert count == 1 and isinstance(model[0], WinogradConv2d)
    x = torch.randn(2, MIN_CHANNELS, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        weight, bias = conv.weight.double(), None if conv.bias is None else conv.bias.double()
        expected = F.conv2d(x.double(), weight, bias, padding=1)
        scale = F.conv2d(x.double().abs(), weight.abs(), padding=1).max().item()  # what rounding errors scale with
        fast = model(x)
    assert cached_filters(conv.weight) is not None  # the Winograd path ran
    error = (fast - expected).abs().max().item()
    assert error <= 1e-5 * scale, (error, scale)  # measured: 1.3e-6 to 1.7e-6 of it (direct: 6e-8)


@pytest.mark.parametrize(
    "case",
    ["smaller", "larger", "not divisible by 4", "few channels", "bf16", "autograd on", "training"],
)
def test_winograd_is_left_out_where_it_does_not_pay_or_is_not_exact(case: str) -> None:
    side, most = round(MIN_PIXELS**0.5), round(MAX_PIXELS**0.5)
    shape = {"smaller": (side - 4, side), "larger": (most + 4, most), "not divisible by 4": (66, 66)}
    conv = _conv(MIN_CHANNELS // 2 if case == "few channels" else MIN_CHANNELS)
    model, count = use_winograd(nn.Sequential(conv))
    assert count == (case != "few channels")
    x = torch.randn(1, conv.in_channels, *shape.get(case, (side, side)))
    if case == "bf16":
        model, conv, x = model.bfloat16(), conv.bfloat16(), x.bfloat16()
    if case == "training":
        model.train()
    with torch.set_grad_enabled(case in ("autograd on", "training")):
        out = model(x)
        assert torch.equal(out, conv(x))
    assert cached_filters(conv.weight) is None


def test_use_winograd_leaves_the_model_and_its_weights_as_they_were() -> None:
    model = nn.Sequential(_conv(), nn.Conv2d(24, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 1))
    fast, count = use_winograd(model)
    assert count == 1  # the stride-2 and the 1x1 convolutions are not 3x3 stride-1
    assert [type(m) for m in model] == [nn.Conv2d] * 3
    assert [type(m) for m in fast] == [WinogradConv2d, nn.Conv2d, nn.Conv2d]
    assert all(a is b for a, b in zip(model.parameters(), fast.parameters()))  # shared, not copied
    assert list(fast.state_dict()) == list(model.state_dict())
    with torch.no_grad():
        fast(torch.randn(1, MIN_CHANNELS, 64, 64))
    assert list(fast.state_dict()) == list(model.state_dict())  # the filters are not saved


def test_predictor_with_winograd_matches_eager(
    tiny_depth_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)  # the tiny model's convolutions are narrower than the threshold
    eager = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="fp32")
    fast = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="fp32", winograd=True)
    assert "vpd: Winograd convolutions in" in capsys.readouterr().err
    image = np.random.default_rng(0).integers(0, 256, (128, 96, 3), dtype=np.uint8)
    np.testing.assert_allclose(fast(image, flip=True).depth, eager(image, flip=True).depth, rtol=0, atol=1e-4)
    used = [m for m in fast.model.modules() if isinstance(m, WinogradConv2d) and cached_filters(m.weight) is not None]
    assert used  # some of the model's convolutions saw inputs of MIN_PIXELS to MAX_PIXELS
    assert not any(isinstance(m, WinogradConv2d) for m in eager.model.modules())


def test_predictor_refuses_winograd_outside_fp32_on_the_cpu(tiny_depth_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"DepthPredictor: winograd=True runs fp32 on the CPU only; the model is "
                                         r"bfloat16 on cpu"):  # fmt: skip
        DepthPredictor.from_pretrained(tiny_depth_dir, dtype="bf16", winograd=True)


@pytest.mark.parametrize("freeze", [False, True])
def test_compiled_winograd_matches_eager(freeze: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from vpd.inference.compiled import compile_model

    calls = []
    filters_of = winograd._filters_of
    monkeypatch.setattr(winograd, "_filters_of", lambda weight: calls.append(weight) or filters_of(weight))
    torch.manual_seed(0)
    model = nn.Sequential(_conv(out_channels=MIN_CHANNELS), nn.SiLU(), _conv(out_channels=8)).eval()
    fast, count = use_winograd(model)
    assert count == 2
    x = torch.randn(1, MIN_CHANNELS, 64, 64)
    with torch.inference_mode():
        expected = model(x)
        compiled = compile_model(fast, freeze=freeze)(x)
    assert len(calls) == 2  # the compiled graph ran the Winograd operator for both convolutions
    torch.testing.assert_close(compiled, expected, rtol=0, atol=1e-4)


def test_filters_are_remade_when_the_weight_changes_and_freed_with_it() -> None:
    conv = _conv()
    model, _ = use_winograd(nn.Sequential(conv))
    x = torch.randn(1, MIN_CHANNELS, 64, 64)
    with torch.no_grad():
        model(x)
        first = cached_filters(conv.weight)
        conv.weight.mul_(2)  # in place, as load_state_dict does
        assert cached_filters(conv.weight) is None
        torch.testing.assert_close(model(x), conv(x), rtol=0, atol=1e-4)
        assert cached_filters(conv.weight) is not first
    made = len(winograd._FILTERS)
    del model, conv
    assert len(winograd._FILTERS) == made - 1
