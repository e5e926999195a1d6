"""Precision that picks itself (``dtype="auto"``), lean loading into the compute dtype, and how far bf16 strays.

``resolve_dtype`` reads the CPU's flags; the tests hand it flag sets of the CPUs that matter (AMX, AVX512-BF16,
AVX2 only) so they hold on whatever machine runs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reference import images_01, load_io, official_state_dict
from vpd.convert.vpd_depth import convert_vpd_depth
from vpd.inference import DepthPredictor
from vpd.modeling.depth import VPDDepth
from vpd.modeling.hub import read_safetensors
from vpd.runtime import cpu_bf16_units, resolve_dtype

AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2 = frozenset({"avx2", "fma"})


def test_auto_picks_bf16_only_where_the_cpu_has_bf16_units() -> None:
    assert cpu_bf16_units(AMX) == "AMX" and cpu_bf16_units(ZEN4) == "AVX512-BF16" and cpu_bf16_units(AVX2) is None
    assert resolve_dtype("auto", "cpu", flags=AMX) == (torch.bfloat16, "auto: this CPU has AMX")
    assert resolve_dtype("auto", "cpu", flags=ZEN4)[0] == torch.bfloat16
    dtype, reason = resolve_dtype("auto", "cpu", flags=AVX2)
    assert dtype == torch.float32 and "no bf16 matrix units" in reason
    assert resolve_dtype(None, "cpu", flags=AVX2)[0] == torch.float32  # None means auto


def test_asked_precisions() -> None:
    assert resolve_dtype("fp32", "cpu", flags=AMX)[0] == torch.float32
    assert resolve_dtype(torch.bfloat16, "cpu", flags=AMX) == (torch.bfloat16, "as asked")
    dtype, reason = resolve_dtype("BF16", "cpu", flags=AVX2)  # asked for: given, with a warning in the reason
    assert dtype == torch.bfloat16 and "far slower" in reason
    with pytest.raises(ValueError, match="this CPU has no fp16 units"):
        resolve_dtype("fp16", "cpu", flags=AMX)
    assert resolve_dtype("fp16", "cpu", flags=AMX | {"amx_fp16"})[0] == torch.float16
    with pytest.raises(ValueError, match=r"dtype 'fp64': expected one of auto, fp32, bf16, fp16"):
        resolve_dtype("fp64", "cpu")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_dtype(torch.float64, "cpu")


def test_predictor_auto_is_announced_once(
    tiny_depth_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpd.runtime

    monkeypatch.setattr(vpd.runtime, "_ANNOUNCED", set())  # as in a fresh process
    expected, _ = resolve_dtype("auto", "cpu")
    first = DepthPredictor.from_pretrained(tiny_depth_dir)  # the default: auto
    assert first.dtype == expected
    err = capsys.readouterr().err
    assert err.count("vpd: running in") == 1 and "auto: this CPU" in err
    DepthPredictor.from_pretrained(tiny_depth_dir)
    assert "vpd: running in" not in capsys.readouterr().err  # once per process
    assert DepthPredictor.from_pretrained(tiny_depth_dir, dtype=None).dtype == torch.float32  # None: as saved


def test_weights_are_read_straight_into_the_compute_dtype(tiny_depth_dir: Path) -> None:
    full = read_safetensors(tiny_depth_dir / "model.safetensors")
    lean = read_safetensors(tiny_depth_dir / "model.safetensors", dtype=torch.bfloat16)
    assert full.keys() == lean.keys()
    for key, tensor in full.items():
        assert lean[key].dtype == (torch.bfloat16 if tensor.is_floating_point() else tensor.dtype), key
        torch.testing.assert_close(lean[key], tensor.to(lean[key].dtype), rtol=0, atol=0)
    model = VPDDepth.from_pretrained(tiny_depth_dir, dtype=torch.bfloat16)
    dtypes = {k: v.dtype for k, v in model.state_dict().items() if v.is_floating_point()}
    assert {k for k, v in dtypes.items() if v != torch.bfloat16} == {"head.predict.2.weight", "head.predict.2.bias"}
    assert model.head.predict[2].weight.dtype == torch.float32  # the output layer, read as float32 from the file
    torch.testing.assert_close(model.head.predict[2].weight, full["head.predict.2.weight"], rtol=0, atol=0)


def test_bf16_stays_near_the_official_fp32_depth() -> None:
    """The bf16 model (weights and activations) on the tiny parity fixture, against the official fp32 output:
    0.018 m at most, 0.002 m on average on an AVX512-BF16 EPYC, 0.019 / 0.002 m on an AMX Xeon with the bf16
    channels-last layout (the fp32 port: 3e-6; 0.040 / 0.009 m before the head's sigmoid ran in fp32); bounded at
    0.05 / 0.01 m."""
    model = convert_vpd_depth({"model": official_state_dict("vpd_depth_tiny")}).to(torch.bfloat16).eval()
    inputs, expected = load_io("vpd_depth_tiny", 352)
    with torch.inference_mode():
        features = model.backbone(images_01(inputs["images"]), class_ids=torch.from_numpy(inputs["class_ids"]))
        depth = model.head(features.features, features.image_size).float().numpy()
    error = np.abs(depth - expected["pred_d"])
    assert error.max() < 0.05 and error.mean() < 0.01, (error.max(), error.mean())


def test_float32_output_layers_survive_a_bf16_cast() -> None:
    """The last convolution of each map-producing model stays float32 (same parameter names), so a bf16 model's
    maps are smooth: a one-step model's decoded map takes thousands of values, not bf16's 256 per octave."""
    from vpd.modeling.float32 import Float32Conv2d, keep_float32
    from vpd.modeling.onestep import OneStepModel, preset_config
    from vpd.tasks.onestep import _tiny_components

    torch.manual_seed(0)
    model = OneStepModel(preset_config("genpercept", "depth", *_tiny_components("genpercept")))
    names = set(model.state_dict())
    model.to(torch.bfloat16)
    assert set(model.state_dict()) == names
    conv = model.vae.decoder.conv_out
    assert isinstance(conv, Float32Conv2d) and conv.weight.dtype == torch.float32
    assert model.vae.decoder.conv_in.weight.dtype == torch.bfloat16
    with torch.inference_mode():
        prediction = model(torch.rand(1, 3, 64, 64, dtype=torch.bfloat16)).prediction
    assert prediction.dtype == torch.float32 and len(torch.unique(prediction)) > 1000
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed-precision training: still float32 out
        assert conv(torch.rand(1, conv.in_channels, 4, 4)).dtype == torch.float32
    with pytest.raises(TypeError, match=r"expected a plain nn\.Conv2d, got Linear"):
        keep_float32(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_training_autocast_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    import vpd.runtime
    from vpd.training.config import load_run_config
    from vpd.training.trainer import autocast_for

    assert autocast_for("no") == "no" and autocast_for("bf16") == "bf16"
    monkeypatch.setattr(vpd.runtime, "cpu_flags", lambda: ZEN4)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert autocast_for("auto") == "bf16"
    monkeypatch.setattr(vpd.runtime, "cpu_flags", lambda: AVX2)
    assert autocast_for("auto") == "no"
    # a bare `no` is a bool to YAML 1.1; the option still reads it as the word
    assert load_run_config("demo_synthetic_depth", ["train.mixed_precision=no"]).train.mixed_precision == "no"
    assert load_run_config("onestep_genpercept_depth", []).train.mixed_precision == "auto"


def test_freezing_probe_tells_the_truth() -> None:
    """The probe's verdict is what freezing really does to the BatchNorm-after-ConvTranspose2d pair on this torch
    (on torch 2.13 it is wrong, and the probe must say so)."""
    from torch._inductor import config as inductor_config

    from vpd.inference.compiled import FREEZING_PROBE_TOLERANCE, _probe_model, freezing_is_exact

    model = _probe_model()
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad(), inductor_config.patch(freezing=True):
        error = (torch.compile(model)(x) - model(x)).abs().max().item()
    assert freezing_is_exact() == (error <= FREEZING_PROBE_TOLERANCE), error
    if torch.__version__.startswith("2.13."):
        assert not freezing_is_exact()


def test_freezing_is_kept_off_only_the_parts_it_folds_wrongly() -> None:
    """A model whose ``head`` holds the probe's pattern (BatchNorm after ConvTranspose2d) and whose ``body`` does not:
    frozen whole, torch 2.13 gets it wrong; :func:`compile_model` freezes only the body and matches eager, and leaves
    the model itself as it was."""
    from torch._inductor import config as inductor_config

    from vpd.inference.compiled import _probe_model, compile_model, folds_wrongly, freezing_is_exact

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
            self.head = _probe_model()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    model = Model().eval()
    assert folds_wrongly(model) and folds_wrongly(model.head) and not folds_wrongly(model.body)
    x = torch.randn(1, 32, 6, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        if not freezing_is_exact():
            with inductor_config.patch(freezing=True):  # what freezing the whole model gives
                assert (torch.compile(model)(x) - expected).abs().max() > 1e-2
        torch.compiler.reset()  # dynamo reuses a frame's graph for the same module: each variant compiles afresh
        compiled = compile_model(model, freeze=True)
        assert (compiled(x) - expected).abs().max() <= 1e-4
        if not freezing_is_exact():
            assert type(model.head) is nn.Sequential and type(compiled.head) is not nn.Sequential
        torch.compiler.reset()
        assert (compile_model(model)(x) - expected).abs().max() <= 1e-4  # no freezing: the default
        assert (model(x) - expected).abs().max() == 0  # the model is still the eager one


def test_compile_parts_compile_apart_and_compiling_hands_memory_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model naming ``compile_parts`` gets each part compiled as a graph of its own (the model itself unchanged, the
    output as eager); every compilation ends by collecting garbage and trimming the heap, through one callback that
    is registered once, and again after ``torch.compiler.reset()`` drops it."""
    from torch._dynamo.callback import callback_handler
    from torch._dynamo.eval_frame import OptimizedModule

    import vpd.inference.compiled as compiled_module

    class Model(nn.Module):
        compile_parts = ("body", "head")

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU())
            self.head = nn.Conv2d(8, 1, 1)
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x)) * self.scale

    released: list[int] = []
    monkeypatch.setattr(compiled_module, "release_freed_memory", lambda: released.append(1))
    model = Model().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.compiler.reset()
    with torch.no_grad():
        expected = model(x)
        compiled = compiled_module.compile_model(model)
        compiled_module.compile_model(model)
        assert callback_handler.end_callbacks.count(compiled_module._release) == 1
        assert isinstance(compiled.body, OptimizedModule) and isinstance(compiled.head, OptimizedModule)
        assert type(model.body) is nn.Sequential and type(model.head) is nn.Conv2d
        assert not released  # nothing compiled yet: torch.compile is lazy
        torch.testing.assert_close(compiled(x), expected, rtol=0, atol=1e-5)
        assert len(released) >= 2  # one graph a part, each ending with a release
        torch.compiler.reset()
        compiled_module.compile_model(model)
        assert callback_handler.end_callbacks.count(compiled_module._release) == 1
        torch.compiler.reset()


def test_predictors_hand_freed_memory_back_after_each_batch_on_the_cpu(
    tiny_depth_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpd.inference.base as base

    released: list[int] = []
    monkeypatch.setattr(base, "release_freed_memory", lambda: released.append(1))
    predictor = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="fp32")
    images = [np.zeros((32, 48, 3), np.uint8), np.zeros((32, 48, 3), np.uint8), np.zeros((40, 40, 3), np.uint8)]
    predictor(images, batch_size=2)
    assert len(released) == 2  # one batch of the two 32x48 images, one of the 40x40 one


def test_compiled_predictor_matches_eager(tiny_depth_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With weight freezing (``compile_model`` without it is checked on a small model above)."""
    eager = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="fp32")
    compiled = DepthPredictor.from_pretrained(tiny_depth_dir, dtype="fp32", compile=True, freeze_weights=True)
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    expected = eager(image, flip=True).depth
    np.testing.assert_allclose(compiled(image, flip=True).depth, expected, rtol=0, atol=1e-4)
    err = capsys.readouterr().err
    assert "vpd: compiled for 1x3x40x56 in" in err
    from vpd.inference.compiled import freezing_is_exact

    assert ("vpd: weight freezing off for head" in err) == (not freezing_is_exact())
    np.testing.assert_allclose(compiled(image, flip=True).depth, expected, rtol=0, atol=1e-4)
    assert "vpd: compiled" not in capsys.readouterr().err  # the same size: no second compile


def test_lean_reading_refuses_a_truncated_file(tiny_depth_dir: Path, tmp_path: Path) -> None:
    data = (tiny_depth_dir / "model.safetensors").read_bytes()
    cut = tmp_path / "model.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"model\.safetensors: incomplete or corrupt safetensors file"):
        read_safetensors(cut, dtype=torch.bfloat16)
